"""A raw session with a helper: JSON lines over real GSSAPI SSH, as any client, friendly or
not, would speak it. No ceo client code is used, so what a test proves with it is what the
helper itself does with a request (the steps behind an operation are not commands, so this
is also how tests send one)."""

from __future__ import annotations

import json

import paramiko

from ceo.protocol import PROTOCOL

TIMEOUT = 20  # seconds for any one read: a hang fails the test instead of stalling the run
HELLO = {"hello": "ceo", "version": "0-test", "protocol": list(PROTOCOL)}


class Raw:
    """One SSH channel to the helper, spoken raw: bytes out, JSON lines in."""

    def __init__(self, client: paramiko.SSHClient, command: str = "ceo-helper"):
        self.channel = client.get_transport().open_session()
        self.channel.settimeout(TIMEOUT)
        self.channel.exec_command(command)
        self.out = self.channel.makefile("rb")
        self.lines: list[bytes] = []  # every line read, for the no-traceback checks

    def send(self, data: bytes):
        self.channel.sendall(data)

    def send_json(self, message):
        self.send(json.dumps(message).encode() + b"\n")

    def reply(self) -> dict:
        line = self.out.readline()
        assert line, "the helper closed its output instead of answering"
        assert line.endswith(b"\n"), f"a reply that is not a whole line: {line[:200]!r}"
        self.lines.append(line)
        return json.loads(line)

    def hello(self, **extra) -> dict:
        self.send_json({**HELLO, **extra})
        reply = self.reply()
        assert reply.get("hello") == "ceo-helper", reply
        return reply

    def final(self, rid) -> tuple[list[dict], dict]:
        """A request's events (in order) and its last line: the result or the error."""
        events = []
        while True:
            reply = self.reply()
            assert reply.get("id") == rid, f"expected a reply to {rid!r}, got {reply}"
            if "event" in reply:
                events.append(reply["event"])
                continue
            assert ("result" in reply) != ("error" in reply), reply
            return events, reply

    def request(self, rid, plugin, verb, args=None, **envelope) -> tuple[list[dict], dict]:
        self.send_json({"id": rid, "plugin": plugin, "verb": verb, "args": {} if args is None else args,
                        **envelope})
        return self.final(rid)

    def finish(self) -> tuple[bytes, int, bytes]:
        """Close our side; (whatever else the helper wrote, its exit status, its stderr)."""
        self.channel.shutdown_write()
        return self.drain()

    def drain(self) -> tuple[bytes, int, bytes]:
        rest = self.out.read()
        status = self.channel.recv_exit_status()
        err = self.channel.makefile_stderr("rb").read()
        self.lines.append(rest)
        return rest, status, err


def request(client: paramiko.SSHClient, plugin: str, verb: str, args: dict, rid="r1",
            **envelope) -> tuple[list[dict], dict]:
    """One request in a session of its own: (events, the result or error reply)."""
    session = Raw(client)
    session.hello()
    events, reply = session.request(rid, plugin, verb, args, **envelope)
    assert session.finish()[1] == 0
    return events, reply
