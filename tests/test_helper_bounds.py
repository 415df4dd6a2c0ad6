"""The helper's own bounds, spoken raw over real GSSAPI SSH (or to a helper started as sudo
would start it) to the real `ceo-helper`, judged in LDAP, the filesystem and the audit file:

1. undo reaches only what the same operation did moments ago: bounded in time (`[helper]
   undo_window`), forgotten on `release` (which the client sends when a composite verb ends),
   and re-authorized with the caller's groups as LDAP has them now;
2. a session's refusals and kept requests are bounded (count and size), with a clear error;
3. secrets never appear in messages, and an unexpected exception reaches the client (and the
   audit record) only as a generic error;
4. through sshd, the realm check fails closed.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import time
import uuid

import pytest

from rawhelper import HELLO, Raw
from test_helper_protocol import (  # noqa: F401  (audit and ldap are fixtures)
    NO_ID, _line, assert_error, assert_no_traceback, audit, helper_processes, ldap, ldap_entry, sudo_helper)

pytestmark = pytest.mark.usefixtures("testkit")  # tests/plugins/testkit.py, loaded for this module

# The helper's defaults (ceo/helper.py), which the sandbox's ceo.ini does not change.
MAX_REFUSALS = 100
KEEP_MAX = 100
KEEP_BYTES = 1 << 20
TIMEOUT = 20


def _group_dn(cluster, name):
    return f"cn={name},ou=Group,{cluster.base_dn}"


def _user_dn(cluster, uid):
    return f"uid={uid},ou=People,{cluster.base_dn}"


def _drop_entry(ldap, dn):
    if ldap_entry(ldap, dn) is not None:
        assert ldap.delete(dn), ldap.result
    assert ldap_entry(ldap, dn) is None


class LocalHelper:
    """The sandbox's ceo-helper as root on the host itself (local mode: cron's way), whose
    config may be a test's own: the only way to give the helper settings of a test's choosing."""

    def __init__(self, config_path):
        from sandbox import topology
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CEO_CONFIG": str(config_path),
               "CEO_HOST": topology.fqdn("phosphoric-acid")}
        self.proc = subprocess.Popen([str(topology.HELPER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env, bufsize=0)
        self.buf = b""

    def send_json(self, message):
        self.proc.stdin.write(_line(message))
        self.proc.stdin.flush()

    def reply(self) -> dict:
        while b"\n" not in self.buf:
            ready, _, _ = select.select([self.proc.stdout], [], [], TIMEOUT)
            assert ready, "the helper did not answer"
            chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
            assert chunk, "the helper closed its output instead of answering"
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def final(self, rid):
        events = []
        while True:
            reply = self.reply()
            assert reply.get("id") == rid, reply
            if "event" in reply:
                events.append(reply["event"])
                continue
            return events, reply

    def finish(self):
        self.proc.stdin.close()
        rest = self.proc.stdout.read()
        err = self.proc.stderr.read()
        return rest, self.proc.wait(TIMEOUT), err

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(TIMEOUT)


# --- 1. undo: bounded in time, released when the operation ends, re-authorized -------------

def test_undo_is_refused_once_the_undo_window_has_passed(cluster, ldap, audit, tmp_path):
    """A kept request older than `[helper] undo_window` (2 s here) is no longer undoable: the
    entry it made stays. (Waiting past a configured bound, not timing anything.)"""
    config = tmp_path / "ceo.ini"
    config.write_text(open("/etc/csc/ceo.ini").read() + "\n[helper]\nundo_window = 2\n")
    name = f"win{uuid.uuid4().hex[:8]}"
    dn = _group_dn(cluster, name)
    made, undo = f"made-{uuid.uuid4()}", f"undo-{uuid.uuid4()}"
    helper = LocalHelper(config)
    try:
        helper.send_json(HELLO)
        assert helper.reply()["caller"] == "root"
        helper.send_json({"id": made, "plugin": "testkit", "verb": "mkentry", "args": {"name": name}, "keep": True})
        events, reply = helper.final(made)
        assert reply == {"id": made, "result": {}}, reply
        assert ldap_entry(ldap, dn) is not None
        time.sleep(3)
        helper.send_json({"id": undo, "undo": made})
        events, reply = helper.final(undo)
        assert events == [], events
        err = assert_error(reply, "BadRequest", rid=undo)
        assert "undo window" in err["message"], err
        assert ldap_entry(ldap, dn) is not None  # the entry the old request made is still there
        rest, status, stderr = helper.finish()
        assert (rest, status, stderr) == (b"", 0, b"")
        assert [r["outcome"] for r in audit({made})] == ["done"]
    finally:
        helper.kill()
        _drop_entry(ldap, dn)


def test_undo_rechecks_the_callers_rights_as_ldap_has_them_now(cluster, connect, ldap, audit):
    """regular2, made office for a moment, keeps a request; once out of office again, the same
    session's undo is refused (NotPermitted), and what the request made stays."""
    import ldap3
    office, member = _group_dn(cluster, "office"), _user_dn(cluster, "regular2")
    name = f"rights{uuid.uuid4().hex[:8]}"
    dn = _group_dn(cluster, name)
    made, undo = f"made-{uuid.uuid4()}", f"undo-{uuid.uuid4()}"
    assert member not in ldap_entry(ldap, office).get("uniqueMember", [])
    try:
        assert ldap.modify(office, {"uniqueMember": [(ldap3.MODIFY_ADD, [member])]}), ldap.result
        session = Raw(connect("phosphoric-acid", "regular2"))
        assert session.hello()["caller"] == "regular2"
        events, reply = session.request(made, "testkit", "mkentry", {"name": name}, keep=True)
        assert reply == {"id": made, "result": {}}, reply
        assert ldap_entry(ldap, dn) is not None
        assert ldap.modify(office, {"uniqueMember": [(ldap3.MODIFY_DELETE, [member])]}), ldap.result
        session.send_json({"id": undo, "undo": made})
        events, reply = session.final(undo)
        assert events == [], events
        err = assert_error(reply, "NotPermitted", rid=undo, exit_code=3)
        assert "regular2" in err["message"], err
        assert ldap_entry(ldap, dn) is not None
        rest, status, stderr = session.finish()
        assert (rest, status) == (b"", 0)
        assert_no_traceback(session, stderr)
        assert [(r["caller"], r["outcome"]) for r in audit({made})] == [("regular2", "done"), ("regular2", "refused")]
    finally:
        if member in ldap_entry(ldap, office).get("uniqueMember", []):
            assert ldap.modify(office, {"uniqueMember": [(ldap3.MODIFY_DELETE, [member])]}), ldap.result
        assert member not in ldap_entry(ldap, office).get("uniqueMember", [])
        _drop_entry(ldap, dn)


