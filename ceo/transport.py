"""Sessions to the helpers: one per host per run, opened on first use, reused for every request.

Three connections, chosen by the inventory's `ansible_connection`:
  paramiko  paramiko with GSSAPI (the default); the socket is tuned against delayed-ACK stalls
  ssh       the OpenSSH client with GSSAPI
  local     the helper as a local subprocess (cron on the host itself)
All three carry the same JSON lines over the helper's stdin and stdout.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import sys
import threading

from .errors import BadInput, CeoError, NoTicket, NotPermitted, Unreachable, from_wire
from .protocol import client_hello, encode

PIPELINE_WINDOW = 256  # requests in flight at once in a batch


def ticket():
    """(principal, seconds left) of the caller's Kerberos ticket, or NoTicket."""
    gssapi = _import_gssapi()
    try:
        creds = gssapi.Credentials(usage="initiate")
        lifetime = creds.lifetime
        return str(creds.name), lifetime
    except gssapi.exceptions.GSSError as exc:
        if "expired" in str(exc).lower():
            raise NoTicket("your Kerberos ticket has expired: run kinit") from None
        raise NoTicket("no Kerberos ticket: run kinit") from None


def use_keytab(path: str):
    """Log in with the first principal of a keytab instead of the caller's ticket: MIT krb5
    gets initiator credentials from $KRB5_CLIENT_KTNAME when the ccache has none, and the ccache
    is this process's memory, so no ticket a user holds is used and none is written to disk."""
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as exc:
        raise BadInput(f"cannot read the keytab {path}: {exc.strerror or exc}") from None
    os.environ["KRB5_CLIENT_KTNAME"] = os.path.abspath(path)
    os.environ["KRB5CCNAME"] = f"MEMORY:ceo-{os.getpid()}"


