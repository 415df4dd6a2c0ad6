"""`ceo-helper`: runs on each host, as root through sudo, and serves JSON-line requests.

It runs only verbs that installed plugins declare, validates every argument against their
declarations, and decides on its own who the caller is (sshd + sudo, never the request) and
whether they may. Nothing a client sends is executed or passed to a shell. Errors go back
by name with a one-line message; tracebacks go to the helper's log, never to the client.
"""

from __future__ import annotations

import os
import re
import stat
import pwd
import sys
import time

from . import __version__, policy
from .config import Config, DEFAULT_CONFIG, DEFAULT_HELPER_CONFIG, DEFAULT_INVENTORY, UnsafeConfig
from .context import Context
from .errors import BadInput, BadRequest, CeoError, LimitReached, NotPermitted, PartlyDone, VersionMismatch
from .hostlog import log
from .protocol import PROTOCOL, decode, encode, negotiate, read_line

# A session's bounds, each settable in ceo.ini's [helper] section (the helper reads only its own).
UNDO_WINDOW = 600  # seconds a kept request stays undoable (an operation's later steps, not hours)
KEEP_MAX = 100  # kept requests a session holds at once
KEEP_BYTES = 1 << 20  # ... and the total size of their arguments (JSON)
MAX_REFUSALS = 100  # refused requests (exit 2 or 3) a session may make before the helper ends it
_VERSION = re.compile(r"[\w.+-]{1,40}")
_SSHD_RECORD = re.compile(r"/tmp/sshauth\.[A-Za-z0-9]{15}")  # OpenSSH's session.c: mkstemp, as the user


class Session:
    """Everything that lasts for one helper process: identity, config, plugins, connections."""

    def __init__(self):
        self.local = not (os.getuid() == 0 and "SUDO_USER" in os.environ)
        self.principal = None
        # Through sudo the environment is sudo's: only a local (unprivileged-by-sudo) run may
        # point the helper at other files or say which inventory host it stands for.
        env = os.environ if self.local else {}
        # The credentials file is root's: a non-root local helper reads one only if named.
        helper_config = env.get("CEO_HELPER_CONFIG") or (DEFAULT_HELPER_CONFIG if os.getuid() == 0 else None)
        self.config = Config.load_helper(env.get("CEO_CONFIG") or DEFAULT_CONFIG, helper_config)
        self.caller = self._caller()
        self.host = env.get("CEO_HOST") or os.uname().nodename  # gethostname(), without importing socket
        self.inventory_path = env.get("CEO_INVENTORY") or DEFAULT_INVENTORY
        self.roles = self._roles()
        self._groups = None
        self._services: dict = {}
        self.kept: dict = {}  # request id -> (verb, args, context, monotonic time, size): undoable here
        self.kept_bytes = 0
        self.refusals = 0
        self._registry = None

    def _caller(self) -> str:
        if self.local:
            return pwd.getpwuid(os.getuid()).pw_name
        user, uid = os.environ["SUDO_USER"], os.environ.get("SUDO_UID", "")
        try:
            user_uid = pwd.getpwnam(user).pw_uid
        except KeyError:
            raise NotPermitted(f"unknown user {user!r}") from None
        if str(user_uid) != uid:
            raise NotPermitted(f"sudo reported {user!r} with uid {uid}, which does not match")
        self.principal = self._check_realm(user, user_uid)
        return user

    def _check_realm(self, user: str, user_uid: int) -> str | None:
        """sshd's ExposeAuthInfo says which principal logged in: it must be user@OUR-REALM.
        Through sshd (its variables, which sudoers keeps, say so) the record must be there and be
        sshd's: a file named as sshd names it, which sshd writes as the user, mode 0600."""
        path = os.environ.get("SSH_USER_AUTH")
        if path is None and not any(os.environ.get(v) for v in ("SSH_CONNECTION", "SSH_CLIENT")):
            return None  # not through sshd (sudo from a shell on the host): sudo's word stands
        not_sshds = NotPermitted("the session came through sshd without sshd's record of how it logged in")
        if not path or not _SSHD_RECORD.fullmatch(path):
            raise not_sshds
        try:  # as root, in a file the user names: no links, no FIFOs, a few KiB at most
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            raise not_sshds from None
        try:
            st = os.fstat(fd)
            if (not stat.S_ISREG(st.st_mode) or st.st_uid != user_uid or st.st_mode & 0o077
                    or st.st_nlink != 1):
                raise not_sshds
            methods = os.read(fd, 4096).decode("utf-8", "replace").split("\n")
        finally:
            os.close(fd)
        for line in methods:
            parts = line.split()
            if len(parts) >= 2 and parts[0].startswith("gssapi"):
                if parts[1] != f"{user}@{self.config.realm}":
                    raise NotPermitted(f"principal {parts[1][:100]} is not {user}@{self.config.realm}")
                return parts[1]
        raise NotPermitted("the session did not log in with Kerberos (GSSAPI)")

    def _roles(self) -> list[str]:
        from .inventory import Inventory
        try:
            inv = Inventory.load(self.inventory_path)
        except CeoError:
            return []
        for name in (self.host, self.host.split(".")[0]):
            for h in inv.hosts:
                if h == name or h.split(".")[0] == name:
                    self.host = h
                    return inv.roles_of(h)
        return []

    @property
    def registry(self):
        if self._registry is None:
            from .discovery import discover
            # Lazy: a request imports only its own plugin (the others' imports cost more than the verb)
            self._registry = discover(self.config.get("plugins", "site_dir"), strict=not self.local, lazy=True)
        return self._registry

    def limit(self, key: str, default: int) -> int:
        try:
            return int(self.config.get("helper", key, str(default)))
        except ValueError:
            return default

    def forget(self, rid):
        """Drop a kept request (undone, released or expired): True if there was one."""
        kept = self.kept.pop(rid, None)
        if kept is not None:
            self.kept_bytes -= kept[4]
        return kept

    def groups(self, fresh: bool = False) -> set[str]:
        if fresh and not (self.local and os.getuid() == 0):
            self._groups = None  # re-read from LDAP: rights may have changed since
        if self._groups is None:
            if self.local and os.getuid() == 0:
                self._groups = {"syscom", "office"}  # root on the host itself (cron)
            else:
                from .services.directory import groups_of
                self._groups = groups_of(self.ldap(), self.config, self.caller)
        return self._groups

    def ldap(self, pipelined: bool = False):
        from .services.directory import connect
        name = "ldap-pipelined" if pipelined else "ldap"
        return self.service(name, lambda: connect(self.config, self.host, lambda: self.drop(name), pipelined))

    def service(self, name, opener):
        if name not in self._services:
            self._services[name] = opener()
        return self._services[name]

    def drop(self, name):
        """Forget a broken connection: the next request opens a new one."""
        self._services.pop(name, None)

    def close(self):
        for conn in self._services.values():
            for method in ("unbind", "close"):
                if hasattr(conn, method):
                    try:
                        getattr(conn, method)()
                    except Exception:
                        pass
                    break