def test_release_forgets_kept_requests(cluster, connect, ldap):
    name = f"rel{uuid.uuid4().hex[:8]}"
    dn = _group_dn(cluster, name)
    made, release, undo, bad = (f"{w}-{uuid.uuid4()}" for w in ("made", "release", "undo", "bad"))
    try:
        session = Raw(connect("phosphoric-acid", "ofstaff"))
        session.hello()
        _, reply = session.request(made, "testkit", "mkentry", {"name": name}, keep=True)
        assert reply == {"id": made, "result": {}}, reply
        session.send_json({"id": release, "release": [made, "never-kept"]})
        assert session.final(release) == ([], {"id": release, "result": {"released": [made]}})
        session.send_json({"id": undo, "undo": made})
        err = assert_error(session.final(undo)[1], "BadRequest", rid=undo)
        assert "nothing to undo" in err["message"], err
        assert ldap_entry(ldap, dn) is not None
        session.send_json({"id": bad, "release": "all"})
        assert_error(session.final(bad)[1], "BadRequest", rid=bad)
        assert session.finish() == (b"", 0, b"")
    finally:
        _drop_entry(ldap, dn)


def test_a_composite_verb_releases_its_kept_requests_when_it_ends(cluster, as_user, ldap, monkeypatch):
    """After `testkit multistep` succeeds, the helpers no longer hold its undo logs: an undo of
    its steps on the same sessions finds nothing, and what they made stays."""
    from ceo.config import Config
    from ceo.discovery import discover
    from ceo.errors import BadRequest
    from ceo.inventory import Inventory
    from ceo.output import Output
    from ceo.runner import Run, run_verb
    as_user("ofstaff")
    config = Config.load("/etc/csc/ceo.ini")
    verb = discover(config.get("plugins", "site_dir")).verb("testkit", "multistep")
    kept = []
    call = Run.call

    def recording_call(self, qualname, args, **kw):
        result = call(self, qualname, args, **kw)
        if kw.get("keep"):
            kept.append((self.last_session, self.last_session.last_id, qualname))
        return result
    monkeypatch.setattr(Run, "call", recording_call)
    name = f"comp{uuid.uuid4().hex[:8]}"
    dn, home = _group_dn(cluster, name), f"/users/{name}"
    run = Run(Inventory.load("/etc/csc/hosts.ini"), config, Output(as_json=True))
    try:
        assert run_verb(run, verb, verb.validate({"name": name})) == {"name": name}
        assert [q for _, _, q in kept] == ["testkit.mkentry", "testkit.mkdir", "testkit.explode"]
        for session, rid, qualname in kept:
            with pytest.raises(BadRequest) as caught:
                session.undo(rid)
            assert caught.value.name == "BadRequest", (qualname, caught.value.message)
        assert ldap_entry(ldap, dn) is not None and os.path.isdir(home)
    finally:
        run.close()
        _drop_entry(ldap, dn)
        shutil.rmtree(home, ignore_errors=True)
        assert not os.path.exists(home)


