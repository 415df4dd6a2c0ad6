"""The helper's wire protocol, spoken raw over real GSSAPI SSH to the real `ceo-helper`.

No ceo client code is used here: each test opens an SSH channel (paramiko, like
test_sandbox.py), writes bytes and reads JSON lines, so what is proven is what any client,
friendly or not, gets from the helper: version negotiation, identity from sshd + sudo only
(SUDO_UID must be SUDO_USER's), arguments the CLI would have refused (a pipe as a forwarding
address), one error reply per bad line and the session going on, a clean exit on EOF,
pipelining, the login command being ignored, and undo reaching only the session's own
requests. Outcomes are judged in LDAP, the filesystem and the audit file.
"""

from __future__ import annotations

import json
import os
import uuid

import paramiko
import pytest

from ceo import __version__
from ceo.protocol import PROTOCOL

HOSTS = ["phosphoric-acid", "coffee", "mail"]
ROLES = {"phosphoric-acid": {"ldap", "kerberos", "homes"}, "coffee": {"databases"}, "mail": {"mail"}}
from rawhelper import HELLO, Raw

pytestmark = pytest.mark.usefixtures("testkit")  # tests/plugins/testkit.py, loaded for this module


@pytest.fixture
def audit(cluster):
    """audit(ids) -> the audit records written since the test started for these request ids.

    Filtered by id (unique to each test) because other sessions may share the sandbox.
    """
    path = cluster.state / "audit.jsonl"
    start = path.stat().st_size if path.exists() else 0

    def new_records(ids) -> list[dict]:
        if not path.exists():
            return []
        with open(path, "rb") as f:
            f.seek(start)
            records = [json.loads(line) for line in f.read().splitlines() if line.strip()]
        return [r for r in records if r.get("request") in ids]
    return new_records


@pytest.fixture(scope="module")
def ldap(cluster):
    """The directory itself (root over ldapi, SASL EXTERNAL): where outcomes are judged."""
    import ldap3
    server = ldap3.Server("ldapi://" + str(cluster.state / "ldap" / "ldapi").replace("/", "%2F"), get_info=ldap3.NONE)
    conn = ldap3.Connection(server, authentication=ldap3.SASL, sasl_mechanism=ldap3.EXTERNAL, sasl_credentials="",
                            auto_bind=True)
    yield conn
    conn.unbind()


def ldap_entry(ldap, dn: str) -> dict | None:
    """The entry's attributes, or None if LDAP says there is no such entry (any other answer fails)."""
    import ldap3
    ldap.search(dn, "(objectClass=*)", search_scope=ldap3.BASE, attributes=["*"])
    assert ldap.result["description"] in ("success", "noSuchObject"), ldap.result
    return ldap.entries[0].entry_attributes_as_dict if ldap.entries else None


def assert_only_refusals(records: list[dict], caller: str, refused_ids):
    """Exactly the audit records the protocol promises for refused requests, and nothing else.

    docs/protocol.md: every request to a `mutating` verb, not in check mode, writes one record;
    the helper (Server.handle) records a request refused for its arguments or its caller
    (BadInput, NotPermitted) with outcome "refused". So each id in `refused_ids` has exactly
    one record, "refused", credited to the real caller; no other id has any.
    """
    assert sorted(r.get("request") for r in records) == sorted(refused_ids), records
    for r in records:
        assert (r["caller"], r["outcome"]) == (caller, "refused"), r
        assert r.get("error"), r  # why it was refused


NO_ID = object()  # a hello's error carries no id at all


def assert_error(reply: dict, name: str, rid=None, exit_code=2, context=None) -> dict:
    """A well-formed error reply: stable name, exit code, one-line message, nothing internal."""
    why = (context, reply)
    if rid is NO_ID:
        assert set(reply) == {"error"}, why
    else:
        assert set(reply) == {"id", "error"}, why
        assert reply["id"] == rid, why
    err = reply["error"]
    assert err["name"] == name, why
    assert err["exit"] == exit_code, why
    message = err["message"]
    assert isinstance(message, str) and message.strip(), why
    assert "\n" not in message and "\r" not in message, why
    assert "Traceback" not in message and 'File "' not in message, why
    return err


