"""The helper's step runner (ceo.context.Steps), as pure logic: a step whose service went away
with the request sent may have been done, so a rollback undoes it too and says so if it can't;
a step refused before anything was sent is not undone."""

from __future__ import annotations

import pytest
import requests
from mailmanclient import MailmanConnectionError

from ceo.context import Steps
from ceo.errors import ServiceUnavailable, StepFailed
from ceo.services import mailman


class Ctx:
    host = "mail.csclub.internal"

    class config:
        @staticmethod
        def get(section, key, default=None):
            return "http://127.0.0.4:8001" if key == "url" else default


def gone(maybe: bool):
    err = ServiceUnavailable("Mailman is not answering")
    err.maybe_done = maybe
    raise err


@pytest.mark.parametrize("maybe, undone", [(True, ["subscribe"]), (False, [])])
def test_a_step_that_may_have_been_done_is_undone_with_the_rest(maybe, undone):
    events, undid = [], []
    steps = Steps(events.append, check=False)
    steps.run("first", lambda: None, lambda: undid.append("first"), describe="first")
    with pytest.raises(StepFailed):
        steps.run("subscribe", lambda: gone(maybe), lambda: undid.append("subscribe"), describe="subscribe")
    assert steps.rollback() == []
    assert undid == undone + ["first"]
    said = [e["message"] for e in events if e["status"] == "undone"]
    assert said[:-1] == (["undid: subscribe (perhaps done: no answer came)"] if maybe else [])


def test_an_undo_that_fails_after_no_answer_is_named():
    events = []
    steps = Steps(events.append, check=False)

    def undo():
        gone(True)
    with pytest.raises(StepFailed):
        steps.run("subscribe", lambda: gone(True), undo, describe="subscribed a to b")
    assert steps.rollback() == ["subscribed a to b (perhaps done: no answer came)"]


def _refused():
    from urllib3.exceptions import MaxRetryError, NewConnectionError
    reason = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused")
    return requests.ConnectionError(MaxRetryError(None, "/3.1/lists", reason))


def _aborted():
    from http.client import RemoteDisconnected
    from urllib3.exceptions import ProtocolError
    return requests.ConnectionError(ProtocolError("Connection aborted.", RemoteDisconnected("closed")))


@pytest.mark.parametrize("cause, maybe", [
    (_refused(), False),
    (requests.ConnectTimeout("connect timed out"), False),
    (_aborted(), True),
    (requests.ReadTimeout("Read timed out. (read timeout=10)"), True),
], ids=["refused", "connect timeout", "aborted", "read timeout"])
def test_mailman_says_whether_the_request_may_have_been_done(cause, maybe):
    def fail():  # as mailmanclient does: its own error, raised while handling requests' one
        try:
            raise cause
        except IOError as e:
            raise MailmanConnectionError("Could not connect to Mailman API: ", repr(e))
    with pytest.raises(ServiceUnavailable) as err:
        mailman.call(Ctx(), fail)
    assert err.value.maybe_done is maybe, err.value.message