class Session:
    """A helper on one host: hello once, then requests with ids, answered in order."""

    def __init__(self, host, roles, config):
        self.host, self.roles, self.config = host, roles, config
        self.next_id = 0
        self.unanswered = 0  # requests sent whose reply has not been read (see close())
        self.hello = None
        self.error = None  # why it could not be opened, for whoever waited for it
        self.lock = threading.Lock()
        self.while_waiting = lambda: None  # client work to do while the helper starts

    def where(self) -> str:
        return f"{self.host.name} ({', '.join(self.roles) or 'no role'})"

    # Transports provide: _open() -> None, _write(bytes), _readline() -> bytes, finish(),
    # _wait_for_exit(seconds) and _end()
    def open(self):
        self._open()
        self._write(encode(client_hello()))
        self.while_waiting()  # the helper takes tens of ms to start: the client's CPU is free meanwhile
        reply = self._read_message(None)
        if "error" in reply:
            err = reply["error"] if isinstance(reply["error"], dict) else {}
            prefix = "" if err.get("name") == "VersionMismatch" else f"{self.host.name}: "
            raise from_wire(err, prefix)
        if reply.get("hello") != "ceo-helper":
            raise Unreachable(f"{self.where()} did not answer as ceo-helper")
        self.hello = reply
        started()
        return self

    def _read_message(self, rid) -> dict:
        line = self._readline()
        if not line:
            detail = self._failure_detail()
            raise Unreachable(f"the helper on {self.where()} closed the session{detail}")
        try:
            return json.loads(line)
        except ValueError:
            raise Unreachable(f"the helper on {self.where()} sent something that is not JSON: "
                              f"{line[:80]!r}") from None

    def _failure_detail(self) -> str:
        return ""

    def alive(self) -> bool:
        """Whether the session can still carry requests (a long-lived client, the UI, asks)."""
        return True

    def finish(self):
        """No more requests: the helper gets its end of input and ends, while the client goes on."""

    def close(self):
        """Close the session. The helper ends on its end of input: once every request has its
        reply it has nothing left to do, and its exit (with sudo's, sshd's: ~4 ms) is not waited
        for. A request still unanswered (an interrupted run) may be being undone: that is waited
        for (never for ever), so that when ceo exits the helper is done with what it was asked."""
        self.finish()
        if self.unanswered:
            self._wait_for_exit(10)
        self._end()

    def request(self, plugin: str, verb: str, args: dict, check: bool = False, on_event=None, keep=False):
        """One request; events go to on_event as they arrive. Returns the result or raises.
        keep: the helper keeps the request's undo log, for `undo(id)` later in the session."""
        message = {"plugin": plugin, "verb": verb, "args": args, "check": check}
        if keep:
            message["keep"] = True
        return self._exchange(message, on_event)

    def undo(self, request_id, on_event=None):
        """Roll back a request made with keep=True, on the helper, in reverse step order."""
        return self._exchange({"undo": request_id}, on_event)

    def release(self, request_ids):
        """Tell the helper to forget kept requests: the operation that made them has ended."""
        return self._exchange({"release": list(request_ids)}, None)

    def _exchange(self, message: dict, on_event):
        with self.lock:
            self.next_id += 1
            rid = self.last_id = self.next_id
            self.unanswered += 1  # before it goes: a Ctrl-C may land between the two
            self._write(encode({"id": rid, **message}))
            while True:
                msg = self._read_message(rid)
                if msg.get("id") is None and "error" in msg:  # the helper could not tell whose
                    self.unanswered -= 1
                    return self._outcome(msg)
                if msg.get("id") != rid:
                    continue
                if "event" in msg:
                    if on_event:
                        on_event(self, msg["event"])
                    continue
                self.unanswered -= 1
                return self._outcome(msg)

    def stream(self, requests, on_reply, on_event=None, stop=None, window=PIPELINE_WINDOW) -> tuple[int, bool]:
        """Pipeline many (plugin, verb, args, check) requests; on_reply(index, result_or_error).
        Ctrl-C (or `stop` set) stops the sending; the replies to what was sent are still read,
        so every request is known done or not. A second Ctrl-C aborts at once.
        Returns (how many were sent, whether it stopped early)."""
        stop = stop or threading.Event()
        restore = _sigint_sets(stop)
        try:
            with self.lock:
                pending, sent = {}, 0
                while True:
                    while not stop.is_set() and sent < len(requests) and len(pending) < window:
                        plugin, verb, args, check = requests[sent]
                        self.next_id += 1
                        pending[self.next_id] = sent
                        self.unanswered += 1
                        self._write(encode({"id": self.next_id, "plugin": plugin, "verb": verb,
                                            "args": args, "check": check}))
                        sent += 1
                    if not pending:
                        return sent, sent < len(requests)
                    msg = self._read_message(None)
                    if msg.get("id") is None and "error" in msg:  # cannot be matched: give up
                        self._outcome(msg)
                    index = pending.get(msg.get("id"))
                    if index is None:
                        continue
                    if "event" in msg:
                        if on_event:
                            on_event(self, msg["event"], index)
                        continue
                    del pending[msg["id"]]
                    self.unanswered -= 1
                    try:
                        on_reply(index, self._outcome(msg))
                    except CeoError as err:
                        on_reply(index, err)
        finally:
            restore()

    def _outcome(self, msg: dict):
        if "error" in msg:
            raise from_wire(msg["error"])
        return msg.get("result")


def _sigint_sets(event):
    """While a batch runs, the first Ctrl-C only asks it to stop; the second interrupts."""
    import signal
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum, frame):
        if event.is_set():
            raise KeyboardInterrupt
        event.set()
    old = signal.signal(signal.SIGINT, handler)
    return lambda: signal.signal(signal.SIGINT, old)


# gssapi's extensions (RFC 5588 storing, S4U, credential stores, name attributes...) that the
# client never uses: gssapi imports each if it can and does without one it cannot (as where the
# system's library lacks it); a login and a ticket need only its core. ~7 ms of imports.
_GSSAPI_UNUSED = tuple(f"gssapi.raw.ext_{name}" for name in (
    "cred_imp_exp", "cred_store", "dce", "dce_aead", "ggf", "iov_mic", "krb5", "password", "password_add",
    "rfc4178", "rfc5587", "rfc5588", "rfc5801", "rfc6680", "rfc6680_comp_oid", "s4u", "set_cred_opt"))