# --- 2. a session's refusals and kept requests are bounded --------------------------------------

def test_refusals_per_session_are_bounded(cluster, connect, audit):
    """An ordinary member's refused requests: the first MAX_REFUSALS are answered (and audited),
    then one clear error and the helper ends the session; the rest are never read."""
    client = connect("phosphoric-acid", "regular1")
    session = Raw(client)
    session.hello()
    run = uuid.uuid4().hex
    ids = [f"refuse-{i}-{run}" for i in range(MAX_REFUSALS + 5)]
    session.send(b"".join(_line({"id": rid, "plugin": "testkit", "verb": "staffonly", "args": {"note": "x"}})
                          for rid in ids))
    for rid in ids[:MAX_REFUSALS]:
        assert_error(session.reply(), "NotPermitted", rid=rid, exit_code=3)
    err = assert_error(session.reply(), "LimitReached", rid=None, exit_code=2)
    assert str(MAX_REFUSALS) in err["message"] and "refused" in err["message"], err
    rest, status, stderr = session.drain()
    assert (rest, status) == (b"", 2)
    assert_no_traceback(session, stderr)
    records = audit(set(ids))
    assert sorted(r["request"] for r in records) == sorted(ids[:MAX_REFUSALS])
    assert {r["outcome"] for r in records} == {"refused"}
    # A new session starts afresh.
    again = Raw(connect("phosphoric-acid", "regular1"))
    again.hello()
    _, ping = again.request(1, "doctor", "ping")
    assert "result" in ping, ping
    assert again.finish() == (b"", 0, b"")


def test_kept_requests_are_bounded_in_count(cluster, connect):
    session = Raw(connect("phosphoric-acid", "regular1"))
    session.hello()
    ids = [f"k{i}" for i in range(KEEP_MAX)]
    session.send(b"".join(_line({"id": rid, "plugin": "testkit", "verb": "keepme", "args": {"blob": ["x"]},
                                 "keep": True}) for rid in ids))
    for rid in ids:
        events, reply = session.final(rid)
        assert reply == {"id": rid, "result": {}}, reply
    events, reply = session.request("one-more", "testkit", "keepme", {"blob": ["x"]}, keep=True)
    assert events == [], events  # refused before it ran
    err = assert_error(reply, "LimitReached", rid="one-more")
    assert str(KEEP_MAX) in err["message"], err
    # Released ones make room again, and a request that does not ask to be kept is not limited.
    session.send_json({"id": "rel", "release": ids[:3]})
    assert session.final("rel") == ([], {"id": "rel", "result": {"released": ids[:3]}})
    _, reply = session.request("plain", "testkit", "keepme", {"blob": ["x"]})
    assert reply == {"id": "plain", "result": {}}, reply
    _, reply = session.request("now-fits", "testkit", "keepme", {"blob": ["x"]}, keep=True)
    assert reply == {"id": "now-fits", "result": {}}, reply
    session.send_json({"id": "undo", "undo": "now-fits"})
    assert session.final("undo")[1] == {"id": "undo", "result": {"undone": "now-fits"}}
    assert session.finish() == (b"", 0, b"")


def test_kept_requests_are_bounded_in_size(cluster, connect):
    """Three requests of ~340 KB of arguments fit in KEEP_BYTES (1 MiB), a fourth does not."""
    session = Raw(connect("phosphoric-acid", "regular1"))
    session.hello()
    blob = ["y" * 1024] * 330
    size = len(json.dumps({"blob": blob}))
    assert 3 * size < KEEP_BYTES - 10_000 and 4 * size > KEEP_BYTES + 10_000, size
    for i in range(3):
        _, reply = session.request(f"big{i}", "testkit", "keepme", {"blob": blob}, keep=True)
        assert reply == {"id": f"big{i}", "result": {}}, reply
    events, reply = session.request("big3", "testkit", "keepme", {"blob": blob}, keep=True)
    assert events == [], events
    err = assert_error(reply, "LimitReached", rid="big3")
    assert "bytes" in err["message"], err
    assert session.finish() == (b"", 0, b"")


