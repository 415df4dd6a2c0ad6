"""The helper's syslog sender (ceo/hostlog.py), against a real datagram socket: RFC 3164 lines,
one datagram each, and a missing socket drops them silently (never to stderr, which reaches
the client)."""

from __future__ import annotations

import os
import re
import socket

from ceo import hostlog


def test_each_line_is_one_rfc3164_datagram(tmp_path, monkeypatch):
    path = tmp_path / "log"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sink:
        sink.bind(str(path))
        monkeypatch.setattr(hostlog, "SOCKET", str(path))
        hostlog.log("first\nsecond", "LOG_INFO", "LOG_AUTHPRIV")
        got = [sink.recv(65536).decode() for _ in range(2)]
    pid = os.getpid()
    for line, text in zip(got, ("first", "second")):
        assert re.fullmatch(rf"<86>[A-Z][a-z]{{2}} [ 1-3][0-9] \d\d:\d\d:\d\d ceo-helper\[{pid}\]: {text}", line), got


def test_a_missing_socket_drops_the_line_silently(tmp_path, monkeypatch, capfd):
    monkeypatch.setattr(hostlog, "SOCKET", str(tmp_path / "no-such-socket"))
    hostlog.log("lost")
    assert capfd.readouterr() == ("", "")