def _import_gssapi():
    """gssapi, without what the client never uses: the extensions above, and gssapi._win_config
    where there is no Windows (it looks for Kerberos for Windows; elsewhere it only imports
    ctypes)."""
    unused = {**dict.fromkeys(_GSSAPI_UNUSED),  # None: "cannot be imported"
              "gssapi._win_config": _module("gssapi._win_config")}
    with _StandIns(unused if sys.platform != "win32" else {}):
        import gssapi
    return gssapi


def started():
    """The start of a `ceo` run is over once a helper has said hello: gssapi, paramiko and rich are
    imported, and nearly everything alive now lives until exit. ceo.cli turns the cycle collector
    off for the start (its passes over these imports are ~10% of it); here it is turned on again,
    with what is alive frozen so that no later pass searches it. Where the collector was not
    turned off (ceo used as a library), nothing changes."""
    import gc
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


class _StandIns:
    """sys.modules entries standing in for modules not imported yet, while the block runs (its
    users may be several threads at once); each is taken away when its last user is done, so that
    a later import is the real one. Any other thread importing such a module meanwhile would get
    the stand-in: see import_ssh."""
    lock = threading.Lock()
    held: dict = {}  # name -> [stand-in, users]

    def __init__(self, modules: dict):
        self.modules, self.mine = modules, []

    def __enter__(self):
        with self.lock:
            for name, module in self.modules.items():
                if name in self.held:
                    self.held[name][1] += 1
                elif name not in sys.modules:
                    sys.modules[name] = module
                    self.held[name] = [module, 1]
                else:
                    continue
                self.mine.append(name)

    def __exit__(self, *_):
        with self.lock:
            for name in self.mine:
                entry = self.held[name]
                entry[1] -= 1
                if entry[1] == 0:
                    del self.held[name]
                    if sys.modules.get(name, 0) is entry[0]:
                        del sys.modules[name]


def _module(name: str, **attrs):
    m = type(sys)(f"{name} (ceo's stand-in)")
    m.__dict__.update(attrs)
    return m


def import_ssh():
    """gssapi and paramiko, imported now, in this thread. While paramiko is imported, sys.modules
    holds stand-ins for widely used modules (logging, traceback, pathlib: _import_paramiko), and
    another thread importing one of them meanwhile would keep the stand-in for good. So whoever
    starts threads that open sessions while it goes on working (a composite verb, the UI's early
    sign-in) imports these first; the threads then find them imported."""
    _import_gssapi()
    _import_paramiko()


_PARAMIKO_IMPORT = threading.Lock()  # one thread imports it; the others wait until its stand-ins are gone


def _import_paramiko():
    """paramiko, without the imports it makes for nothing we use: invoke (for `Match exec`,
    ~50 ms), importlib.metadata (only to set __version__, ~25 ms: we read the version from its
    dist-info's name instead), its SSH agent, ProxyCommand, SFTP and ssh-config modules (~5 ms,
    with tempfile and subprocess) and pathlib, whose classes stand in until first used (_Deferred),
    logging and traceback (_QuietLogger), and PyNaCl (_Ed25519VerifyKey). If anything
    else needs the real importlib.metadata, the import is made again the ordinary way."""
    with _PARAMIKO_IMPORT:
        return _import_paramiko_alone()


def _import_paramiko_alone():
    import importlib
    sys.modules.setdefault("invoke", None)
    if "paramiko" in sys.modules or "importlib.metadata" in sys.modules:
        import paramiko
        _quiet_logs()
        return paramiko
    stub = type(sys)("importlib.metadata")
    stub.version = _dist_version
    sys.modules["importlib.metadata"] = importlib.metadata = stub
    try:
        with _StandIns(_deferred_paramiko()):
            import paramiko
    except ImportError:
        for name in [m for m in sys.modules if m == "paramiko" or m.startswith("paramiko.")]:
            del sys.modules[name]
        stub = None
    finally:
        del sys.modules["importlib.metadata"], importlib.metadata
    if stub is None:
        import paramiko
    _quiet_logs()
    return paramiko


def _quiet_logs():
    """paramiko's thread logs a failed handshake (a host that is not an SSH server, say) with its
    traceback before raising it to us; with no handler, Python would print that to stderr. What
    went wrong reaches the user as the exception, in one line. (Where logging was not imported
    before paramiko, its loggers are _QuietLogger: nothing to do.)"""
    if "logging" not in sys.modules:
        return
    import logging
    logger = logging.getLogger("paramiko")
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())


