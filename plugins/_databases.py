"""What `ceo mysql` and `ceo postgresql` share: the same verbs, declared once for each server.

An account's database is a database and a user, both named after a member or club account,
the user allowed on that database only, with a random password. The connection details go
to ~NAME/ceo-<noun>-info on the homes host (mode 0600, the account's; an older one is kept as
.old) and are shown once to the caller. create and pwreset are a step on the databases host,
then the info file on the homes host: if the file cannot be written, the runner undoes the
first step (the database and user are dropped, or the old password put back). delete removes
the info file first (undoable) and drops the database and user last (not undoable); a drop the
server was killed inside is finished by running delete again (services/sql.py, LEFTOVER).

Who may: the account itself, for a club account the members of its group, and syscom; each
step is authorized by its own helper (`allow`, policy.club_database, database_account_guard).
"""

from __future__ import annotations

import os

from ceo import policy
from ceo.errors import BadInput, NotFound
from ceo.output import count, facts, safe
from ceo.plugin import Str, Uid
from ceo.services import homes, sql

Account = Uid("name", "the member or club account (default: you)", positional=True, required=False)
Named = Uid("name", "the member or club account", positional=True)
Password = Str("password", "the password the database step made", secret=True, pattern=r"[A-Za-z0-9]{16,64}",
               describe="a password ceo made", max_length=64)

# Every step: the account itself, a club's members for the club, syscom; only accounts ceo manages.
STEP = dict(allow=("self", "syscom"), permit=policy.club_database, guard=policy.database_account_guard,
            hidden=True)


class Engine:
    """One server, as its plugin presents it."""

    def __init__(self, noun: str, label: str, service: str, port: int, client: str):
        self.noun, self.label = noun, label  # the plugin's name; the server's name for people
        self.service = service  # ceo.services.sql's engine, and its ceo.ini section
        self.port = port
        self.client = client  # how to connect with the server's own client (a format string)
        self.info_file = f"ceo-{noun}-info"

    def address(self, config) -> tuple[str, int]:
        """What members connect to (`[postgresql]` / `[mariadb]` host and port in ceo.ini)."""
        return config.get(self.service, "host", "localhost"), int(config.get(self.service, "port", str(self.port)))

    def info(self, config, name: str, password: str) -> str:
        host, port = self.address(config)
        return (f"# The {self.label} database of {name}, made by ceo. Keep this file to yourself (mode 0600).\n"
                f"# Connect with: {self.client.format(host=host, port=port, name=name)}\n"
                f"host: {host}\nport: {port}\ndatabase: {name}\nuser: {name}\npassword: {password}\n")


