"""What the client does to be quick keeps what it promised: paramiko imported without invoke and
importlib.metadata but with its version, a composite verb's hosts opened in parallel (one
session each, errors told to whoever asks), OpenSSH's connection sharing only when asked."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import textwrap
import threading
from pathlib import Path

import pytest

from ceo.config import Config
from ceo.errors import BadInput, Unreachable
from ceo.inventory import Inventory

REPO = Path(__file__).resolve().parent.parent


def test_paramiko_is_imported_without_invoke_or_metadata_and_keeps_its_version():
    code = textwrap.dedent("""
        import json, sys
        from ceo.transport import _import_paramiko
        paramiko = _import_paramiko()
        skipped = "importlib.metadata" not in sys.modules and sys.modules.get("invoke", 0) is None
        import importlib.metadata  # the real one, for anyone after us
        print(json.dumps([skipped, paramiko.__version__, importlib.metadata.version("paramiko"),
                          paramiko.transport.Transport._CLIENT_ID, importlib.metadata.version("rich")]))
    """)
    proc = subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    skipped, version, real, client_id, rich = json.loads(proc.stdout)
    assert skipped and version == real and client_id == f"paramiko_{real}" and rich


def test_paramikos_agent_proxy_and_sftp_classes_stand_in_until_used_then_are_the_real_ones():
    code = textwrap.dedent("""
        import json, sys
        from ceo.transport import _import_paramiko
        paramiko = _import_paramiko()
        deferred = [m for m in sys.modules if m.startswith(("paramiko.agent", "paramiko.proxy", "paramiko.sftp_", "pathlib"))]
        path = paramiko.pkey.Path("/etc")  # a private key's file (PKey.from_path): the real pathlib
        real_path = [type(path).__module__, path.is_dir(), isinstance(path, paramiko.pkey.Path)]
        agent = paramiko.Agent()  # made as paramiko's client makes it (allow_agent)
        real_agent = type(agent).__module__, isinstance(agent, paramiko.Agent), isinstance(1, paramiko.Agent)
        agent.close()
        sftp = paramiko.SFTPClient.from_transport.__qualname__
        import paramiko.proxy  # an ordinary import later is the real module
        print(json.dumps([deferred, real_path, real_agent, sftp, paramiko.proxy.ProxyCommand.__module__,
                          isinstance(paramiko.proxy.ProxyCommand.__new__(paramiko.proxy.ProxyCommand),
                                     paramiko.ProxyCommand)]))
    """)
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}  # Agent() asks no agent
    proc = subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    deferred, real_path, real_agent, sftp, proxy_module, is_proxy = json.loads(proc.stdout)
    assert deferred == [] and real_path == ["pathlib", True, True] and real_agent == ["paramiko.agent", True, False]
    assert sftp == "SFTPClient.from_transport" and proxy_module == "paramiko.proxy" and is_proxy


@pytest.mark.parametrize("logging_first", [False, True])
def test_paramikos_loggers_say_nothing_whether_or_not_logging_was_imported_before_it(logging_first):
    """Without logging imported (a `ceo` run), paramiko's loggers are quiet stand-ins and neither
    logging, traceback nor its ssh-config module is imported; with it (the UI, a library user),
    its real loggers get a NullHandler. Either way a failed handshake prints nothing, and what
    else paramiko uses of these modules is the real thing."""
    code = textwrap.dedent(f"""
        import json, socket, sys, threading
        if {logging_first}:
            import logging
        from ceo.transport import _import_paramiko
        paramiko = _import_paramiko()
        loaded = [m for m in ("logging", "traceback", "paramiko.config") if m in sys.modules]
        listener = socket.create_server(("127.0.0.1", 0))
        def answer_and_hang_up():
            conn, _ = listener.accept()
            conn.sendall(b"HTTP/1.1 400 Bad Request\\r\\n\\r\\n")
            conn.recv(100)  # its banner: hung up on with nothing unread, the close is no reset
            conn.close()
        threading.Thread(target=answer_and_hang_up).start()
        transport = paramiko.Transport(socket.create_connection(listener.getsockname()))
        try:
            transport.start_client(timeout=5)
            error = None
        except paramiko.SSHException as exc:
            error = str(exc)
        transport.close()
        port = paramiko.SSHConfig.from_text("Host x\\n  Port 2222\\n").lookup("x")["port"]
        try:
            raise ValueError("for tb_strings")
        except ValueError:
            lines = paramiko.util.tb_strings()
        import logging
        print(json.dumps([loaded, error, port, lines[0], logging.getLogger("paramiko").__class__.__name__]))
    """)
    proc = subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    loaded, error, port, first_line, logger = json.loads(proc.stdout)
    assert loaded == (["logging", "traceback"] if logging_first else [])
    assert error == "Error reading SSH protocol banner" and port == "2222"
    assert first_line == "Traceback (most recent call last):" and logger == "Logger"


class _Scripted:
    """A Session's transport half, scripted (pure logic): the helper's lines, then its end."""

    def __init__(self, lines, interrupt_after=None):
        self.lines, self.sent, self.calls, self.interrupt_after = list(lines), [], [], interrupt_after

    def _write(self, data):
        self.sent.append(json.loads(data))

    def _readline(self):
        if self.interrupt_after is not None and len(self.sent) > self.interrupt_after:
            raise KeyboardInterrupt  # Ctrl-C while a reply is awaited
        return (json.dumps(self.lines.pop(0)) + "\n").encode() if self.lines else b""

    def finish(self):
        self.calls.append("finish")

    def _wait_for_exit(self, seconds):
        self.calls.append(("wait", seconds))

    def _end(self):
        self.calls.append("end")


def _scripted_session(lines, interrupt_after=None):
    from ceo import transport
    cls = type("ScriptedSession", (_Scripted, transport.Session), {})
    session = cls.__new__(cls)
    transport.Session.__init__(session, None, (), None)
    _Scripted.__init__(session, lines, interrupt_after)
    return session


def test_a_session_whose_requests_are_all_answered_closes_without_waiting_for_the_helpers_exit():
    session = _scripted_session([{"id": 1, "event": "half way"}, {"id": 1, "result": "a"},
                                 {"id": 2, "error": {"name": "BadInput", "message": "no", "exit": 2}},
                                 {"id": 3, "result": "c"}, {"id": 4, "result": "d"}])
    assert session.request("p", "v", {}) == "a"
    with pytest.raises(BadInput):
        session.request("p", "v", {})
    replies = {}
    assert session.stream([("p", "v", {}, False)] * 2, replies.__setitem__) == (2, False)
    assert replies == {0: "c", 1: "d"} and session.unanswered == 0
    session.close()
    assert session.calls == ["finish", "end"]


def test_a_session_closed_with_a_request_unanswered_waits_for_the_helper_that_may_be_undoing_it():
    session = _scripted_session([], interrupt_after=0)
    with pytest.raises(KeyboardInterrupt):
        session.request("members", "renew", {"uid": "x"})
    session.close()
    assert session.unanswered == 1 and session.calls == ["finish", ("wait", 10), "end"]


def test_ed25519_host_keys_are_checked_with_cryptography_not_pynacl_and_forgeries_refused():
    code = textwrap.dedent("""
        import json, sys
        from ceo.transport import _import_paramiko
        paramiko = _import_paramiko()
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
        secret = Ed25519PrivateKey.generate()
        raw = secret.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        blob = paramiko.Message(); blob.add_string("ssh-ed25519"); blob.add_string(raw)
        key = paramiko.Ed25519Key(data=blob.asbytes())
        nacl_before = [m for m in sys.modules if m.startswith("nacl")]
        def sig(data):
            m = paramiko.Message(); m.add_string("ssh-ed25519"); m.add_string(secret.sign(data)); m.rewind(); return m
        good = key.verify_ssh_sig(b"exchange hash", sig(b"exchange hash"))
        other = key.verify_ssh_sig(b"another hash", sig(b"exchange hash"))
        forged = bytearray(sig(b"exchange hash").asbytes()); forged[-1] ^= 1
        tampered = key.verify_ssh_sig(b"exchange hash", paramiko.Message(bytes(forged)))
        same = key == paramiko.Ed25519Key(data=blob.asbytes()) and hash(key) == hash(paramiko.Ed25519Key(data=blob.asbytes()))
        import nacl.signing  # the real one agrees
        real = nacl.signing.VerifyKey(raw).verify(b"exchange hash", secret.sign(b"exchange hash")) == b"exchange hash"
        try:
            paramiko.Ed25519Key(data=(lambda m: (m.add_string("ssh-ed25519"), m.add_string(raw[:31]), m)[2])(paramiko.Message()).asbytes())
            short = "accepted"
        except ValueError:
            short = "refused"
        print(json.dumps([nacl_before, good, other, tampered, same, real, key.asbytes() == blob.asbytes(), short]))
    """)
    proc = subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [[], True, False, False, True, True, True, "refused"]


def test_the_collector_is_off_for_a_runs_start_and_on_once_a_helper_has_said_hello(cluster):
    """ceo.cli turns the cycle collector off while it imports (its passes are ~10% of the start)
    and transport.started() turns it on again, with the start's objects frozen, at the hello."""
    code = textwrap.dedent("""
        import gc, json, os, sys
        from ceo import cli, transport
        seen = {}
        opening, hello = transport.ParamikoSession._open, transport.started
        def _open(self):
            seen["while opening"] = gc.isenabled(); return opening(self)
        def started():
            hello(); seen["after hello"] = [gc.isenabled(), gc.get_freeze_count() > 0]
        transport.ParamikoSession._open, transport.started = _open, started
        exit_now = os._exit
        def _exit(code):
            sys.stderr.write(json.dumps(seen)); sys.stderr.flush(); exit_now(code)
        os._exit = _exit
        sys.argv = ["ceo", "members", "get", "regular1", "--json"]
        cli.run()
    """)
    proc = subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-c", code], capture_output=True, text=True,
                          env=cluster.env("ofstaff"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["result"]["name"] == "Regular One"
    assert json.loads(proc.stderr) == {"while opening": False, "after hello": [True, True]}


def _run(cluster):
    from ceo.output import Output
    from ceo.runner import Run
    return Run(Inventory.load(str(REPO / "hosts.ini")), Config.load("/etc/csc/ceo.ini"), Output(as_json=True))


def _testkit_composite(cluster, name):
    """(its declared roles, its result, the hosts its run opened a session to)"""
    from ceo.discovery import discover
    from ceo.runner import run_verb
    verb = discover(Config.load("/etc/csc/ceo.ini").get("plugins", "site_dir")).verb("testkit", name)
    run = _run(cluster)
    try:
        result = run_verb(run, verb, {})
        hosts = sorted(run.pool.sessions)
    finally:
        run.close()
    return verb.roles, result, hosts


def test_a_composite_verb_opens_the_sessions_of_its_roles_at_once(cluster, as_user, monkeypatch, testkit):
    from ceo import transport
    as_user("ofstaff")
    events, lock = [], threading.Lock()
    opening = transport.Session.open

    def recorded(self):
        with lock:
            events.append(("start", self.host.name))
        try:
            return opening(self)
        finally:
            with lock:
                events.append(("end", self.host.name))
    monkeypatch.setattr(transport.Session, "open", recorded)
    roles, result, hosts = _testkit_composite(cluster, "twohosts")
    assert roles == ("ldap", "databases")
    assert result == {"ldap": "phosphoric-acid.csclub.internal", "databases": "coffee.csclub.internal"}
    assert hosts == ["coffee.csclub.internal", "phosphoric-acid.csclub.internal"]  # one session each
    # Both openings began before either ended: in parallel, not one after the other.
    assert [kind for kind, _ in events] == ["start", "start", "end", "end"], events


def test_the_one_host_twin_of_twohosts_opens_only_its_one_session(cluster, as_user, testkit):
    """The speed bench's baseline for what a second host adds: the same plugin and composite
    path as twohosts, one role fewer."""
    as_user("ofstaff")
    assert _testkit_composite(cluster, "onehost") == (("ldap",), {"ldap": "phosphoric-acid.csclub.internal"},
                                                      ["phosphoric-acid.csclub.internal"])


def test_a_started_session_that_fails_gives_its_own_error_once_and_is_not_tried_again(cluster, as_user,
                                                                                        monkeypatch, tmp_path):
    from ceo import transport
    as_user("ofstaff")
    inv = tmp_path / "hosts.ini"
    inv.write_text("[ldap]\nnowhere.csclub.internal ansible_host=127.0.0.9 ansible_port=2\n")
    tries = []
    opening = transport.ParamikoSession._open
    monkeypatch.setattr(transport.ParamikoSession, "_open", lambda self: (tries.append(1), opening(self)))
    pool = transport.Pool(Inventory.load(str(inv)), Config.load("/etc/csc/ceo.ini"))
    host = pool.inventory.host_for("ldap")
    pool.start([host])
    for thread in pool.openers:
        thread.join(30)
    with pytest.raises(Unreachable, match="cannot reach nowhere.csclub.internal .* at 127.0.0.9:2"):
        pool.for_host(host)
    assert len(tries) == 1 and pool.sessions == {}
    pool.close()


class _Host:
    def __init__(self, **vars):
        self.name, self.vars = "h.csclub.internal", vars


def _config(tmp_path, **ssh) -> Config:
    config = Config()
    config.parser.read_dict({"ssh": {"control_dir": str(tmp_path / "cm"), **ssh}})
    return config


def test_connection_sharing_is_opt_in_and_its_directory_private(tmp_path):
    from ceo.transport import control_options
    assert control_options(_Host(), _config(tmp_path)) == []
    assert control_options(_Host(ceo_ssh_control_persist="no"), _config(tmp_path, control_persist="60")) == []
    assert not (tmp_path / "cm").exists()
    expected = ["-o", "ControlMaster=auto", "-o", f"ControlPath={tmp_path / 'cm'}/%C", "-o", "ControlPersist=60"]
    assert control_options(_Host(), _config(tmp_path, control_persist="60")) == expected
    assert control_options(_Host(ceo_ssh_control_persist=60), _config(tmp_path)) == expected  # a host var wins
    assert (os.stat(tmp_path / "cm").st_mode & 0o777) == 0o700
    with pytest.raises(BadInput, match="is not a time"):
        control_options(_Host(ceo_ssh_control_persist="60; rm"), _config(tmp_path))
    os.chmod(tmp_path / "cm", 0o750)  # anyone who can reach its sockets logs in as the user
    with pytest.raises(BadInput, match="must be the user's own, mode 0700"):
        control_options(_Host(ceo_ssh_control_persist="10m"), _config(tmp_path))


def test_the_ssh_transport_shares_one_login_across_runs_only_when_asked(cluster, tmp_path):
    log = cluster.state / "hosts" / "phosphoric-acid" / "sshd.log"
    cm = Path(tempfile.mkdtemp(prefix="cm", dir="/tmp"))  # a socket's path has at most 107 bytes
    cfg = tmp_path / "ceo.ini"
    cfg.write_text(Path("/etc/csc/ceo.ini").read_text().replace("[ssh]\n", f"[ssh]\ncontrol_dir = {cm}\n"))

    def logins(**host_vars) -> int:
        line = next(l for l in (REPO / "hosts.ini").read_text().splitlines() if l.startswith("phosphoric-acid"))
        inv = tmp_path / "hosts.ini"
        inv.write_text(f"[ldap]\n{line} ansible_connection=ssh " + " ".join(f"{k}={v}" for k, v in host_vars.items()))
        before = log.read_text().count("Accepted gssapi-with-mic")
        for _ in range(3):
            proc = cluster.run(["ceo", "-i", str(inv), "-c", str(cfg), "doctor", "ping"], "ofstaff")
            assert proc.returncode == 0, proc.stderr
        return log.read_text().count("Accepted gssapi-with-mic") - before

    try:
        assert logins() == 3
        assert logins(ceo_ssh_control_persist=30) == 1  # one master, whose login the next runs reuse
    finally:
        for sock in cm.glob("*"):
            subprocess.run(["ssh", "-O", "exit", "-o", f"ControlPath={sock}", "x"], capture_output=True)
        shutil.rmtree(cm)


def test_a_composite_verb_declares_only_inventory_roles():
    from ceo import inventory, plugin
    assert plugin.INVENTORY_ROLES == inventory.ROLES
    p = plugin.Plugin("x", "x")
    with pytest.raises(ValueError, match="unknown inventory role 'ldpa'"):
        p.composite("y", "y", roles=("ldap", "ldpa"))(lambda run: None)


def test_sessions_opened_in_threads_find_paramiko_imported_and_no_stand_in_left_for_their_caller():
    """Pool.start imports gssapi and paramiko in the calling thread before the openers start, so
    that what the caller imports meanwhile (logging, say) is never one of the import's stand-ins;
    and a stand-in asked for a name it lacks while it is in place says so, not a loop."""
    code = textwrap.dedent("""
        import json, sys
        from ceo import transport
        with transport._StandIns(transport._deferred_paramiko()):
            import logging
            try:
                logging.NullHandler
                inside = "no error"
            except ImportError as exc:
                inside = str(exc)
        from ceo.config import Config
        from ceo.inventory import Inventory
        pool = transport.Pool(Inventory.parse("[ldap]\\nnowhere.csclub.internal ansible_host=127.0.0.9 ansible_port=2\\n"),
                              Config())
        pool.start(pool.inventory.hosts.values())
        imported = "paramiko" in sys.modules and "paramiko.transport" in sys.modules
        left = [m for m in ("logging", "traceback", "pathlib") if "stand-in" in repr(sys.modules.get(m))]
        import logging, pathlib
        real = [logging.NullHandler.__module__, pathlib.Path.__module__]
        try:
            pool.for_host(pool.inventory.hosts["nowhere.csclub.internal"])
        except Exception as exc:
            opened = type(exc).__name__
        print(json.dumps([inside, imported, left, real, opened]))
    """)
    proc = subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    inside, imported, left, real, opened = json.loads(proc.stdout)
    assert "stood in for while paramiko is imported" in inside
    assert imported and left == [] and real == ["logging", "pathlib"] and opened == "Unreachable"
