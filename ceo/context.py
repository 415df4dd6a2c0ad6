"""What a verb's function gets on the helper side: who called, where, and the means to act.

`ctx.step(...)` runs one step of a verb and registers how to undo it; when the verb fails,
the helper undoes the completed steps in reverse and reports each one. A step says what it
did (`describe`, past tense: "subscribed X to csc-general") and what it would do (`would`,
the bare verb: "subscribe X to csc-general"), which check mode prints as "would subscribe
X to csc-general". Connections (LDAP, kadmin, ...) are opened on first use and kept for the
whole session, so a batch of requests pays for them once.
"""

from __future__ import annotations

from .errors import CeoError, Stale, StepFailed


class Steps:
    """One request's completed steps, with their undo actions."""

    def __init__(self, emit, check: bool):
        self.emit, self.check = emit, check
        self.done: list[tuple[str, object]] = []

    def run(self, name: str, do, undo=None, *, best_effort=False, describe: str = "", would: str = ""):
        if self.check:
            self.emit({"step": name, "status": "would", "message": would_do(name, would, describe)})
            return None
        try:
            result = do()
        except Stale:  # nothing was written: the verb reads again and replans
            raise
        except Exception as exc:
            reason = exc.message if isinstance(exc, CeoError) else _internal(exc)
            if getattr(exc, "maybe_done", False) and undo is not None and not best_effort:
                self.done.append((f"{describe or name} (perhaps done: no answer came)", undo))
            if best_effort:
                self.emit({"step": name, "status": "warning", "message": f"{describe or name}: {reason}"})
                return None
            self.emit({"step": name, "status": "failed", "message": f"{describe or name}: {reason}"})
            raise StepFailed(f"{describe or name} failed: {reason}") from exc
        self.done.append((describe or name, undo))
        self.emit({"step": name, "status": "done", "message": describe or name})
        return result

    def rollback(self) -> list[str]:
        """Undo completed steps in reverse. Returns what could not be undone."""
        return undo_all(self.done,
                        lambda what: self.emit({"step": what, "status": "undone", "message": f"undid: {what}"}),
                        lambda what, why: self.emit({"step": what, "status": "undo-failed",
                                                     "message": f"could not undo {what}: {why}"}),
                        explain=_internal)


def would_do(name: str, would: str, describe: str = "") -> str:
    """What check mode says of a step: "would " and its `would` text. A step declared without
    one (a third-party plugin's) is named as such rather than said in the past tense."""
    if would:
        return f"would {would}"
    return f"would do step {name}" + (f" ({describe})" if describe else "")


def undo_all(done: list, on_undone, on_failed, explain=None) -> list[str]:
    """Run the undo actions of `done` [(what, undo or None)], newest first, emptying it.
    The helper's steps and the client's multi-host steps both roll back this way; `explain`
    says what the caller is told of an unexpected exception."""
    explain = explain or _summary
    stuck = []
    while done:
        what, undo = done.pop()
        if undo is None:
            continue
        try:
            undo()
        except Exception as exc:
            stuck.append(what)
            on_failed(what, exc.message if isinstance(exc, CeoError) else explain(exc))
        else:
            on_undone(what)
    return stuck


def _internal(exc: Exception) -> str:
    """An unexpected exception in a helper's step: its text (which may hold anything, a secret
    too) and traceback go to the helper's log; the client and the audit record get only this."""
    import traceback
    from .hostlog import log
    log("".join(traceback.format_exception(exc)))
    return f"internal error, {type(exc).__name__} (details in the helper's log)"


def _summary(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300]


class Context:
    def __init__(self, session, request_id, check: bool, emit, audit=None):
        self.session = session  # the helper session: identity, config, connections
        self.id = request_id
        self.check = check
        self.emit = emit
        self.audit = audit  # audit(args, outcome, error=None): one record (verbs with audit_rows)
        self.steps = Steps(emit, check)
        self.notes: dict = {}  # extra facts for this request's audit record
        self.args = None  # the request's arguments, once validated

    caller = property(lambda self: self.session.caller)
    host = property(lambda self: self.session.host)
    roles = property(lambda self: self.session.roles)
    config = property(lambda self: self.session.config)

    @property
    def groups(self) -> set[str]:
        return self.session.groups()

    def step(self, name, do, undo=None, *, best_effort=False, describe="", would=""):
        return self.steps.run(name, do, undo, best_effort=best_effort, describe=describe, would=would)

    def would(self, step: str, what: str):
        """Check mode's line for what a verb would do that is not one ctx.step (a batch's
        count): "would " + what."""
        self.emit({"step": step, "status": "would", "message": would_do(step, what)})

    # What a verb did, as its result: `created`, `changed`, or `unchanged` (found nothing to
    # do: no audit record, and a client step that changed nothing registers no undo).
    def created(self, **data) -> dict:
        return {**data, "state": "created", "changed": True}

    def changed(self, **data) -> dict:
        return {**data, "state": "changed", "changed": True}

    def unchanged(self, step: str, message: str, **data) -> dict:
        """Nothing to do: said once, as an `unchanged` step."""
        self.emit({"step": step, "status": "unchanged", "message": message})
        return {**data, "state": "unchanged", "changed": False}

    def note(self, **facts):
        """Add facts to the audit record of this request (never secrets)."""
        self.notes.update(facts)

    def progress(self, message: str, **data):
        self.emit({"progress": message, **data})

    def ldap(self, pipelined: bool = False):
        """The session's LDAP connection. pipelined: a second one, whose operations return
        message ids at once (`conn.response(id)` waits for one): a batch's writes in flight together."""
        return self.session.ldap(pipelined)

    def quiet(self) -> "Context":
        """This request, for work nested in it whose steps are done but not announced: the
        caller reports the outcome itself (a batch row redone the careful way)."""
        import copy
        nested = copy.copy(self)
        nested.emit = lambda event: None
        nested.steps = Steps(nested.emit, self.check)
        return nested

    def service(self, name: str, opener):
        """A connection kept for the session: opener() is called once."""
        return self.session.service(name, opener)

    def forget(self, name: str):
        """Drop a broken connection kept for the session: the next use opens a new one."""
        self.session.drop(name)