# The modules that paramiko imports and a session to a helper never uses, and the names paramiko's
# own modules import from them. pathlib (~3 ms, with urllib.parse and ipaddress) is for private key
# files; nothing else in a run imports it (where something had, as the UI has, it is the real one).
_PARAMIKO_UNUSED = {
    "paramiko.agent": ("Agent", "AgentKey"), "paramiko.proxy": ("ProxyCommand",),
    "paramiko.sftp_client": ("SFTP", "SFTPClient"), "paramiko.sftp_server": ("SFTPServer",),
    "paramiko.sftp_attr": ("SFTPAttributes",), "paramiko.sftp_handle": ("SFTPHandle",),
    "paramiko.sftp_si": ("SFTPServerInterface",), "paramiko.sftp_file": ("SFTPFile",), "pathlib": ("Path",),
    "paramiko.config": ("SSHConfig", "SSHConfigDict")}  # ~/.ssh/config: ceo's inventory names every host


def _deferred_paramiko() -> dict:
    deferred = {module: _module(module, **{name: _deferred(module, name) for name in names})
                for module, names in _PARAMIKO_UNUSED.items()}
    deferred["paramiko.config"].SSH_PORT = 22  # paramiko.client's one other name from it
    # paramiko logs to loggers that ceo gives no handler (_quiet_logs), and formats tracebacks
    # only for them: its loggers are _QuietLogger, and logging and traceback (~2.5 ms) are not
    # imported for them. Any other name of theirs is the real module's.
    deferred["logging"] = _module("logging", DEBUG=10, INFO=20, WARNING=30, ERROR=40, CRITICAL=50,
                                  getLogger=lambda name=None: _QUIET, __getattr__=_from_real("logging"))
    deferred["traceback"] = _module("traceback", __getattr__=_from_real("traceback"))
    if not any(m == "nacl" or m.startswith("nacl.") for m in sys.modules):
        signing = _module("nacl.signing", VerifyKey=_Ed25519VerifyKey,
                          SigningKey=_deferred("nacl.signing", "SigningKey"))
        deferred.update({"nacl": _module("nacl", signing=signing, __getattr__=_real_nacl), "nacl.signing": signing})
    return deferred


def _deferred(module: str, name: str) -> type:
    return _Deferred(name, (), {"_module": module, "__module__": module})


# paramiko checks an ed25519 host key's signatures with PyNaCl (~5 ms of imports: libsodium and
# its bindings); cryptography, which paramiko imports anyway, makes the same check. While paramiko
# is imported (unless PyNaCl already is), its ed25519 module gets this VerifyKey; SigningKey (for
# private keys: ceo logs in with GSSAPI) and nacl.exceptions are the real ones when first used.
class _Ed25519VerifyKey:
    """What paramiko uses of nacl.signing.VerifyKey, on cryptography's Ed25519."""

    def __init__(self, key: bytes):
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        self._bytes = bytes(key)
        self._key = Ed25519PublicKey.from_public_bytes(self._bytes)  # ValueError unless 32 bytes

    def encode(self) -> bytes:
        return self._bytes

    def verify(self, message: bytes, signature: bytes) -> bytes:
        from cryptography.exceptions import InvalidSignature
        try:
            self._key.verify(bytes(signature), bytes(message))
        except InvalidSignature:
            import nacl.exceptions  # the class paramiko catches (a forged or corrupt signature)
            raise nacl.exceptions.BadSignatureError("Signature was forged or corrupt") from None
        return message

    def __eq__(self, other):
        return isinstance(other, _Ed25519VerifyKey) and other._bytes == self._bytes

    def __hash__(self):
        return hash(self._bytes)


class _QuietLogger:
    """What paramiko gets of logging.getLogger() when ceo imports it: its messages go nowhere, for
    the process's life. (To see them, in a program using ceo as a library, import logging first:
    paramiko then has the real loggers, which _quiet_logs gives only a NullHandler.)"""

    def _nothing(self, *args, **kwargs):
        pass

    log = debug = info = warning = error = critical = exception = addFilter = addHandler = setLevel = _nothing
    handlers = ()

    def isEnabledFor(self, level):  # noqa: N802 (logging's name)
        return False