def write_audit(session, verb, args: dict, outcome: str, error=None, request=None, **notes):
    """One audit record (args already redacted by the caller; long values are clipped here)."""
    from . import audit
    try:
        audit.record(session.config.get("audit", "file"), caller=session.caller, host=session.host,
                     plugin=verb.plugin.name, verb=verb.name, args={k: _clip(v) for k, v in args.items()},
                     outcome=outcome, error=error, request=request, **notes)
    except Exception as exc:  # the request's answer matters more; the log says what was lost
        log(f"cannot write audit record for {verb.qualname} by {session.caller}: {exc}")


class Server:
    def __init__(self, session: Session, out):
        self.session, self.out = session, out

    def send(self, message: dict):
        error = message.get("error")
        if isinstance(error, dict) and error.get("exit") in (2, 3):
            self.session.refusals += 1  # bad input or not permitted: serve() bounds how many
        self.out.write(encode(message))
        self.out.flush()

    def hello(self, message: dict) -> int | None:
        """Answer the client's hello. Returns None to go on, or the exit status to end with."""
        if message.get("hello") != "ceo":
            err = BadRequest("expected a hello first")
            rid = message.get("id")
            self.send({"id": rid if isinstance(rid, (int, str)) and not isinstance(rid, bool) else None,
                       "error": err.to_wire()})
            return err.exit_code
        version = negotiate(message.get("protocol"))
        if version is None:
            theirs = message.get("protocol")
            client = message.get("version")
            client = client if isinstance(client, str) and _VERSION.fullmatch(client) else "?"
            err = VersionMismatch(
                f"ceo {client} speaks protocol {_range(theirs)}, but ceo-helper "
                f"{__version__} on {self.session.host} speaks {_range(PROTOCOL)}: upgrade the older one")
            self.send({"error": err.to_wire()})
            return err.exit_code
        self.send({"hello": "ceo-helper", "version": __version__, "protocol": version,
                   "host": self.session.host, "roles": self.session.roles, "caller": self.session.caller,
                   "principal": self.session.principal})
        return None

    def handle(self, message: dict):
        rid = message.get("id")
        if not isinstance(rid, (int, str)) or isinstance(rid, bool):
            self.send({"id": None, "error": BadRequest("a request needs an id (number or string)").to_wire()})
            return
        emit = lambda event: self.send({"id": rid, "event": event})  # noqa: E731
        if "undo" in message:
            return self.undo(rid, message["undo"], emit)
        if "release" in message:
            return self.release(rid, message["release"])
        verb = self.find(message)
        if isinstance(verb, CeoError):
            self.send({"id": rid, "error": verb.to_wire()})
            return
        ctx = Context(self.session, rid, bool(message.get("check")), emit,
                      lambda args, outcome, error=None, **notes: write_audit(
                          self.session, verb, args, outcome, error, rid, **{**ctx.notes, **notes}))
        try:
            args = self.resolve(verb, message, ctx)
            size = self.room_to_keep(args) if message.get("keep") and not ctx.check else 0
            result = verb.fn(ctx, **args)
        except Exception as exc:
            stuck = ctx.steps.rollback()
            err = exc if isinstance(exc, CeoError) else self.internal(exc, message)
            if stuck:  # what it left must be said, in the one line the user reads, and exit 4
                err = PartlyDone(f"{err.message}; could not undo: {', '.join(stuck)}", not_undone=stuck)
            outcome = "refused" if isinstance(err, (NotPermitted, BadInput)) else "failed"
            args = ctx.args
            if args is None:  # refused before its arguments were valid: record only their names
                raw = message.get("args")
                declared = {p.name for p in verb.params}
                args = {k: "(not valid)" for k in (raw if isinstance(raw, dict) else {}) if k in declared}
            self.audit(verb, args, ctx, outcome, err.message)
            self.send({"id": rid, "error": err.to_wire()})
            return
        if not (isinstance(result, dict) and result.get("changed") is False):  # a no-op changed nothing
            self.audit(verb, args, ctx, "done")
        if message.get("keep") and ctx.steps.done and not ctx.check:
            # The client may undo this request later in the session, when a later step of its
            # multi-host operation fails. Only this session can: the log lives in this process.
            self.session.forget(rid)  # an id used again: the newer request is the one kept
            self.session.kept[rid] = (verb, args, ctx, time.monotonic(), size)
            self.session.kept_bytes += size
        self.send({"id": rid, "result": result})

    def room_to_keep(self, args: dict) -> int:
        """The size of a request that asks to be kept, or LimitReached if the session has no room."""
        session, size = self.session, len(encode(args))
        most, room = session.limit("keep_max", KEEP_MAX), session.limit("keep_bytes", KEEP_BYTES)
        if len(session.kept) >= most:
            raise LimitReached(f"this session already keeps {most} requests for undo, its most: "
                               "release some first")
        if session.kept_bytes + size > room:
            raise LimitReached(f"this session's kept requests would exceed {room} bytes of arguments: "
                               "release some first")
        return size

    def release(self, rid, targets):
        """Forget kept requests (the client's operation has ended): they can no longer be undone."""
        if not isinstance(targets, list) or not all(isinstance(t, (int, str)) and not isinstance(t, bool)
                                                    for t in targets):
            self.send({"id": rid, "error": BadRequest("release takes a list of request ids").to_wire()})
            return
        self.send({"id": rid, "result": {"released": [t for t in targets if self.session.forget(t)]}})

    def undo(self, rid, target, emit):
        """Roll back a completed request of this session (its steps, in reverse), if it is recent
        and its caller may still make it."""
        kept = self.session.forget(target) if isinstance(target, (int, str)) else None
        if kept is None:
            self.send({"id": rid, "error": BadRequest(f"nothing to undo for request {str(target)[:40]} "
                                                      "in this session").to_wire()})
            return
        verb, args, ctx, when, _ = kept
        window = self.session.limit("undo_window", UNDO_WINDOW)
        if time.monotonic() - when > window:
            self.send({"id": rid, "error": BadRequest(f"request {str(target)[:40]} is past the undo window "
                                                      f"({window} s): it can no longer be undone").to_wire()})
            return
        try:  # the caller's rights as they are now, not as they were when the request was made
            self.session.groups(fresh=True)
            policy.authorize(ctx, verb, args)
        except CeoError as exc:
            err = exc if isinstance(exc, NotPermitted) else NotPermitted(
                f"cannot check whether {self.session.caller} may undo {verb.qualname}: {exc.message}")
            self.audit(verb, args, ctx, "refused", f"undo: {err.message}")
            self.send({"id": rid, "error": err.to_wire()})
            return
        ctx.steps.emit = emit
        stuck = ctx.steps.rollback()
        self.audit(verb, args, ctx, "undone" if not stuck else "partly undone")
        if stuck:
            self.send({"id": rid, "error": PartlyDone(f"could not undo: {', '.join(stuck)}",
                                                      not_undone=stuck).to_wire()})
        else:
            self.send({"id": rid, "result": {"undone": target}})

    def find(self, message: dict):
        plugin, name = message.get("plugin"), message.get("verb")
        if not isinstance(plugin, str) or not isinstance(name, str):
            return BadRequest("a request needs a plugin and a verb")
        verb = self.session.registry.verb(plugin, name)
        if verb is None:
            return BadRequest(f"unknown verb {plugin[:64]}.{name[:64]}")
        return verb

    def resolve(self, verb, message: dict, ctx) -> dict:
        if verb.composite:
            raise BadRequest(f"{verb.qualname} is run by the ceo client, not by the helper")
        if verb.role != "any" and verb.role not in self.session.roles:
            raise BadRequest(f"{verb.qualname} runs on the {verb.role} host; this is {self.session.host} "
                             f"({', '.join(self.session.roles) or 'no roles'})")
        args = ctx.args = verb.validate(message.get("args", {}))
        if message.get("check") and verb.mutating and not verb.check:
            raise BadInput(f"{verb.qualname} has no --check mode")
        policy.authorize(ctx, verb, args)
        return args

    def audit(self, verb, args, ctx, outcome, error=None):
        if not verb.mutating or ctx.check or verb.audit_rows:
            return
        if not isinstance(args, dict):
            args = {}
        declared = {p.name for p in verb.params}
        ctx.audit(verb.redact({k: v for k, v in args.items() if k in declared}), outcome, error)

    def internal(self, exc: Exception, message: dict) -> CeoError:
        import traceback  # only on a bug: 2 ms off every helper's start
        log(f"internal error in {message.get('plugin')}.{message.get('verb')}:\n{traceback.format_exc()}")
        return CeoError(f"internal error in {message.get('plugin')}.{message.get('verb')} on "
                        f"{self.session.host}: {type(exc).__name__} (details in the helper's log)")

    def serve(self, inp) -> int:
        negotiated = False
        while True:
            ended = self.enough_refusals()
            if ended is not None:
                return ended
            line, too_long = read_line(inp)
            if line is None:
                return 0
            if too_long:
                self.send({"id": None, "error": BadRequest("request line longer than 1 MiB").to_wire()})
                continue
            if not line.strip():
                continue
            try:
                message = decode(line)
            except ValueError:
                self.send({"id": None, "error": BadRequest("request is not valid JSON text").to_wire()})
                continue
            if not isinstance(message, dict):
                self.send({"id": None, "error": BadRequest("request is not a JSON object").to_wire()})
                continue
            if not negotiated:
                refusal = self.hello(message)
                if refusal is not None:
                    return refusal
                negotiated = True
                continue
            try:
                self.handle(message)
            except (BrokenPipeError, KeyboardInterrupt):
                raise
            except Exception as exc:  # a bug in the helper itself: log it, answer, keep serving
                rid = message.get("id")
                rid = rid if isinstance(rid, (int, str)) and not isinstance(rid, bool) else None
                self.send({"id": rid, "error": self.internal(exc, message).to_wire()})

    def enough_refusals(self) -> int | None:
        """After a session's most refused requests: one clear error, and the session ends."""
        most = self.session.limit("max_refusals", MAX_REFUSALS)
        if self.session.refusals < most:
            return None
        log(f"ended the session of {self.session.caller} after {most} refused requests")
        err = LimitReached(f"{most} refused requests in this session, its most: the helper ends it")
        self.send({"id": None, "error": err.to_wire()})
        return err.exit_code