def helper_processes(client: paramiko.SSHClient) -> set[int]:
    """Pids of the ceo-helper processes serving this SSH connection (through /proc: one pid space)."""
    ip, port = client.get_transport().sock.getsockname()[:2]
    tag = f"SSH_CONNECTION={ip} {port} ".encode()  # in the environment sshd gives the login (sudo)
    procs = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = f.read()
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        procs[int(entry)] = (ppid, argv, tag in env)

    def in_session(pid):
        seen = set()
        while pid in procs and pid not in seen:
            seen.add(pid)
            pid = procs[pid][0]
            if pid in procs and procs[pid][2]:
                return True
        return False
    return {pid for pid, (_, argv, _) in procs.items()
            if any(a.endswith(b"/ceo-helper") for a in argv) and not argv[0].endswith(b"sudo") and in_session(pid)}


def assert_no_traceback(session: Raw, stderr: bytes):
    assert stderr == b"", f"the helper wrote to stderr (reaches the client): {stderr[:2000]!r}"
    for line in session.lines:
        assert b"Traceback" not in line, line[:2000]


# --- 1. version negotiation -----------------------------------------------------------------

@pytest.mark.parametrize("theirs", [[99, 100], [0, 0], [2, 5]])  # [2, 5]: just above the helper's 1-1
def test_version_mismatch_is_refused_by_name_and_the_helper_exits(cluster, connect, theirs):
    session = Raw(connect("mail", "regular1"))
    session.send_json({**HELLO, "protocol": theirs})
    reply = session.reply()
    assert set(reply) == {"error"}, reply
    err = reply["error"]
    assert (err["name"], err["exit"]) == ("VersionMismatch", 1), err
    message = err["message"]
    assert f"{theirs[0]}-{theirs[1]}" in message, message  # the client's range
    assert f"{PROTOCOL[0]}-{PROTOCOL[1]}" in message, message  # the helper's range
    assert __version__ in message and cluster.hosts["mail"] in message, message
    # It hangs up by itself: our side is still open, yet its output ends and it exits 1.
    rest, status, err_out = session.drain()
    assert (rest, status) == (b"", 1)
    assert_no_traceback(session, err_out)


# Written for the helper in this tree, which speaks protocol 1-1 (ceo/protocol.py).
@pytest.mark.parametrize("theirs, chosen", [
    ([1, 5], 1),  # a newer client: the highest the helper speaks
    ([0, 1], 1),  # an older client: the ranges share exactly one version, the helper's lowest
    ([1, 1], 1),
    ([-3, 1], 1),
], ids=["newer", "older", "same", "wide-below"])
def test_hello_picks_the_highest_version_both_speak(cluster, connect, theirs, chosen):
    assert PROTOCOL == (1, 1), "the cases above are written for a helper speaking 1-1: revisit them"
    session = Raw(connect("coffee", "regular1"))
    reply = session.hello(protocol=theirs)
    assert reply["protocol"] == chosen, reply
    _, ping = session.request(1, "doctor", "ping")  # and it goes on serving at that version
    assert ping == {"id": 1, "result": {"pong": True, "host": cluster.hosts["coffee"]}}, ping
    assert session.finish() == (b"", 0, b"")


@pytest.mark.parametrize("theirs, ours, chosen", [
    ((1, 5), (2, 4), 4),  # the highest shared, not the lowest
    ((4, 9), (2, 4), 4),  # overlapping at exactly one version, the helper's highest
    ((0, 2), (2, 4), 2),  # ... or its lowest
    ((3, 3), (2, 4), 3),
    ((5, 6), (2, 4), None),
    ((0, 1), (2, 4), None),
    ((4, 2), (2, 4), None),  # an empty range shares nothing
    (None, (1, 2), None),  # no range at all
    ([1], (1, 2), None),  # half a range
], ids=["highest-shared", "one-at-top", "one-at-bottom", "inside", "above", "below", "empty", "none", "half"])
def test_negotiate_picks_the_highest_shared_version(theirs, ours, chosen):
    """Pure logic, for the ranges a helper speaking only 1-1 cannot show over the wire."""
    from ceo.protocol import negotiate
    assert negotiate(list(theirs) if isinstance(theirs, tuple) else theirs, ours) == chosen