_QUIET = _QuietLogger()


def _from_real(module: str):
    """A stand-in module's fallback: any other name is the real module's, imported then (once
    the stand-in is gone from sys.modules: until then, an error, not a loop)."""
    def attribute(name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        import importlib
        real = importlib.import_module(module)
        if getattr(real, "__getattr__", None) is attribute:
            raise ImportError(f"{module} is stood in for while paramiko is imported (see import_ssh)")
        return getattr(real, name)
    return attribute


def _real_nacl(name: str):
    """The stand-in nacl's other submodules (nacl.exceptions, whose class paramiko catches) are the real ones."""
    if name.startswith("__"):
        raise AttributeError(name)
    import importlib
    return importlib.import_module(f"nacl.{name}")


class _Deferred(type):
    """A class of a module not imported yet, standing for it: making one, reading an attribute
    (SFTPClient.from_transport) or an isinstance check imports the real module and defers to
    its class. (Only subclassing one would not work; ceo never does, nor does paramiko.)"""

    def _real(cls):
        import importlib
        real = getattr(importlib.import_module(cls._module), cls.__name__)
        if isinstance(real, _Deferred):  # used from another thread while paramiko is being imported
            raise ImportError(f"{cls._module} is still being imported")
        return real

    def __call__(cls, *args, **kwargs):
        return cls._real()(*args, **kwargs)

    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(cls._real(), name)

    def __instancecheck__(cls, obj):
        return isinstance(obj, cls._real())

    def __subclasscheck__(cls, sub):
        return issubclass(sub, cls._real())


def _dist_version(name: str) -> str:
    import importlib.util
    spec = importlib.util.find_spec(name)
    where = os.path.dirname(os.path.dirname(spec.origin)) if spec and spec.origin else ""
    for entry in os.listdir(where or "."):
        if entry.startswith(f"{name}-") and entry.endswith(".dist-info"):
            return entry[len(name) + 1:-len(".dist-info")]
    return "0"


# paramiko's gssapi-with-mic login DER-encodes one constant OID (Kerberos 5's) and decodes the
# one the server sends back, with pyasn1: ~8 ms of imports for 11 bytes. While sessions log in,
# unless pyasn1 is already imported, these stand in for the three names paramiko uses; they are
# removed when the last login is done, so any later import gets the real pyasn1.
_KRB5_OID = "1.2.840.113554.1.2.2"
_KRB5_DER = bytes.fromhex("06092a864886f712010202")


def _der_encode(oid) -> bytes:
    if oid != _KRB5_OID:
        raise ValueError(f"only the Kerberos 5 OID is known here, not {oid}")
    return _KRB5_DER


def _der_decode(der: bytes) -> tuple[str, bytes]:
    return (_KRB5_OID if der == _KRB5_DER else "(not Kerberos 5)"), b""  # paramiko refuses the latter


def _krb5_oid_only() -> _StandIns:
    if "pyasn1" in sys.modules and "pyasn1" not in _StandIns.held:  # the real one
        return _StandIns({})
    encoder, decoder = _module("pyasn1", encode=_der_encode), _module("pyasn1", decode=_der_decode)
    return _StandIns({"pyasn1": _module("pyasn1"), "pyasn1.type": _module("pyasn1"),
                      "pyasn1.type.univ": _module("pyasn1", ObjectIdentifier=str), "pyasn1.codec": _module("pyasn1"),
                      "pyasn1.codec.der": _module("pyasn1", encoder=encoder, decoder=decoder),
                      "pyasn1.codec.der.encoder": encoder, "pyasn1.codec.der.decoder": decoder})


class ParamikoSession(Session):
    def _open(self):
        timeout = float(self.config.get("ssh", "connect_timeout"))
        try:  # first: sshd starts its side (fork, re-exec, keys) while we import paramiko
            # An ASCII address as bytes: a str is IDNA-encoded first, and the codec costs ~1.5 ms to import.
            address = self.host.address.encode() if self.host.address.isascii() else self.host.address
            sock = _TunedSocket(socket.create_connection((address, self.host.port), timeout))
        except OSError as exc:
            raise Unreachable(f"cannot reach {self.where()} at {self.host.address}:{self.host.port}: "
                              f"{exc.strerror or exc}") from None
        try:
            gssapi = _import_gssapi()
            paramiko = _import_paramiko()
            principal, _ = ticket()
        except BaseException:
            sock.close()
            raise
        client = paramiko.SSHClient()
        for path in (self.config.get("ssh", "known_hosts"), os.path.expanduser("~/.ssh/known_hosts")):
            if path and os.path.exists(path):
                client.load_host_keys(path)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        user = self.host.user or principal.split("@")[0]
        try:
            with _krb5_oid_only():
                client.connect(self.host.name, port=self.host.port, username=user, sock=sock,
                               gss_auth=True, gss_kex=False, gss_host=self.host.name, gss_trust_dns=False,
                               gss_deleg_creds=self.config.getbool("ssh", "delegate_credentials"),
                               look_for_keys=False, allow_agent=False, timeout=timeout,
                               banner_timeout=timeout, auth_timeout=timeout)
        except gssapi.exceptions.GSSError as exc:
            sock.close()
            if "credential" in str(exc).lower() or "expired" in str(exc).lower():
                raise NoTicket("no usable Kerberos ticket: run kinit") from None
            raise NotPermitted(f"{self.where()} refused the login of {principal}: "
                               f"{str(exc).splitlines()[0]}") from None
        except paramiko.BadHostKeyException:
            sock.close()
            raise Unreachable(f"the host key of {self.where()} does not match the known one: "
                              "possible impersonation, not connecting") from None
        except paramiko.SSHException as exc:
            sock.close()
            if "not found in known_hosts" in str(exc):
                raise Unreachable(f"the host key of {self.where()} is not known: add it to "
                                  f"{self.config.get('ssh', 'known_hosts')}") from None
            if isinstance(exc, paramiko.AuthenticationException):
                raise NotPermitted(f"{self.where()} refused the login of {principal} as {user}") from None
            raise Unreachable(f"SSH to {self.where()} failed: {exc}") from None
        except OSError as exc:
            sock.close()
            raise Unreachable(f"cannot reach {self.where()}: {exc.strerror or exc}") from None
        self.client = client
        try:
            self.channel = client.get_transport().open_session(timeout=timeout)
            self.channel.exec_command(self.host.helper)
        except (paramiko.SSHException, OSError) as exc:
            client.close()
            raise Unreachable(f"{self.where()} would not start the helper: {exc}") from None
        self.stdin = self.channel.makefile_stdin("wb")
        self.stdout = self.channel.makefile("rb")

    def _write(self, data: bytes):
        try:
            self.stdin.write(data)
            self.stdin.flush()
        except OSError as exc:
            raise Unreachable(f"lost the session to {self.where()}: {exc}") from None

    def _readline(self) -> bytes:
        try:
            return self.stdout.readline()
        except OSError as exc:
            raise Unreachable(f"lost the session to {self.where()}: {exc}") from None

    def alive(self) -> bool:
        transport = self.client.get_transport()
        return bool(transport and transport.is_active()) and not self.channel.exit_status_ready()

    def finish(self):
        try:
            self.channel.shutdown_write()
        except Exception:
            pass

    def _wait_for_exit(self, seconds):
        try:
            self.channel.status_event.wait(seconds)
        except Exception:
            pass

    def _end(self):
        self.client.close()


class _ProcessSession(Session):
    """A helper behind a child process's pipes (OpenSSH client, or the helper itself)."""

    def _spawn(self, argv, env=None):
        import subprocess  # the paramiko transport never needs it
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, env=env, bufsize=0)
        except OSError as exc:
            raise Unreachable(f"cannot start {argv[0]} for {self.where()}: {exc.strerror}") from None
        self.stderr = []
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.proc.stderr:
            self.stderr.append(line.decode(errors="replace").rstrip())

    def _write(self, data: bytes):
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except OSError:
            raise Unreachable(f"lost the session to {self.where()}{self._failure_detail()}") from None

    def _readline(self) -> bytes:
        return self.proc.stdout.readline()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _failure_detail(self) -> str:
        import subprocess
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            return ""
        lines = [line for line in self.stderr if line]
        return f": {lines[-1]}" if lines else f" (exit status {self.proc.returncode})"

    def finish(self):
        try:
            self.proc.stdin.close()
        except Exception:
            pass

    def _wait_for_exit(self, seconds):
        try:
            self.proc.wait(seconds)
        except Exception:
            self.proc.kill()

    def _end(self):
        self.proc.poll()  # reaped if it has ended; if not, subprocess reaps it later