def declare(plugin, engine: Engine):
    """Declare the verbs and steps of `plugin` for `engine`."""
    noun, label, service, info_file = engine.noun, engine.label, engine.service, engine.info_file

    # --- the verbs users type ------------------------------------------------------------------

    def render_password(console, result):
        # password None: check mode, nothing made; left out: the office UI shows it itself.
        if "password" in result and not result["password"]:
            return
        rows = [("Host", f"{result['host']}:{result['port']}"), ("Database", result["database"]),
                ("User", result["user"])]
        if result.get("password"):
            rows.append(("Password", result["password"]))
        rows.append(("Details in", result["file"]))
        facts(console, f"{label} database {result['database']}", rows)
        console.print(f"{'The password is shown once; it is also' if result.get('password') else 'It is'} in "
                      f"{safe(result['file'])}, which only {safe(result['user'])} can read.")

    @plugin.composite("create", f"A {label} database and user for you, a club of yours, or (syscom) anyone; "
                      "password shown once",
                      example=(f"ceo {noun} create                 # a database for you",
                               f"ceo {noun} create gamedev         # a club's, by one of its members"),
                      check=True, allow=STEP["allow"], render=render_password, params=[Account],
                      leftover=f"ceo {noun} delete {{name}} --yes")
    def create(run, name):
        name = run.args["name"] = caller_unless(run, name)  # what a failed run left is named by it
        run.prepare(["databases", "homes"])
        made = run.step(f"{noun}.make", {"name": name}, role="databases", describe=f"{label} database {name}")
        return details(run, name, made)

    @plugin.composite("pwreset", f"A new password for a {label} database's user, shown once",
                      example=(f"ceo {noun} pwreset",
                               f"ceo {noun} pwreset gamedev"),
                      check=True, allow=STEP["allow"],
                      render=render_password, params=[Account])
    def pwreset(run, name):
        name = caller_unless(run, name)
        run.prepare(["databases", "homes"])
        made = run.step(f"{noun}.password", {"name": name}, role="databases",
                        describe=f"new password of {label} user {name}")
        return details(run, name, made)

    def details(run, name, made):
        """The info file, then what the caller is shown (the password only here, once)."""
        info = run.step(f"{noun}.write_info", {"name": name, "password": made.get("password")}, role="homes",
                        describe=f"{name}'s {info_file}")
        shown = {k: info.get(k) for k in ("host", "port", "database", "user", "file")}
        return {**shown, "password": made.get("password")}

    @plugin.composite("delete", f"Drop a {label} database and its user, and remove its info file",
                      example=f"ceo {noun} delete alice --check",
                      check=True, allow=STEP["allow"],
                      confirm=f"Drop the {label} database {{name}}, all its tables, and its user?", params=[Named],
                      leftover=f"ceo {noun} delete {{name}} --yes")  # a drop cut short: the same again
    def delete(run, name):
        run.prepare(["databases", "homes"])
        try:
            run.call(f"{noun}.state", {"name": name}, role="databases")  # ceo's to drop? before any change
            nothing = None
        except NotFound as err:
            # Nothing to drop. A drop the server was killed in after its last statement failed as a
            # step, and the rollback put the info file back: removing it is what finishes the delete.
            nothing = err
        removed = run.step(f"{noun}.remove_info", {"name": name}, role="homes", describe=f"{name}'s {info_file}")
        if nothing is not None:
            if not (removed or {}).get("changed"):
                raise nothing
            return {"name": name, "dropped": False}
        run.step(f"{noun}.drop", {"name": name}, role="databases", describe=f"{label} database {name}")
        return {"name": name, "dropped": not run.check}

    def render_list(console, rows):
        from rich.table import Table
        table = Table(show_edge=False, header_style="bold")
        for column in ("database", "owner", "size"):
            table.add_column(column)
        for r in rows:
            table.add_row(safe(r["database"]), safe(r["owner"]), _size(r["bytes"]))
        console.print(table)
        console.print(count(len(rows), "database"))

    @plugin.verb("list", f"The {label} databases ceo made: owner and size (syscom)",
                 example=f"ceo {noun} list --json",
                 role="databases",
                 allow=("syscom",), render=render_list)
    def list_(ctx):
        return sql.managed(ctx, service)

    # --- the steps behind them -----------------------------------------------------------------

    @plugin.verb("state", f"Step: whether the {label} database is ceo's", role="databases", params=[Named], **STEP)
    def state(ctx, name):
        sql.require_managed(ctx, service, name, label, noun, leftover_ok=True)
        return {"name": name, "managed": True}

    @plugin.verb("make", f"Step: the {label} database and its user, with a new password", role="databases",
                 mutating=True, check=True, params=[Named], **STEP)
    def make(ctx, name):
        sql.require_absent(ctx, service, name, label, noun)
        password = None if ctx.check else new_password()
        run_statements(ctx, sql.creation(ctx, service, name, password or ""))
        return ctx.created(name=name, password=password)

    @plugin.verb("password", f"Step: a new password for the {label} user", role="databases", mutating=True,
                 check=True, params=[Named], **STEP)
    def password(ctx, name):
        sql.require_managed(ctx, service, name, label, noun)
        new = None if ctx.check else new_password()
        run_statements(ctx, sql.password_change(ctx, service, name, new or ""))
        return ctx.changed(name=name, password=new)

    @plugin.verb("drop", f"Step: drop the {label} database and its user", role="databases", mutating=True,
                 check=True, params=[Named], **STEP)
    def drop(ctx, name):
        sql.require_managed(ctx, service, name, label, noun, leftover_ok=True)
        run_statements(ctx, sql.removal(ctx, service, name, noun))
        return ctx.changed(name=name)

    def run_statements(ctx, statements):
        """Each statement a step, shown as sent (a password as ***), undone by its undo."""
        for st in statements:
            ctx.step("sql", lambda st=st: st.run(ctx, service),
                     (lambda u=st.undo: u.run(ctx, service)) if st.undo else None, describe=st.shown(ctx, service),
                     would=f"run {st.shown(ctx, service)}")

    @plugin.verb("write_info", f"Step: write ~NAME/{info_file}, keeping an older one as .old", role="homes",
                 mutating=True, check=True, params=[Named, Password], **STEP)
    def write_info(ctx, name, password):
        if not password and not ctx.check:
            raise BadInput(f"{noun}.write_info: missing parameter 'password'")
        home, number = account_home(ctx, name)
        path = os.path.join(home, info_file)
        if os.path.isdir(path) and not os.path.islink(path):  # before any step: the account's mistake
            raise BadInput(f"{path} is a directory; move it away first")
        if os.path.lexists(path):
            ctx.step("keep-old", lambda: homes.keep_old(home, info_file), lambda: homes.put_back_old(home, info_file),
                     describe=f"kept the older {path} as {info_file}.old",
                     would=f"keep the older {path} as {info_file}.old")
        ctx.step("info", lambda: homes.write_file(home, info_file, engine.info(ctx.config, name, password), number,
                                                  mode=0o600),
                 lambda: homes.write_file(home, info_file, None, number),
                 describe=f"wrote {path} (mode 0600, owner {name})", would=f"write {path} (mode 0600, owner {name})")
        host, port = engine.address(ctx.config)
        return ctx.changed(file=path, host=host, port=port, database=name, user=name)

    @plugin.verb("remove_info", f"Step: remove ~NAME/{info_file} and its .old", role="homes", mutating=True,
                 check=True, params=[Named], **STEP)
    def remove_info(ctx, name):
        try:
            home, number = account_home(ctx, name)
        except NotFound:
            return ctx.unchanged("info", f"{name} has no home directory, so no {info_file}")
        removed = []
        for file in (info_file, f"{info_file}.old"):
            path = os.path.join(home, file)
            text = homes.read_file(path)  # to put back if a later step fails; a link or FIFO is refused
            if text is None:
                continue
            ctx.step("info", lambda f=file: homes.write_file(home, f, None, number),
                     lambda f=file, t=text: homes.write_file(home, f, t, number, mode=0o600),
                     describe=f"removed {path}", would=f"remove {path}")
            removed.append(path)
        if not removed:
            return ctx.unchanged("info", f"{name} has no {os.path.join(home, info_file)}")
        return ctx.changed(removed=removed)

    return plugin


def caller_unless(run, name):
    """NAME, or the caller (the ticket's user; the helpers decide on their own who it is)."""
    if name:
        return name
    principal, _ = run.ticket()
    return Account.convert(principal.rsplit("@", 1)[0])


def account_home(ctx, name) -> tuple[str, int]:
    """The account's home and uid number, from LDAP (never from the request)."""
    account = policy.database_account(ctx, name)
    base = ctx.config.get("homes", "base", "/users")
    return homes.account_home(base, account["home"], account["number"], name), account["number"]


def new_password() -> str:
    from plugins.members.accounts import new_password as make  # one generator of passwords
    return make()


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
