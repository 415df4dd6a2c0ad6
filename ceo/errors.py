"""Errors that cross the wire: each has a stable name, a message for humans and an exit code.

Exit codes: 0 done, 1 failed, 2 bad input or usage, 3 not permitted, 4 partly done.
"""

DONE, FAILED, BAD_INPUT, NOT_PERMITTED, PARTLY_DONE = 0, 1, 2, 3, 4


class CeoError(Exception):
    """An error with a stable name; never carries a traceback or a secret to the user."""

    exit_code = FAILED
    # The service went away with the request sent: it may have been done. The helper's step
    # that raised it is undone as if it had been (context.Steps), so nothing is left unsaid.
    maybe_done = False

    def __init__(self, message: str, **details):
        super().__init__(message)
        self.message = message
        self.details = details

    @property
    def name(self) -> str:
        return type(self).__name__

    def reworded(self, message: str) -> "CeoError":
        """The same error (class, exit code, details) with another message."""
        import copy
        err = copy.copy(self)
        err.message, err.args = message, (message,)
        return err

    def to_wire(self) -> dict:
        wire = {"name": self.name, "message": self.message, "exit": self.exit_code}
        if self.details:
            wire["details"] = self.details
        return wire


class BadInput(CeoError):
    exit_code = BAD_INPUT


class NotFound(BadInput):
    pass


class AlreadyExists(BadInput):
    pass


class NeedsConfirmation(BadInput):
    pass


class BadRequest(BadInput):
    """A malformed protocol message: not JSON, too long, missing fields, unknown verb."""


class LimitReached(BadRequest):
    """A session's bound (refused requests, requests kept for undo) was reached."""


class NotPermitted(CeoError):
    exit_code = NOT_PERMITTED


class ServiceUnavailable(CeoError):
    """A backend service (LDAP, kadmind, a database, Mailman, SMTP) did not answer."""


class Stale(ServiceUnavailable):
    """What a verb read changed before its write (another request got there first): the verb
    reads again and replans; it is no failure of the service. Steps let it through unreported."""


class Unreachable(CeoError):
    """An inventory host could not be reached or did not speak the protocol."""


class NoTicket(CeoError):
    pass


class VersionMismatch(CeoError):
    pass


class StepFailed(CeoError):
    pass


class PartlyDone(CeoError):
    exit_code = PARTLY_DONE


class RemoteError(CeoError):
    """An error the helper reported by name; keeps the helper's name and exit code."""

    def __init__(self, name: str, message: str, exit_code: int = FAILED, details=None):
        super().__init__(message, **(details or {}))
        self._name = name
        self.exit_code = exit_code if exit_code in (FAILED, BAD_INPUT, NOT_PERMITTED, PARTLY_DONE) else FAILED

    @property
    def name(self) -> str:
        return self._name


def from_wire(wire, prefix: str = "") -> CeoError:
    """A helper's error as the client's exception of the same name, as borg's RPC does: client
    code catches NotFound or NotPermitted and never matches message text. A name this client
    does not know keeps its name and exit code (a newer helper's error)."""
    wire = wire if isinstance(wire, dict) else {}
    name, message = str(wire.get("name", "CeoError")), prefix + str(wire.get("message", "failed"))
    details = wire.get("details") if isinstance(wire.get("details"), dict) else {}
    cls = _BY_NAME.get(name)
    if cls is None:
        exit_code = wire.get("exit", FAILED)
        return RemoteError(name, message, exit_code if isinstance(exit_code, int) else FAILED, details)
    return cls(message, **{str(k): v for k, v in details.items() if k != "message"})


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


_BY_NAME = {c.__name__: c for c in (CeoError, *_subclasses(CeoError)) if c is not RemoteError}