@pytest.mark.parametrize("host", HOSTS)
def test_good_hello_names_the_ssh_user_and_the_host(cluster, connect, host):
    session = Raw(connect(host, "regular2"))
    reply = session.hello()
    assert reply["protocol"] == PROTOCOL[1] and reply["version"] == __version__
    assert reply["caller"] == "regular2"
    assert reply["principal"] == f"regular2@{cluster.realm}"  # from sshd's ExposeAuthInfo record
    assert reply["host"] == cluster.hosts[host]
    assert set(reply["roles"]) == ROLES[host]
    assert set(reply) == {"hello", "version", "protocol", "host", "roles", "caller", "principal"}
    assert session.finish() == (b"", 0, b"")


@pytest.mark.parametrize("first", [
    {"id": 1, "plugin": "doctor", "verb": "ping", "args": {}},  # a request, not a hello
    {"id": 1, "hello": "ssh", "protocol": [1, 1]},  # a hello, but not ceo's
], ids=["request", "other-hello"])
def test_first_message_must_be_a_hello(cluster, connect, first):
    session = Raw(connect("coffee", "regular1"))
    session.send_json(first)
    assert_error(session.reply(), "BadRequest", rid=1)
    # The helper hangs up by itself (our side is still open) without serving anything.
    rest, status, err = session.drain()
    assert (rest, status) == (b"", 2)  # BadRequest's exit code
    assert_no_traceback(session, err)


# --- 2. identity comes from sshd + sudo, never from the request ---------------------------

FAKE = {"caller": "ctdalek", "user": "ctdalek", "sudo_user": "ctdalek"}


@pytest.mark.parametrize("envelope, args, name, exit_code, says", [
    (FAKE, {}, "NotPermitted", 3, "regular1 has none"),  # claimed in the envelope: ignored
    ({}, {"caller": "ctdalek"}, "BadInput", 2, "unknown parameter 'caller'"),  # in args: refused
    (FAKE, {"caller": "ctdalek", "note": "x"}, "BadInput", 2, "unknown parameter 'caller'"),
], ids=["envelope", "args", "both"])
def test_identity_cannot_be_claimed(cluster, connect, audit, envelope, args, name, exit_code, says):
    session = Raw(connect("phosphoric-acid", "regular1"))
    hello = session.hello(**FAKE, SUDO_USER="ctdalek")
    assert hello["caller"] == "regular1"
    rid = f"claim-{uuid.uuid4()}"
    events, reply = session.request(rid, "testkit", "staffonly", args, **envelope)
    assert events == []
    err = assert_error(reply, name, rid=rid, exit_code=exit_code)
    assert says in err["message"] and "ctdalek" not in err["message"], err
    # Whoever the request claims to be, the helper still knows who is asking.
    _, who = session.request(8, "testkit", "whoami", {}, **FAKE)
    assert who["result"]["caller"] == "regular1", who
    assert not {"office", "syscom"} & set(who["result"]["groups"]), who
    assert session.finish()[1:] == (0, b"")
    assert_only_refusals(audit({rid}), "regular1", {rid})


def sudo_helper(env: dict, *lines) -> tuple[list[dict], int, str]:
    """The sandbox's ceo-helper on phosphoric-acid (its own UTS namespace and host name, as the
    sandbox runs sshd), started as root with the environment sudo would give it (as
    `sudo -n ceo-helper` from a shell on the host: no SSH_USER_AUTH), fed `lines`."""
    import subprocess
    from sandbox import topology
    argv = ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$1"', topology.fqdn("phosphoric-acid"),
            str(topology.HELPER)]
    proc = subprocess.run(argv, input=b"".join(_line(m) for m in lines), capture_output=True, timeout=60,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "SUDO_COMMAND": str(topology.HELPER), **env})
    return [json.loads(line) for line in proc.stdout.splitlines()], proc.returncode, proc.stderr.decode()


