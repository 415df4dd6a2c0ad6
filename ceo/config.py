"""ceo.ini: settings shared by the client and the helper (`/etc/csc/ceo.ini` by default), and
ceo-helper.ini: the helper's credentials (`/etc/csc/ceo-helper.ini`, root only, mode 0600).

ceo.ini is world-readable and holds nothing secret; the client reads only it.
Client: -c FILE, else $CEO_CONFIG, else /etc/csc/ceo.ini (absent is fine: defaults).
Helper: /etc/csc/ceo.ini then /etc/csc/ceo-helper.ini over it, the latter winning. In local
mode (not through sudo) $CEO_CONFIG and $CEO_HELPER_CONFIG may name others; a non-root local
helper reads a helper file only if $CEO_HELPER_CONFIG names one.
"""

from __future__ import annotations

import configparser
import os
import stat

from .errors import BadInput, CeoError

DEFAULT_CONFIG = "/etc/csc/ceo.ini"
DEFAULT_HELPER_CONFIG = "/etc/csc/ceo-helper.ini"
DEFAULT_INVENTORY = "/etc/csc/hosts.ini"

DEFAULTS = {
    "ceo": {"realm": "CSCLUB.INTERNAL", "domain": "csclub.internal"},
    "plugins": {"site_dir": "/etc/csc/plugins"},
    "ssh": {"known_hosts": "/etc/ssh/ssh_known_hosts", "delegate_credentials": "no", "connect_timeout": "10",
            "control_persist": "", "control_dir": "~/.ssh/ceo-control"},
    "ldap": {"uri": "", "ldapi": "", "base": "dc=csclub,dc=internal"},
    "kerberos": {"admin_principal": "ceod/admin", "admin_keytab": "/etc/csc/ceod-admin.keytab",
                 "host_keytab": "/etc/krb5.keytab"},
    "audit": {"file": "/var/log/ceo/audit.jsonl"},
    "log": {"syslog_socket": "/dev/log"},
}


class Config:
    def __init__(self, path: str | None = None, parser: configparser.ConfigParser | None = None):
        self.path = path
        self.parser = parser or configparser.ConfigParser(interpolation=None)

    @classmethod
    def load(cls, path: str | None = None, explicit: bool = False) -> "Config":
        path = path or DEFAULT_CONFIG
        parser = configparser.ConfigParser(interpolation=None)
        try:
            with open(path, encoding="utf-8") as f:
                parser.read_file(f)
        except FileNotFoundError:
            if explicit:
                raise BadInput(f"config {path} does not exist") from None
        except (OSError, configparser.Error) as exc:
            raise BadInput(f"cannot read config {path}: {exc}") from None
        return cls(path, parser)

    @classmethod
    def load_helper(cls, path: str, helper_path: str | None) -> "Config":
        """The helper's config: ceo.ini, then the private helper file over it (None: none)."""
        config = cls.load(path)
        from . import hostlog  # from here on, even a refused helper file is logged where ceo.ini says
        hostlog.SOCKET = config.get("log", "syslog_socket")
        for section in config.parser.sections():
            for key in config.parser.options(section):
                if _secret(key):  # a member can read it there: refuse rather than use a leaked secret
                    raise UnsafeConfig(f"{path} holds [{section}] {key}, which every user can read there: "
                                       f"move it to {helper_path or DEFAULT_HELPER_CONFIG}")
        if helper_path:
            text = _read_private(helper_path)
            if text is not None:
                try:
                    config.parser.read_string(text, source=helper_path)
                except configparser.Error as exc:  # never the line itself: it may hold a password
                    line = getattr(exc, "lineno", None) or (getattr(exc, "errors", None) or [(None,)])[0][0]
                    raise UnsafeConfig(f"cannot read {helper_path}: {type(exc).__name__} at line {line}") from None
        return config

    def get(self, section: str, key: str, default: str | None = None) -> str | None:
        if self.parser.has_option(section, key):
            return self.parser.get(section, key)
        return DEFAULTS.get(section, {}).get(key, default)

    def getbool(self, section: str, key: str, default: bool = False) -> bool:
        value = self.get(section, key)
        if value is None:
            return default
        return value.strip().lower() in ("1", "yes", "true", "on")

    def getlist(self, section: str, key: str, default: str = "") -> list[str]:
        return (self.get(section, key, default) or "").split()

    @property
    def realm(self) -> str:
        return self.get("ceo", "realm")


class UnsafeConfig(CeoError):
    """A config file the helper will not start on. The message names the file and what is wrong
    with it, never a value from it, so the caller may be told."""


def _secret(key: str) -> bool:
    return key == "password" or key.endswith(("_password", "secret"))


def _read_private(path: str) -> str | None:
    """A helper file's text, if it exists and only its owner (root, or a local helper's own user)
    can read or write it; checked on the open file itself, so it cannot be swapped meanwhile."""
    from .files import open_plain
    fd = open_plain(path, lambda why: UnsafeConfig(f"cannot open {path}: {why}"))
    if fd is None:
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeConfig(f"{path} is not a regular file")
        if st.st_uid not in (0, os.getuid()) or st.st_mode & 0o077:
            owner = "root" if os.getuid() == 0 else f"root or uid {os.getuid()}"
            raise UnsafeConfig(f"{path} must be owned by {owner} and readable and writable by it only "
                               f"(mode 0600); it is uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):04o}")
        try:
            return f.read().decode("utf-8")
        except UnicodeDecodeError:
            raise UnsafeConfig(f"cannot read {path}: not UTF-8 text") from None


def client_paths(config: str | None, inventory: str | None) -> tuple[str, bool, str]:
    """(config path, was it given?, inventory path). A default config may be absent; one that
    was named must exist. The inventory must exist either way (Inventory.load says so)."""
    cfg = config or os.environ.get("CEO_CONFIG")
    return cfg or DEFAULT_CONFIG, bool(cfg), inventory or os.environ.get("CEO_INVENTORY") or DEFAULT_INVENTORY
