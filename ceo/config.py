"""ceo.ini: settings shared by the client and the helper (`/etc/csc/ceo.ini` by default).

Client: -c FILE, else $CEO_CONFIG, else /etc/csc/ceo.ini (absent is fine: defaults).
Helper: always /etc/csc/ceo.ini, or $CEO_CONFIG when not run through sudo (local mode).
"""

from __future__ import annotations

import configparser
import os

from .errors import BadInput

DEFAULT_CONFIG = "/etc/csc/ceo.ini"
DEFAULT_INVENTORY = "/etc/csc/hosts.ini"

DEFAULTS = {
    "ceo": {"realm": "CSCLUB.INTERNAL", "domain": "csclub.internal"},
    "plugins": {"site_dir": "/etc/csc/plugins"},
    "ssh": {"known_hosts": "/etc/ssh/ssh_known_hosts", "delegate_credentials": "no", "connect_timeout": "10"},
    "ldap": {"uri": "", "ldapi": "", "base": "dc=csclub,dc=internal"},
    "kerberos": {"admin_principal": "ceod/admin", "admin_keytab": "/etc/csc/ceod-admin.keytab",
                 "host_keytab": "/etc/krb5.keytab"},
    "audit": {"file": "/var/log/ceo/audit.jsonl"},
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


def client_paths(config: str | None, inventory: str | None) -> tuple[str, bool, str]:
    """(config path, was it given?, inventory path). A default config may be absent; one that
    was named must exist. The inventory must exist either way (Inventory.load says so)."""
    cfg = config or os.environ.get("CEO_CONFIG")
    return cfg or DEFAULT_CONFIG, bool(cfg), inventory or os.environ.get("CEO_INVENTORY") or DEFAULT_INVENTORY