# --- 3. secrets never in messages; internal exceptions only as a generic error ---------------

SECRET = "hunter2-" + uuid.uuid4().hex[:8]


@pytest.mark.parametrize("verb, args", [
    ("secret", {"password": SECRET + "\nnext line"}),  # a control character
    ("secretpin", {"pin": SECRET}),  # does not match the pattern
], ids=["control-character", "pattern"])
def test_a_refused_secret_is_never_shown(cluster, connect, audit, verb, args):
    session = Raw(connect("phosphoric-acid", "ofstaff"))
    session.hello()
    rid = f"secret-{uuid.uuid4()}"
    events, reply = session.request(rid, "testkit", verb, args)
    err = assert_error(reply, "BadInput", rid=rid)
    assert err["message"].startswith(f"{next(iter(args))}: "), err  # still says which parameter
    rest, status, stderr = session.finish()
    assert (rest, status) == (b"", 0)
    assert_no_traceback(session, stderr)
    assert not any(SECRET.encode() in line for line in session.lines), session.lines
    records = audit({rid})
    assert [r["outcome"] for r in records] == ["refused"], records
    assert SECRET not in json.dumps(records), records


@pytest.mark.parametrize("flags, outcome", [
    ({}, "failed"), ({"best_effort": True}, "done"), ({"in_undo": True}, "failed"),
], ids=["step", "best-effort-step", "undo"])
def test_an_internal_exception_reaches_the_client_only_as_a_generic_error(cluster, connect, audit, flags, outcome):
    """A step (or an undo) raising a non-ceo exception whose text holds a secret: neither its
    text nor the secret reaches the client or the audit record, only "internal error"."""
    session = Raw(connect("phosphoric-acid", "ofstaff"))
    session.hello()
    rid = f"leak-{uuid.uuid4()}"
    events, reply = session.request(rid, "testkit", "leak", {"token": SECRET, **flags})
    text = json.dumps([events, reply])
    assert SECRET not in text and "backend refused" not in text, text
    leaky = [e for e in events if e.get("step") in ("leaky", "the first step")
             and e["status"] in ("failed", "warning", "undo-failed")]
    assert len(leaky) == 1 and "internal error" in leaky[0]["message"], events
    if outcome == "failed" and flags.get("in_undo"):  # the undo that failed is named: partly done
        err = assert_error(reply, "PartlyDone", rid=rid, exit_code=4)
        assert err["message"].endswith("; could not undo: the first step"), err
    elif outcome == "failed":
        err = assert_error(reply, "StepFailed", rid=rid, exit_code=1)
        if not flags:
            assert "internal error" in err["message"], err
    else:
        assert reply == {"id": rid, "result": {}}, reply
    rest, status, stderr = session.finish()
    assert (rest, status) == (b"", 0)
    assert_no_traceback(session, stderr)
    records = audit({rid})
    assert [r["outcome"] for r in records] == [outcome], records
    assert records[0]["args"]["token"] == "***"
    assert SECRET not in json.dumps(records) and "backend refused" not in json.dumps(records), records


# --- 4. through sshd, the realm check fails closed ----------------------------------------------

def _sshauth_name() -> str:
    return "/tmp/sshauth." + uuid.uuid4().hex[:15]  # where and how sshd names its record


@pytest.mark.parametrize("case", ["missing", "nonexistent", "directory", "symlink", "fifo", "no-gssapi",
                                  "foreign-realm", "root-owned", "group-readable", "hard-linked",
                                  "not-sshds-name", "missing-ssh-client"])