class OpenSSHSession(_ProcessSession):
    def _open(self):
        principal, _ = ticket()
        user = self.host.user or principal.split("@")[0]
        known = self.config.get("ssh", "known_hosts")
        argv = ["ssh", "-T", "-o", "BatchMode=yes", "-o", "GSSAPIAuthentication=yes",
                "-o", f"GSSAPIDelegateCredentials={'yes' if self.config.getbool('ssh', 'delegate_credentials') else 'no'}",
                "-o", "PreferredAuthentications=gssapi-with-mic", "-o", "StrictHostKeyChecking=yes",
                "-o", f"UserKnownHostsFile={known} ~/.ssh/known_hosts", "-o", f"HostKeyAlias={self.host.name}",
                "-o", f"ConnectTimeout={int(float(self.config.get('ssh', 'connect_timeout')))}",
                "-o", "KexAlgorithms=curve25519-sha256,curve25519-sha256@libssh.org,sntrup761x25519-sha512@openssh.com",
                "-o", "LogLevel=ERROR", "-p", str(self.host.port), "-l", user]
        if self.host.address != self.host.name:
            argv += ["-o", f"GSSAPIServerIdentity={self.host.name}"]  # the principal is the name
        argv += control_options(self.host, self.config)
        self._spawn(argv + [self.host.address, "--", *shlex.split(self.host.helper)])

    def _failure_detail(self) -> str:
        detail = super()._failure_detail()
        if "Permission denied" in detail:
            raise NotPermitted(f"{self.where()} refused the login{detail}")
        return detail


