"""The UI's client: one Run, so one session per host, for the UI's whole life.

Each action swaps in its own event sink and check mode, then runs the verb exactly as the CLI
does (`runner.run_verb`). A session whose host went away is dropped and reported; the next
action that needs the host opens a new one.
"""

from __future__ import annotations

import threading

from ..discovery import discover
from ..errors import CeoError
from ..inventory import Inventory
from ..runner import Run, run_verb

# The desk's own entries, first in the menu, as CSC's ceo has always had them: (label, verb,
# preset arguments). The rest of the menu is every other verb the caller may run.
DESK = [
    ("New member", "members.add", {}),
    ("Renew membership", "members.renew", {}),
    ("New club rep", "members.add", {"clubrep": True}),
    ("Renew club rep", "members.renew", {"clubrep": True}),
    ("Look up a member", "members.get", {}),
    ("Search members", "members.search", {}),
    ("Change shell or forwarding", "members.modify", {}),
    ("Reset a password", "members.pwreset", {}),
]


class Sink:
    """Where a verb's events go while the UI runs it (the CLI's Output, minus the printing)."""

    as_json = True  # verbs print nothing themselves (no progress bar over the screen)

    def __init__(self, on_event=None):
        self.on_event = on_event
        self.steps: list[dict] = []
        self.warnings: list[str] = []

    def event(self, where: str, event: dict):
        if "step" in event:
            self.steps.append({"host": where, **event})
            if event.get("status") == "warning":
                self.warnings.append(event.get("message", ""))
        if self.on_event is not None:
            self.on_event(where, event)


class Desk:
    def __init__(self, config, inventory_path, keytab=None):
        self.config = config
        self.keytab = keytab or config.get("kerberos", "client_keytab")
        if self.keytab:
            from ..transport import use_keytab
            use_keytab(self.keytab)
        self.inventory = Inventory.load(inventory_path)
        self.registry = discover(config.get("plugins", "site_dir"))
        self.run = Run(self.inventory, config, Sink())
        self.lost: dict[str, str] = {}  # host -> why its session ended
        self.me: dict = {}
        self.early = None  # the sign-in started before the UI (sign_in_early)
        self.busy = threading.Lock()  # one action at a time: the run's undo log is per action

    def verb(self, qualname: str):
        plugin, name = qualname.split(".", 1)
        return self.registry.verb(plugin, name)

    def login(self) -> dict:
        """Who the helpers take the caller for, and what they may do (`ceo whoami`)."""
        early, self.early = self.early, None
        self.me = early.result() if early is not None else self.perform(self.verb("whoami.show"), {})
        return self.me

    def sign_in_early(self):
        """Start `login`'s request in a thread now; `login` then waits for its answer."""
        from concurrent.futures import Future
        self.early = Future()

        def ask():
            try:
                self.early.set_result(self.perform(self.verb("whoami.show"), {}))
            except BaseException as exc:  # login() raises it, in the UI's own words
                self.early.set_exception(exc)
        if any(host.connection == "paramiko" for host in self.inventory.hosts.values()):
            from ..transport import import_ssh
            try:
                import_ssh()  # here, not in the thread: textual is imported meanwhile (see import_ssh)
            except ImportError:
                pass  # the sign-in says so
        threading.Thread(target=ask, daemon=True).start()

    def menu(self) -> list[tuple[str, object, dict]]:
        """(label, verb, presets): the desk's entries, then every other verb the caller may run;
        nothing the policy would refuse them whatever its arguments."""
        may = self.me.get("may", {})
        entries, shown = [], set()
        for label, qualname, presets in DESK:
            verb = self.verb(qualname)
            if verb is not None and qualname in may:
                entries.append((label, verb, presets))
                shown.add(qualname)
        for qualname in may:
            verb = self.verb(qualname)
            if verb is not None and qualname not in shown and qualname != "whoami.show":
                entries.append((f"ceo {verb.plugin.name} {verb.name}", verb, {}))
        return entries

    def perform(self, verb, args: dict, check: bool = False, on_event=None):
        """Run a verb as the CLI would: validated args in, result out, CeoError on failure."""
        with self.busy:
            self.run.output, self.run.check = Sink(on_event), check
            try:
                return run_verb(self.run, verb, verb.validate(args))
            finally:
                self.prune()

    def prune(self):
        """Drop the sessions whose host went away: the next action reconnects."""
        pool = self.run.pool
        with pool.lock:
            for name, session in list(pool.sessions.items()):
                if session.hello is not None and not session.alive():
                    del pool.sessions[name]
                    self.lost[name] = "the session ended"
                    try:
                        session.close()
                    except Exception:
                        pass
            for name in pool.sessions:
                self.lost.pop(name, None)

    def status(self) -> list[tuple[str, str]]:
        """(host, "up" | "lost" | "idle") for the status bar."""
        pool = self.run.pool
        return [(name, "up" if name in pool.sessions else "lost" if name in self.lost else "idle")
                for name in self.inventory.hosts]

    def close(self):
        self.run.close()


def failure(err: Exception) -> str:
    """One line for the user: a CeoError's message, or the kind of an unexpected error."""
    if isinstance(err, CeoError):
        return err.message.splitlines()[0] if err.message else err.name
    return f"internal error: {type(err).__name__} (run `ceo` with the same action and -v for details)"