def _clip(value):
    """Audit records keep values short (a refused request's args are unchecked)."""
    if isinstance(value, str) and len(value) > 200:
        return value[:200] + "..."
    if isinstance(value, list):
        return [_clip(v) for v in value[:50]]
    return value


def _range(r) -> str:
    try:
        return f"{int(r[0])}-{int(r[1])}"
    except (TypeError, ValueError, IndexError, KeyError):
        return "(none given)"


def main(argv=None) -> int:
    out = sys.stdout.buffer
    try:
        session = Session()
    except CeoError as exc:
        if isinstance(exc, UnsafeConfig):  # its message names the file, never a value from it
            log(f"cannot start: {exc.message}")
            exc = CeoError(f"the helper refuses to start: {exc.message}")
        elif not isinstance(exc, NotPermitted):  # a config problem: details to the log, not to callers
            log(f"cannot start: {exc.message}")
            exc = CeoError("the helper is misconfigured on this host (details in its log)")
        out.write(encode({"error": exc.to_wire()}))
        out.flush()
        return exc.exit_code
    except Exception:
        import traceback
        log(traceback.format_exc())
        out.write(encode({"error": CeoError("the helper could not start (details in its log)").to_wire()}))
        out.flush()
        return 1
    try:
        return Server(session, out).serve(sys.stdin.buffer)
    except (BrokenPipeError, KeyboardInterrupt):
        return 0
    finally:
        session.close()
        _quick_exit()


def _quick_exit():
    """The session is over: let the interpreter's last collection skip every object alive now.
    With ldap3 and the plugins loaded it would take ~15 ms, which the client waits out before it
    can exit. Finalizers and atexit still run; only the cycle search over these objects is skipped."""
    import gc
    gc.freeze()
