"""Running a verb from the client: one request to the right host, or a client-side verb whose
steps go to several hosts. A step that fails makes the runner undo the completed ones in
reverse (each undo is itself a verb on its host); best-effort steps only warn.

Errors name what the user typed: a helper refuses the step it was asked for
(`members.create needs office or syscom; ...`), the user ran `ceo members add`, and the
client puts that in the step's place, the helper's reason as it gave it.
"""

from __future__ import annotations

from .context import undo_all
from .errors import BadInput, CeoError, PartlyDone
from .transport import Pool, ticket


class Run:
    """The client side of one `ceo` command: inventory, config, sessions, output."""

    def __init__(self, inventory, config, output, check: bool = False):
        self.inventory, self.config, self.output, self.check = inventory, config, output, check
        self.pool = Pool(inventory, config)
        self.pool.idle_work.append(getattr(output, "prepare", lambda: None))  # while the first helper starts
        self.done: list[tuple[str, object]] = []  # (description, undo callable)
        self.kept: dict = {}  # session -> ids of its requests the helper keeps for undo
        self.command, self.args = None, {}  # the verb the user typed and its args, while run_verb runs it

    # --- single requests ------------------------------------------------------------------
    def call(self, qualname: str, args: dict, *, role: str | None = None, host=None, keep=False):
        """Run a helper verb (plugin.verb) on the host of `role` (or `host`), streaming its events."""
        plugin, verb = qualname.split(".", 1)
        session = self.pool.for_host(host) if host is not None else self.pool.for_role(role)
        self.last_session, self.last_steps = session, []
        try:
            result = session.request(plugin, verb, args, check=self.check, on_event=self._event, keep=keep)
        except CeoError as err:
            named = self.typed(err, qualname)
            if named is err:
                raise
            raise named from err
        if keep and not self.check:
            self.kept.setdefault(session, []).append(session.last_id)
        return result

    def stream(self, qualname: str, many: list[dict], *, role: str, on_reply, on_event=None,
               window: int = 2) -> tuple[int, bool]:
        """Pipeline many requests of one verb through the session to `role`'s host (batches):
        on_reply(index, result or CeoError), on_event(session, event, index). Ctrl-C stops the
        sending and the answers to what was sent are still read. Returns (sent, stopped early)."""
        plugin, verb = qualname.split(".", 1)
        session = self.pool.for_role(role)

        def reply(index, outcome):
            on_reply(index, self.typed(outcome, qualname) if isinstance(outcome, CeoError) else outcome)
        return session.stream([(plugin, verb, args, False) for args in many], reply, on_event, window=window)

    def names_command(self, err: CeoError) -> bool:
        return self.command is not None and err.message.startswith((self.command.command + " ",
                                                                    self.command.command + ":"))

    def typed(self, err: CeoError, qualname: str) -> CeoError:
        """err, naming the command typed where the helper named the step it refused
        (`qualname ...` at the start of its message); else err itself."""
        return typed(err, self.command, qualname)

    def _event(self, session, event, *_):
        self.last_steps.append(event)
        self.output.event(session.host.name, event)

    # --- client-side verbs: steps with undo -------------------------------------------------
    def prepare(self, roles):
        """Open the sessions a plan will need, in parallel, so a late host fails before any step."""
        hosts = {self.inventory.host_for(r).name: self.inventory.host_for(r) for r in roles}
        for outcome in self.pool.open_parallel(hosts.values()).values():
            if isinstance(outcome, Exception):
                raise outcome

    def open_hosts(self) -> dict:
        """A session to every host of the inventory, opened in parallel: {host name: Session,
        or the exception that kept it from opening}."""
        return self.pool.open_parallel(self.inventory.hosts.values())

    def everywhere(self, qualname: str, args: dict) -> dict:
        """Ask every host of the inventory: {host name: result}."""
        for outcome in self.open_hosts().values():
            if isinstance(outcome, Exception):
                raise outcome
        return {name: self.call(qualname, args, host=host) for name, host in self.inventory.hosts.items()}

    def step(self, qualname: str, args: dict, *, role: str, describe: str, best_effort: bool = False):
        """One step: a helper verb on the host of `role`. If a later step fails, the helper that
        ran this one undoes it (its own steps, in reverse), within the same session. `describe`
        names the step (`LDAP account alice`) for its failure, warning or undo; what it did or
        would do (check mode) the helper's own steps say."""
        try:
            result = self.call(qualname, args, role=role, keep=not best_effort)
        except CeoError as err:
            # A refusal that names the command is about all of it, not this step: said as is.
            said = err.message if self.names_command(err) else f"{describe}: {err.message}"
            if best_effort:
                self._emit(role, describe, "warning", said)
                return None
            self._emit(role, describe, "failed", said)
            # Keeps the cause's class: a step refused as bad input is still bad input.
            raise err.reworded(said) from err
        if self.check:
            return result
        changed = [e for e in self.last_steps if e.get("status") == "done"]
        if not any("step" in e for e in self.last_steps):  # the helper's own steps said it already
            self._emit(role, describe, "done", describe)
        if changed and not best_effort:
            session, rid = self.last_session, self.last_session.last_id
            self.done.append((describe, lambda: session.undo(rid, on_event=self._event)))
        return result

    def _emit(self, role, describe, status, message):
        where = self.inventory.host_for(role).name
        self.output.event(where, {"step": describe, "status": status, "message": message})

    def keep_since(self, mark: int):
        """The steps completed since len(self.done) was `mark` stand, whatever fails next: a
        rollback leaves them (what they made is still needed, as the verb's code says why)."""
        del self.done[mark:]

    def rollback(self, err: CeoError) -> CeoError:
        """Undo the completed steps, newest first; each helper reports what it undid."""
        stuck = undo_all(self.done, lambda what: None,  # the helper that undid it said so
                         lambda what, why: self.output.event("", {"step": what, "status": "undo-failed",
                                                                  "message": f"could not undo {what}: {why}"}))
        if not stuck and err.exit_code != PartlyDone.exit_code:
            return err
        # An undo failed here, or in the helper of the failed step (its own steps): say what
        # removes what is left, once.
        message = f"{err.message}; could not undo: {', '.join(stuck)}" if stuck else err.message
        leftover = self.command.leftover if self.command else None
        if leftover and "; to remove what is left: " not in message:
            message += f"; to remove what is left: {leftover.format(**self.args)}"
        return PartlyDone(message, not_undone=stuck) if stuck else err.reworded(message)

    def release(self):
        """The operation has ended (done, or rolled back): each helper forgets its kept requests,
        so nothing can undo them later in the session."""
        kept, self.kept = self.kept, {}
        for session, ids in kept.items():
            try:
                session.release(ids)
            except CeoError:  # a lost session keeps nothing; an older helper keeps them till it ends
                pass

    def ticket(self):
        return ticket()

    def finish(self):
        self.pool.finish()

    def close(self):
        self.pool.close()