@pytest.mark.parametrize("who", ["another-users-uid", "roots-uid", "no-uid", "unknown-user"])
def test_sudo_uid_must_match_sudo_user(cluster, audit, who):
    """The helper believes sudo's SUDO_USER only when SUDO_UID is that user's uid (from NSS,
    i.e. LDAP): otherwise it refuses before reading a single request."""
    import pwd
    regular1, ctdalek = pwd.getpwnam("regular1").pw_uid, pwd.getpwnam("ctdalek").pw_uid
    assert regular1 != ctdalek
    env = {"another-users-uid": {"SUDO_USER": "regular1", "SUDO_UID": str(ctdalek)},
           "roots-uid": {"SUDO_USER": "regular1", "SUDO_UID": "0"},
           "no-uid": {"SUDO_USER": "regular1"},
           "unknown-user": {"SUDO_USER": "nosuchuser", "SUDO_UID": str(regular1)}}[who]
    rid = f"sudo-{uuid.uuid4()}"
    request = {"id": rid, "plugin": "testkit", "verb": "staffonly", "args": {"note": "x"}}
    # The same environment with the matching uid is believed: only the uid differs above.
    good, status, stderr = sudo_helper({"SUDO_USER": "regular1", "SUDO_UID": str(regular1)},
                                       HELLO, {"id": 1, "plugin": "testkit", "verb": "whoami", "args": {}})
    assert (status, stderr) == (0, ""), (good, stderr)
    assert (good[0]["caller"], good[0]["host"]) == ("regular1", cluster.hosts["phosphoric-acid"]), good
    assert good[1]["result"]["caller"] == "regular1", good

    replies, status, stderr = sudo_helper(env, HELLO, request)
    assert (status, stderr) == (3, ""), (replies, stderr)
    assert len(replies) == 1, replies  # no hello, and the request is never read
    err = assert_error(replies[0], "NotPermitted", rid=NO_ID, exit_code=3)
    assert (env.get("SUDO_USER") if who == "unknown-user" else "does not match") in err["message"], err
    assert audit({rid}) == []


def test_staff_request_is_done_and_audited_once(cluster, connect, audit):
    session = Raw(connect("phosphoric-acid", "ofstaff"))
    assert session.hello()["caller"] == "ofstaff"
    note, rid = "x", f"staff-{uuid.uuid4()}"
    events, reply = session.request(rid, "testkit", "staffonly", {"note": note})
    assert reply == {"id": rid, "result": {"done": True}}
    assert [e["status"] for e in events] == ["done"]
    assert session.finish() == (b"", 0, b"")
    records = audit({rid})
    assert len(records) == 1, records
    record = records[0]
    assert record["caller"] == "ofstaff" and record["host"] == cluster.hosts["phosphoric-acid"]
    assert (record["plugin"], record["verb"], record["outcome"]) == ("testkit", "staffonly", "done")
    assert record["args"] == {"note": note} and "error" not in record


# A raw client skips the CLI's checks: the helper's own validation must refuse an address an
# MTA would read as a pipe, a file or an include, and write nothing.
HOSTILE_FORWARDS = {
    "pipe": ["|/bin/sh -c 'touch /tmp/ceo-forward-pwned'"],
    "pipe-bare": ["|/usr/bin/procmail"],
    "pipe-at": ["|/bin/sh@example.org"],
    "quoted-pipe": ['"|/bin/sh"@example.org'],
    "file": ["/var/mail/regular1"],
    "file-home": ["/users/regular1/mbox"],
    "include": [":include:/etc/aliases"],
    "local-escape": ["\\regular1"],
    "good-then-pipe": ["regular1@example.org", "|/bin/sh"],  # a good address does not carry a bad one
    "two-in-one": ["regular1@example.org, |/bin/sh"],
}


@pytest.mark.parametrize("addresses", HOSTILE_FORWARDS.values(), ids=HOSTILE_FORWARDS.keys())
def test_a_raw_client_cannot_set_a_pipe_or_file_as_forwarding(cluster, connect, audit, ldap, addresses):
    home = "/users/regular1"
    dn = f"uid=regular1,ou=People,{cluster.base_dn}"
    before = ldap_entry(ldap, dn), sorted(os.listdir(home)), _read_bytes(f"{home}/.forward")
    assert before[0] is not None
    try:
        session = Raw(connect("phosphoric-acid", "regular1"))
        assert session.hello()["caller"] == "regular1"
        rid = f"fwd-{uuid.uuid4()}"
        events, reply = session.request(rid, "members", "set_forwarding",
                                        {"uid": "regular1", "forwarding_address": addresses})
        # Nothing written: ~/.forward (and the home's listing: no temporary file), the LDAP entry.
        assert (ldap_entry(ldap, dn), sorted(os.listdir(home)), _read_bytes(f"{home}/.forward")) == before
        assert events == [], events
        err = assert_error(reply, "BadInput", rid=rid)
        assert err["message"].startswith("forwarding_address: ") and "not an email address" in err["message"], err
        assert session.finish() == (b"", 0, b"")
        assert_only_refusals(audit({rid}), "regular1", {rid})
        assert audit({rid})[0]["args"] == {"uid": "(not valid)", "forwarding_address": "(not valid)"}
    finally:  # had the helper written, put the member's home back as it was
        for name in set(os.listdir(home)) - set(before[1]):
            os.unlink(f"{home}/{name}")
        if before[2] is not None and _read_bytes(f"{home}/.forward") != before[2]:
            with open(f"{home}/.forward", "wb") as f:
                f.write(before[2])
        assert (sorted(os.listdir(home)), _read_bytes(f"{home}/.forward")) == before[1:]