def control_options(host, config) -> list[str]:
    """OpenSSH's connection sharing, opt-in: the host var `ceo_ssh_control_persist` or `[ssh]
    control_persist` (seconds, or OpenSSH's 10m). The first run leaves a master connection
    that many runs' sessions then share for that long: no TCP, kex or Kerberos login each time.
    Every run still gets its own session, helper and authorization; what the master keeps is the
    login (see the README). Its socket lives in a directory only the user can enter."""
    persist = host.vars.get("ceo_ssh_control_persist", config.get("ssh", "control_persist"))
    persist = "" if persist is None else str(persist).strip().lower()
    if persist in ("", "no", "0", "false", "off"):
        return []
    if not re.fullmatch(r"[1-9][0-9]{0,6}[smhdw]?", persist):
        raise BadInput(f"{host.name}: ssh control_persist {persist[:20]!r} is not a time (seconds, or e.g. 10m)")
    where = os.path.expanduser(config.get("ssh", "control_dir") or "~/.ssh/ceo-control")
    try:
        os.makedirs(where, mode=0o700, exist_ok=True)
        st = os.stat(where)
    except OSError as exc:
        raise BadInput(f"cannot make the ssh control directory {where}: {exc.strerror or exc}") from None
    if st.st_uid != os.getuid() or st.st_mode & 0o077:  # its sockets log in as the user
        raise BadInput(f"the ssh control directory {where} must be the user's own, mode 0700")
    return ["-o", "ControlMaster=auto", "-o", f"ControlPath={where}/%C", "-o", f"ControlPersist={persist}"]


class LocalSession(_ProcessSession):
    def _open(self):
        env = {**os.environ, "CEO_HOST": self.host.name}
        if getattr(self.config, "path", None):
            env["CEO_CONFIG"] = self.config.path
        self._spawn(shlex.split(self.host.helper), env)


TRANSPORTS = {"paramiko": ParamikoSession, "ssh": OpenSSHSession, "local": LocalSession}