def typed(err: CeoError, command, qualname: str) -> CeoError:
    """err, its message naming `command` (a Verb: `ceo members add`) where it names the step
    `qualname` at its start (`members.create needs ...`, `members.create: ...`); the class,
    exit code, details and the rest of the message are the helper's."""
    if command is None:
        return err
    rest = err.message[len(qualname):] if err.message.startswith(qualname) else None
    if rest is None or rest[:1] not in (" ", ":"):
        return err
    return err.reworded(command.command + rest)


def run_verb(run: Run, verb, args: dict, host=None):
    """Execute a declared verb with validated args. Returns its result or raises CeoError."""
    outer, run.command, outer_args, run.args = run.command, verb, run.args, args
    try:
        return _run_verb(run, verb, args, host)
    finally:
        run.command, run.args = outer, outer_args


def _run_verb(run: Run, verb, args: dict, host=None):
    if not verb.composite:
        if verb.role == "any":
            host = host or next(iter(run.inventory.hosts.values()), None)
            if host is None:
                raise BadInput("the inventory lists no hosts")
            return run.call(verb.qualname, args, host=host)
        return run.call(verb.qualname, args, role=verb.role)
    if verb.roles:  # its hosts, all at once: their handshakes overlap
        run.pool.start({h.name: h for r in verb.roles for h in run.inventory.hosts_of(r)[:1]}.values())
    try:
        return verb.fn(run, **args)
    except CeoError as err:
        raise run.rollback(err) from None
    except KeyboardInterrupt:
        import signal
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the undo finish
        try:
            why = "interrupted: the completed steps were undone" if run.done else "interrupted"
            raise run.rollback(CeoError(why)) from None
        finally:
            signal.signal(signal.SIGINT, old)
    finally:
        run.done.clear()  # the operation has ended: its steps can no longer be undone
        run.release()