def _read_bytes(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


# --- 3. garbage gets one error reply per line, and the helper keeps serving ---------------

BIG = 10 * 1024 * 1024  # a 10 MiB line: ten times what the helper reads
RUN = uuid.uuid4().hex[:12]
PWNED = f"/tmp/ceo-pwned-{RUN}"  # would exist had the note reached a shell


def _id(n: int) -> str:
    """Request ids unique to this run, so its audit records (if any) are told from others'."""
    return f"{n}-{RUN}"


def _line(message) -> bytes:
    return json.dumps(message).encode() + b"\n"


def _staff(rid, note) -> bytes:
    return _line({"id": rid, "plugin": "testkit", "verb": "staffonly", "args": {"note": note}, "check": True})


# (what is sent, the error name expected, the reply's id); None: not an error but a result
GARBAGE = [
    (b"not json\n", "BadRequest", None),
    (b'{"id": 1, "plu\n', "BadRequest", None),  # truncated JSON
    (b"[1,2]\n", "BadRequest", None),
    (b'"just a string"\n', "BadRequest", None),
    (b"\xff\xfe\x00{}\n", "BadRequest", None),  # not UTF-8
    (_line({"plugin": "doctor", "verb": "ping", "args": {}}), "BadRequest", None),  # no id
    (_line({"id": True, "plugin": "doctor", "verb": "ping", "args": {}}), "BadRequest", None),
    (_line({"id": [1], "plugin": "doctor", "verb": "ping", "args": {}}), "BadRequest", None),
    (_line({"id": _id(2), "plugin": "nope", "verb": "x", "args": {}}), "BadRequest", _id(2)),  # unknown verb
    (_line({"id": _id(3), "plugin": "doctor", "verb": ["ping"], "args": {}}), "BadRequest", _id(3)),
    (_line({"id": _id(4), "plugin": "doctor", "verb": "ping", "args": {"bogus": 1}}), "BadInput", _id(4)),
    (_line({"id": _id(5), "plugin": "doctor", "verb": "ping", "args": "all"}), "BadInput", _id(5)),
    (_line({"id": _id(6), "plugin": "testkit", "verb": "staffonly", "args": {"note": 7}}), "BadInput", _id(6)),
    (_staff(_id(10), "*)(uid=*"), None, _id(10)),  # hostile but printable: free text, kept verbatim
    (_staff(_id(11), "x'; DROP TABLE members; --"), None, _id(11)),
    (_staff(_id(12), "../../etc/passwd"), None, _id(12)),
    (_staff(_id(13), f"$(touch {PWNED}) `touch {PWNED}`"), None, _id(13)),
    (_staff(_id(14), "first line\nsecond line"), "BadInput", _id(14)),  # control characters are refused
    (_staff(_id(15), "nul\x00byte"), "BadInput", _id(15)),
    (_staff(_id(16), "\x1b[2J escape"), "BadInput", _id(16)),
    (_staff(_id(17), "x" * 5000), "BadInput", _id(17)),  # over the parameter's length limit
    (b"\n", "blank", None),  # blank lines are skipped without a reply
    (b"a" * BIG + b"\n", "BadRequest", None),  # far over MAX_LINE
    (_line({"id": _id(18), "plugin": "doctor", "verb": "ping", "args": {}}), None, _id(18)),  # still serving
]


def test_garbage_gets_one_error_each_and_the_helper_keeps_serving(cluster, connect, audit):
    session = Raw(connect("phosphoric-acid", "ofstaff"))
    session.hello()
    for data, name, rid in GARBAGE:
        what = data[:60]
        for i in range(0, len(data), 1 << 16):
            session.send(data[i:i + (1 << 16)])
        if name == "blank":
            continue  # the next reply must be the next line's, which proves nothing came back
        if name is None:
            events, reply = session.final(rid)
            assert "result" in reply, (what, reply)
            if rid == _id(18):
                assert reply["result"] == {"pong": True, "host": cluster.hosts["phosphoric-acid"]}
            else:  # --check: the note reached the verb unchanged, as data
                note = json.loads(data)["args"]["note"]
                assert [e["message"] for e in events] == [f"would do nothing ({note})"], (what, events)
            continue
        reply = session.reply()
        assert_error(reply, name, rid=rid, context=what)
        if name == "BadRequest" and len(data) == BIG + 1:
            assert "1 MiB" in reply["error"]["message"]
    # Exactly one reply per bad line: after the last answer, nothing more is pending.
    rest, status, err = session.finish()
    assert rest == b"" and status == 0
    assert_no_traceback(session, err)
    assert not os.path.exists(PWNED)
    # --check requests are not audited, and nothing here was done.
    ids = {rid for _, _, rid in GARBAGE if rid is not None}
    assert_only_refusals(audit(ids), "ofstaff", {_id(6)})


@pytest.mark.parametrize("data", [
    b"[" * 100_000 + b"\n",  # deeply nested JSON: json.loads raises RecursionError
    _line({"id": "\ud800", "plugin": "doctor", "verb": "ping", "args": {}}),  # a lone surrogate as id
    _line({"id": 1, "plugin": "\ud800", "verb": "ping", "args": {}}),  # ... echoed in an error message
], ids=["deep-nesting", "surrogate-id", "surrogate-plugin"])
def test_pathological_json_gets_an_error_not_a_crash(cluster, connect, data):
    session = Raw(connect("coffee", "regular1"))
    session.hello()
    session.send(data)
    assert_error(session.reply(), "BadRequest", rid=None)  # not text, or too deep: refused unread
    _, ping = session.request(2, "doctor", "ping")
    assert ping == {"id": 2, "result": {"pong": True, "host": cluster.hosts["coffee"]}}, ping
    rest, status, err = session.finish()
    assert (rest, status) == (b"", 0)
    assert_no_traceback(session, err)


def test_version_mismatch_with_a_hostile_version_string(cluster, connect):
    session = Raw(connect("coffee", "regular1"))
    session.send_json({"hello": "ceo", "version": "9.0\nceo: all good, carry on", "protocol": [99, 100]})
    reply = session.reply()
    assert_error(reply, "VersionMismatch", rid=NO_ID, exit_code=1)
    assert "all good" not in reply["error"]["message"]  # the client's version is not echoed as given
    rest, status, err = session.drain()
    assert (rest, status) == (b"", 1)
    assert_no_traceback(session, err)


def test_a_hello_that_is_not_text_is_refused_and_the_helper_waits(cluster, connect):
    session = Raw(connect("coffee", "regular1"))
    session.send_json({"hello": "ceo", "version": "\ud800", "protocol": [99, 100]})
    assert_error(session.reply(), "BadRequest", rid=None, exit_code=2)
    session.hello()
    rest, status, err = session.finish()
    assert (rest, status) == (b"", 0)
    assert_no_traceback(session, err)


# --- 4. EOF on stdin ends the session cleanly -------------------------------------------------

@pytest.mark.parametrize("say_hello", [True, False], ids=["after-hello", "before-hello"])
def test_closed_stdin_ends_the_helper_with_status_0(cluster, connect, say_hello):
    session = Raw(connect("coffee", "regular1"))
    if say_hello:
        session.hello()
    rest, status, err = session.finish()
    assert (rest, status, err) == (b"", 0, b"")


# --- 5. pipelining ----------------------------------------------------------------------------

def test_a_thousand_pipelined_requests_in_one_session(cluster, connect):
    client = connect("mail", "regular1")
    session = Raw(client)
    session.hello()
    helpers = helper_processes(client)
    assert len(helpers) == 1, helpers
    n = 1000
    session.send(b"".join(_line({"id": i, "plugin": "doctor", "verb": "ping", "args": {}}) for i in range(n)))
    replies = [session.reply() for _ in range(n)]  # each read bounded by TIMEOUT: a hang fails
    assert [r["id"] for r in replies] == list(range(n))
    assert all(r["result"] == {"pong": True, "host": cluster.hosts["mail"]} for r in replies)
    assert helper_processes(client) == helpers  # the same process answered every one
    assert session.finish() == (b"", 0, b"")  # exactly n replies: nothing more was pending


# --- 6. the login command is never run -----------------------------------------------------

@pytest.mark.parametrize("command", [
    "touch {marker}",
    "touch {marker}; echo shell",
    "sh -c 'touch {marker}'",
    "$(touch {marker})",
])
def test_the_command_the_client_asks_for_is_not_run(cluster, connect, command):
    marker = f"/tmp/ceo-pwned-{uuid.uuid4()}"
    session = Raw(connect("phosphoric-acid", "regular1"), command.format(marker=marker))
    hello = session.hello()
    assert hello["caller"] == "regular1"
    _, ping = session.request(1, "doctor", "ping")
    assert ping == {"id": 1, "result": {"pong": True, "host": cluster.hosts["phosphoric-acid"]}}, ping
    assert session.finish() == (b"", 0, b"")
    assert not os.path.exists(marker)


# --- 7. undo reaches only this session's own requests ----------------------------------------

@pytest.mark.parametrize("other", ["ofstaff", "ctdalek"], ids=["same-user", "syscom"])
def test_undo_only_reaches_this_sessions_own_requests(cluster, connect, audit, ldap, other):
    """Session A keeps a request; session B (another SSH session, so another helper process;
    the same user, or syscom) asks to undo it and is refused, and A's entry stays in LDAP;
    A itself then undoes it, and LDAP no longer has it."""
    name = f"undo{uuid.uuid4().hex[:8]}"
    dn = f"cn={name},ou=Group,{cluster.base_dn}"
    made, undo_a, undo_b, again = (f"{what}-{uuid.uuid4()}" for what in ("made", "undo-a", "undo-b", "again"))
    assert ldap_entry(ldap, dn) is None
    try:
        client_a = connect("phosphoric-acid", "ofstaff")
        a = Raw(client_a)
        a.hello()
        events, final = a.request(made, "testkit", "mkentry", {"name": name}, keep=True)
        assert final == {"id": made, "result": {}}, final
        assert [e["status"] for e in events] == ["done"], events
        made_entry = ldap_entry(ldap, dn)
        assert made_entry is not None and made_entry["cn"] == [name], made_entry

        client_b = connect("phosphoric-acid", other)
        b = Raw(client_b)
        assert b.hello()["caller"] == other
        helpers_a, helpers_b = helper_processes(client_a), helper_processes(client_b)
        assert len(helpers_a) == len(helpers_b) == 1 and helpers_a != helpers_b, (helpers_a, helpers_b)
        b.send_json({"id": undo_b, "undo": made})
        events, reply = b.final(undo_b)
        assert events == [], events
        err = assert_error(reply, "BadRequest", rid=undo_b)
        assert "in this session" in err["message"], err
        assert b.finish() == (b"", 0, b"")
        assert ldap_entry(ldap, dn) == made_entry  # A's work is intact, as LDAP has it
        assert [r["outcome"] for r in audit({made})] == ["done"]

        # A itself still can, once.
        a.send_json({"id": undo_a, "undo": made})
        events, reply = a.final(undo_a)
        assert ldap_entry(ldap, dn) is None  # judged by LDAP first, then by what the helper says
        assert reply == {"id": undo_a, "result": {"undone": made}}, reply
        assert [e["status"] for e in events] == ["undone"], events
        a.send_json({"id": again, "undo": made})
        assert_error(a.reply(), "BadRequest", rid=again)
        rest, status, err_out = a.finish()
        assert (rest, status) == (b"", 0)
        assert_no_traceback(a, err_out)
        assert [(r["caller"], r["outcome"]) for r in audit({made})] == [("ofstaff", "done"), ("ofstaff", "undone")]
    finally:
        if ldap_entry(ldap, dn) is not None:
            assert ldap.delete(dn), ldap.result
