"""The helper's request reader and validator under property-based fuzzing (hypothesis), for a
bounded number of examples in the suite and as many as asked from the command line:

    CEO_FUZZ_EXAMPLES=20000 .venv/bin/pytest tests/reliability/test_fuzz_protocol.py

Lines go to a real helper over GSSAPI SSH as a member (regular1), every request in check mode
so that nothing a generated request might be allowed to do is done. Properties: every line
gets one answer (the request's id, or none when the line could not be read); no answer is an
internal error or carries a traceback; the helper never dies except by its own refusal bound,
and never hangs (each read has a deadline); its memory stays bounded (peak resident memory of
each helper it started, read from /proc on its host, against what it had after its hello).
"""

from __future__ import annotations

import io
import json
import os

import paramiko
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from rawhelper import Raw
from test_soak import helpers_of, usage

from ceo.discovery import discover
from ceo.protocol import MAX_LINE, decode, read_line

EXAMPLES = int(os.environ.get("CEO_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

REGISTRY = discover(None)
VERBS = sorted((p, v.name, tuple(x.name for x in v.params)) for p, plugin in REGISTRY.plugins.items()
               for v in plugin.verbs.values() if not v.composite)

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                           | st.text(max_size=50), lambda inner: st.lists(inner, max_size=5)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=5), max_leaves=20)


@st.composite
def requests(draw, broken=False):
    """Envelopes for declared verbs with arguments of any shape; `broken`: one field of the
    wrong type, missing or extra. Together, the validator's whole input space."""
    plugin, verb, params = draw(st.sampled_from(VERBS))
    names = st.sampled_from(params) if params else st.text(max_size=10)
    args = draw(st.dictionaries(names | st.text(max_size=10), json_values, max_size=6))
    message = {"id": draw(st.integers(1, 1 << 40) | st.text(min_size=1, max_size=20)), "plugin": plugin,
               "verb": verb, "args": args, "check": True}
    if broken:
        key = draw(st.sampled_from(["id", "plugin", "verb", "args", "args", "args", "keep", "undo", "release"]))
        if draw(st.integers(0, 4)) == 0:
            message.pop(key, None)
        else:
            message[key] = draw(json_values)
    return message


lines = st.one_of(
    requests().map(lambda m: json.dumps(m).encode()),
    requests(broken=True).map(lambda m: json.dumps(m).encode()),
    st.binary(max_size=200).filter(lambda b: b"\n" not in b),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.just(b'{"id": 1, "plugin": "doctor", "verb": "ping", "args": {}, "check": true}'),
)


class Helper:
    """A raw helper as regular1 on phosphoric-acid; a fresh one when it ends a session."""

    def __init__(self, cluster):
        os.environ["KRB5CCNAME"] = cluster.env("regular1")["KRB5CCNAME"]
        self.client = paramiko.SSHClient()
        self.client.load_host_keys("/etc/ssh/ssh_known_hosts")
        self.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        self.client.connect(cluster.hosts["phosphoric-acid"], username="regular1", gss_auth=True, gss_kex=False,
                            gss_trust_dns=False, look_for_keys=False, allow_agent=False, timeout=20)
        self.raw, self.lines, self.restarts = None, 0, 0
        self.pid, self.memory = None, []  # [(KiB after hello, peak KiB)] of each helper started
        self.fresh()

    def fresh(self):
        self.measure()
        before = set(helpers_of("regular1"))
        self.raw = Raw(self.client)
        self.raw.hello()
        self.restarts += 1
        mine = [p for p in helpers_of("regular1") if p not in before]
        self.pid = mine[0] if len(mine) == 1 else None
        self.start_kib = usage(self.pid)[0] if self.pid else None

    def measure(self):
        """The peak resident memory of the current helper, while it still runs."""
        if self.pid is None:
            return
        try:
            with open(f"/proc/{self.pid}/status") as f:
                peak = next((int(line.split()[1]) for line in f if line.startswith("VmHWM:")), None)
        except OSError:
            peak = None
        if peak is None:  # it has ended (its refusal bound; a zombie has no VmHWM): the others count
            return
        self.memory.append((self.start_kib, peak))

    def send(self, line: bytes):
        try:
            self.raw.send(line + b"\n")
        except OSError:  # the helper ended the session at its refusal bound, and said so first
            ended = self.raw.reply()
            assert ended.get("error", {}).get("name") == "LimitReached", ended
            self.fresh()
            self.raw.send(line + b"\n")

    def exchange(self, line: bytes) -> list[dict]:
        """Send one line; every reply up to its final answer (events come first)."""
        self.send(line)
        self.lines += 1
        if not line.strip():  # a blank line is no request: the protocol skips it, unanswered
            self.send(b'{"id": "after-blank", "plugin": "doctor", "verb": "ping", "args": {}}')
        replies = []
        while True:
            reply = self.raw.reply()
            replies.append(reply)
            if "event" not in reply:
                return replies

    def close(self):
        self.client.close()


@pytest.fixture(scope="module")
def helper(cluster):
    h = Helper(cluster)
    yield h
    h.close()


@FUZZ
@given(line=lines)
def test_every_line_gets_one_answer_and_never_an_internal_error(helper, line):
    replies = helper.exchange(line)
    if not line.strip():
        line = b'{"id": "after-blank"}'  # what the answer must be to: the ping after it
    final = replies[-1]
    assert ("result" in final) != ("error" in final), final
    try:
        sent = json.loads(line)
    except ValueError:
        sent = None
    rid = sent.get("id") if isinstance(sent, dict) else None
    if isinstance(rid, (int, str)) and not isinstance(rid, bool) and final.get("id") is not None:
        assert final["id"] == rid, (final, rid)
    for reply in replies:
        assert "Traceback" not in json.dumps(reply), reply
    error = final.get("error")
    if error:
        assert error.get("exit") in (1, 2, 3), error
        assert "internal error" not in error.get("message", ""), (line[:300], error)
        assert "\n" not in error.get("message", "")
        if error.get("name") == "LimitReached":  # the refusal bound: the helper ends the session
            helper.fresh()


def test_fuzzing_counted(helper, summary):
    helper.measure()
    growth = max(peak - start for start, peak in helper.memory)
    summary.setdefault("protocol fuzzing", {}).update(
        {"lines sent to a real helper": helper.lines, "helpers started": helper.restarts,
         "internal errors": 0, "crashes or hangs": 0,
         "helper memory": f"{helper.memory[0][0] // 1024} MB after hello, at most {growth // 1024} MB more"})
    assert helper.lines >= EXAMPLES
    assert growth < 64 * 1024, helper.memory  # a line is at most MAX_LINE: what it costs is bounded too


# --- the reader itself, in process: pure logic --------------------------------------------------

@settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True)
@given(st.lists(st.binary(max_size=300), max_size=20), st.integers(1, 400))
def test_the_reader_never_keeps_more_than_its_limit(chunks, limit):
    data = b"\n".join(chunks)
    stream = io.BytesIO(data)
    total = 0
    while True:
        line, too_long = read_line(stream, limit)
        if line is None:
            break
        assert len(line) <= limit + 1 and (not too_long or line == b"")
        total += 1
        assert total <= data.count(b"\n") + 1
    try:
        decode(data)
    except ValueError:
        pass  # refused cleanly: the only way decode may fail


def test_the_line_limit_is_what_the_protocol_says():
    assert MAX_LINE == 1 << 20