def test_through_sshd_a_bad_authentication_record_is_refused(cluster, audit, tmp_path, case):
    """The helper started as sudo starts it from an sshd login (SSH_CONNECTION kept by sudoers),
    with the record of sshd's ExposeAuthInfo missing or not sshd's: refused before any request.
    The control case (a record as sshd writes it) is believed."""
    import pwd
    uid = pwd.getpwnam("regular1").pw_uid
    good = f"gssapi-with-mic regular1@{cluster.realm}\n"
    env = {"SUDO_USER": "regular1", "SUDO_UID": str(uid), "SSH_CONNECTION": "127.0.0.1 40000 127.0.0.2 22"}
    made = []

    def record(text=good, owner=uid, mode=0o600, path=None):
        path = path or _sshauth_name()
        with open(path, "w") as f:
            f.write(text)
        os.chown(path, owner, owner)
        os.chmod(path, mode)
        made.append(path)
        return path
    try:
        control = record()
        rid = f"realm-{uuid.uuid4()}"
        request = {"id": rid, "plugin": "testkit", "verb": "whoami", "args": {}}
        replies, status, stderr = sudo_helper({**env, "SSH_USER_AUTH": control}, HELLO, request)
        assert (status, stderr) == (0, ""), (replies, stderr)
        assert (replies[0]["caller"], replies[0]["principal"]) == ("regular1", f"regular1@{cluster.realm}"), replies

        if case == "missing":
            pass
        elif case == "missing-ssh-client":  # sshd's older variable says so just as well
            env = {**env, "SSH_CLIENT": env.pop("SSH_CONNECTION")}
        elif case == "nonexistent":
            env["SSH_USER_AUTH"] = _sshauth_name()
        elif case == "directory":
            env["SSH_USER_AUTH"] = _sshauth_name()
            os.mkdir(env["SSH_USER_AUTH"])
            os.chown(env["SSH_USER_AUTH"], uid, uid)
            made.append(env["SSH_USER_AUTH"])
        elif case == "symlink":
            env["SSH_USER_AUTH"] = _sshauth_name()
            os.symlink(control, env["SSH_USER_AUTH"])
            made.append(env["SSH_USER_AUTH"])
        elif case == "fifo":
            env["SSH_USER_AUTH"] = _sshauth_name()
            os.mkfifo(env["SSH_USER_AUTH"], 0o600)
            os.chown(env["SSH_USER_AUTH"], uid, uid)
            made.append(env["SSH_USER_AUTH"])
        elif case == "no-gssapi":
            env["SSH_USER_AUTH"] = record("publickey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB\n")
        elif case == "foreign-realm":
            env["SSH_USER_AUTH"] = record("gssapi-with-mic regular1@OTHER.INTERNAL\n")
        elif case == "root-owned":
            env["SSH_USER_AUTH"] = record(owner=0)
        elif case == "group-readable":
            env["SSH_USER_AUTH"] = record(mode=0o644)
        elif case == "hard-linked":
            env["SSH_USER_AUTH"] = _sshauth_name()
            os.link(record(), env["SSH_USER_AUTH"])
            made.append(env["SSH_USER_AUTH"])
        elif case == "not-sshds-name":
            env["SSH_USER_AUTH"] = record(path=str(tmp_path / "sshauth.fakefakefakefak"))
        if case == "missing-ssh-client":
            env.pop("SSH_USER_AUTH", None)
        rid = f"realm-{uuid.uuid4()}"
        request = {"id": rid, "plugin": "testkit", "verb": "staffonly", "args": {"note": "x"}}
        replies, status, stderr = sudo_helper(env, HELLO, request)
        assert (status, stderr) == (3, ""), (replies, stderr)
        assert len(replies) == 1, replies  # no hello, and the request is never read
        assert_error(replies[0], "NotPermitted", rid=NO_ID, exit_code=3)
        assert audit({rid}) == []
    finally:
        for path in made:
            if os.path.isdir(path) and not os.path.islink(path):
                os.rmdir(path)
            elif os.path.lexists(path):
                os.unlink(path)
        assert not any(os.path.lexists(p) for p in made)


def test_a_real_ssh_login_carries_sshds_environment_and_passes(cluster, connect):
    """Through real sshd and sudo: the helper sees SSH_CONNECTION (so it knows it came through
    sshd) and SSH_USER_AUTH, and believes the login."""
    client = connect("phosphoric-acid", "regular1")
    session = Raw(client)
    hello = session.hello()
    assert (hello["caller"], hello["principal"]) == ("regular1", f"regular1@{cluster.realm}"), hello
    (pid,) = helper_processes(client)
    with open(f"/proc/{pid}/environ", "rb") as f:
        names = {kv.split(b"=", 1)[0] for kv in f.read().split(b"\0") if b"=" in kv}
    assert {b"SSH_CONNECTION", b"SSH_USER_AUTH"} <= names, names
    _, ping = session.request(1, "doctor", "ping")
    assert "result" in ping, ping
    assert session.finish() == (b"", 0, b"")