class Pool:
    """The run's sessions, one per host, opened on first use (in parallel where asked)."""

    def __init__(self, inventory, config):
        self.inventory, self.config = inventory, config
        self.sessions: dict[str, Session] = {}
        self.lock = threading.Lock()
        self.idle_work: list = []  # done once, by the first session that waits for its helper
        self.openers: list[threading.Thread] = []
        self.failed: dict[str, BaseException] = {}  # a started opening that failed, told once

    def _idle(self):
        with self.lock:
            work, self.idle_work = self.idle_work, []
        for fn in work:
            fn()

    def for_role(self, role: str) -> Session:
        return self.for_host(self.inventory.host_for(role))

    def for_host(self, host) -> Session:
        with self.lock:
            session = self.sessions.get(host.name)
            failed = self.failed.pop(host.name, None)
            if failed is not None:
                raise failed
            if session is None:
                if host.connection not in TRANSPORTS:
                    raise BadInput(f"{host.name}: ansible_connection={host.connection} is not one of "
                                   f"{', '.join(TRANSPORTS)}")
                if host.connection == "local" and "ceo_helper" not in host.vars:
                    host.vars["ceo_helper"] = "ceo-helper"
                session = TRANSPORTS[host.connection](host, self.inventory.roles_of(host.name), self.config)
                session.while_waiting = self._idle
                session.lock.acquire()  # others wait for it to open
                self.sessions[host.name] = session
                opening = True
            else:
                opening = False
        if opening:
            try:
                session.open()
            except BaseException as exc:
                session.error = exc
                with self.lock:
                    self.sessions.pop(host.name, None)
                raise
            finally:
                session.lock.release()
        else:
            with session.lock:
                if session.hello is None:
                    raise session.error or Unreachable(f"{session.where()} could not be opened")
        return session

    def start(self, hosts):
        """Begin opening sessions to these hosts, each in a thread of its own, and return at once:
        a verb that will need several hosts pays for about one handshake, not one per host.
        Whoever then asks for a host waits for its opening, and gets its error if it failed."""
        hosts = list(hosts)
        for host in hosts:
            with self.lock:
                if host.name in self.sessions:
                    continue
            thread = threading.Thread(target=self._open_quietly, args=(host,), daemon=True)
            thread.start()
            self.openers.append(thread)
        # Then this thread, which goes on working, imports paramiko (see import_ssh) while theirs
        # connect: until they wait for that import they import only gssapi, none of its stand-ins.
        if any(host.connection == "paramiko" for host in hosts):
            try:
                import_ssh()
            except ImportError:
                pass  # each opening says so

    def _open_quietly(self, host):
        try:
            self.for_host(host)
        except BaseException as exc:  # raised again to whoever asks for this host
            with self.lock:
                if host.name not in self.sessions:
                    self.failed[host.name] = exc

    def open_parallel(self, hosts) -> dict[str, Session | Exception]:
        def one(host):
            try:
                return host.name, self.for_host(host)
            except Exception as exc:
                return host.name, exc
        hosts = list(hosts)
        if len(hosts) == 1:
            return dict([one(hosts[0])])
        from concurrent.futures import ThreadPoolExecutor  # 4 ms of imports a one-host run never needs
        with ThreadPoolExecutor(max(1, len(hosts))) as pool:
            return dict(pool.map(one, hosts))

    def finish(self):
        """Every open session's end of input, at once: the helpers end while the output is printed."""
        for session in list(self.sessions.values()):
            if session.hello is not None:
                session.finish()

    def close(self):
        for thread in self.openers:  # a session still opening is closed too, not left behind
            thread.join(float(self.config.get("ssh", "connect_timeout")) + 5)
        for session in list(self.sessions.values()):
            try:
                session.close()
            except Exception:
                pass


class _TunedSocket:
    """TCP_NODELAY, and TCP_QUICKACK re-armed after every recv (Linux clears it): removes the
    two delayed-ACK stalls that otherwise cost ~80 ms of every paramiko connect."""

    def __init__(self, sock: socket.socket):
        self._sock = sock
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._quickack = getattr(socket, "TCP_QUICKACK", None)
        self._ack()

    def _ack(self):
        if self._quickack is not None:
            try:
                self._sock.setsockopt(socket.IPPROTO_TCP, self._quickack, 1)
            except OSError:
                pass

    def recv(self, n, *flags):
        data = self._sock.recv(n, *flags)
        self._ack()
        return data

    def __getattr__(self, name):
        return getattr(self._sock, name)
