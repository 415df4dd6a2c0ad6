"""PostgreSQL and MariaDB, as the helper reaches them: root over the database host's own
socket (the servers accept administrative connections only there).

Errors come back as one line naming the server and the error's class (SQLSTATE or MySQL
error number), never the statement or its values: a statement may hold a password
(`ALTER ROLE ... PASSWORD`), and error text lands in audit records and logs.

Below `run`: the databases ceo makes for accounts (`ceo mysql`, `ceo postgresql`), as lists
of statements that the helper runs as steps (each with its undo) or shows in check mode.
"""

from __future__ import annotations

import re

from ..errors import AlreadyExists, BadInput, CeoError, NotFound, ServiceUnavailable

CONNECT_TIMEOUT = 5
_PG_DUPLICATE = {"42P04", "42710"}  # duplicate_database, duplicate_object (a role)
_MY_DUPLICATE = {1007, 1396}  # database exists; CREATE USER failed (it exists)


def postgresql(ctx):
    """The session's PostgreSQL connection (autocommit: CREATE DATABASE runs outside a transaction)."""
    def open_():
        import psycopg2
        try:
            conn = psycopg2.connect(host=ctx.config.get("postgresql", "socket_dir", "/run/postgresql"),
                                    user="postgres", dbname="postgres", connect_timeout=CONNECT_TIMEOUT)
        except psycopg2.Error as exc:
            raise _pg_error(ctx, exc) from None
        conn.autocommit = True
        return conn
    return ctx.service("postgresql", open_)


def mariadb(ctx):
    """The session's MariaDB connection (autocommit)."""
    def open_():
        import pymysql
        try:
            return pymysql.connect(unix_socket=ctx.config.get("mariadb", "socket", "/run/mysqld/mysqld.sock"),
                                   user="root", connect_timeout=CONNECT_TIMEOUT, autocommit=True,
                                   # a statement that waits on a member's locks fails instead of hanging
                                   init_command="SET SESSION lock_wait_timeout = 30")
        except pymysql.Error as exc:
            raise _my_error(ctx, exc) from None
    return ctx.service("mariadb", open_)


def run(ctx, engine: str, statement, params=None, fetch=False):
    """One statement on "postgresql" or "mariadb" (values always as params, names quoted by
    the driver's own tools); fetch: return its rows."""
    if engine == "postgresql":
        import psycopg2 as lib
        connect, error = postgresql, _pg_error
    else:
        import pymysql as lib
        connect, error = mariadb, _my_error
    try:
        with connect(ctx).cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if fetch else None
    except lib.Error as exc:
        if isinstance(exc, (lib.OperationalError, lib.InterfaceError)):
            ctx.forget(engine)  # the server went away: reconnect on next use
        raise error(ctx, exc) from None


def _pg_error(ctx, exc):
    code = getattr(exc, "pgcode", None)
    name = type(exc).__name__
    if code in _PG_DUPLICATE:
        return AlreadyExists(f"PostgreSQL on {ctx.host}: already exists ({name}, SQLSTATE {code})")
    return ServiceUnavailable(f"PostgreSQL on {ctx.host} failed: {name}" + (f" (SQLSTATE {code})" if code else ""))


def _my_error(ctx, exc):
    number = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    name = type(exc).__name__
    if number in _MY_DUPLICATE:
        return AlreadyExists(f"MariaDB on {ctx.host}: already exists ({name}, error {number})")
    return ServiceUnavailable(f"MariaDB on {ctx.host} failed: {name}" + (f" (error {number})" if number else ""))


# --- databases for accounts: one database and one user named after a member or club account ---
#
# Statements are built here, with the drivers' own tools: names as psycopg2.sql.Identifier or
# a MariaDB backquoted identifier (after the name is checked again: only what an account name
# may be), values as bound parameters. Passwords never reach a server as text: PostgreSQL gets
# a SCRAM verifier computed here (libpq's PQencryptPasswordConn), MariaDB the
# mysql_native_password hash, so even a server that logs a failed statement logs no password.

# Only what an account name may be (ceo.plugin.Uid): no '_' or '%', which MariaDB reads as
# wildcards in `GRANT ... ON db.*`, no quotes, no upper case, at most 32 characters.
NAME = re.compile(r"[a-z][a-z0-9-]{0,31}")
# What ceo writes on what it makes, and looks for before it changes or drops anything: a
# database of the same name that someone else made (a shared `wiki`) is never ceo's to drop.
# PostgreSQL: a comment on the role, which only a superuser or CREATEROLE can set. MariaDB: a
# comment on the database (its owner could change it: then ceo no longer manages it), beside
# the user of the same name holding privileges on it, which only root can grant.
MARKER = "ceo: the database and user of the account of the same name"
ANY_HOST = "%"  # MariaDB users ceo makes are NAME@'%': the server's own bind address limits them
# LEFTOVER. A drop that did not finish (the server killed inside it) must be finishable by running
# the delete again, so the user's marks go last: MariaDB loses the database's comment first thing
# in DROP DATABASE (tables are left, the comment is not), so ceo first locks its user (no new
# sessions) and gives it the verifier DROPPING, which no password has and only ceo writes, then
# drops the database, then the user. A locked user NAME@'%' with that verifier, holding the
# grant on NAME, beside no database or one without a comment, is that leftover (a user syscom
# merely locked is not). PostgreSQL: ceo's marked role without its database.
DROPPING = "*" + "CE0D" * 10


class Secret:
    """A statement parameter that check mode shows as ***."""

    def __init__(self, value: str):
        self.value = value

    def __repr__(self):
        return "Secret(***)"


class Statement:
    """One statement, with what undoes it (another Statement, or None)."""

    def __init__(self, text, params=(), undo=None):
        self.text, self.params, self.undo = text, list(params), undo

    def run(self, ctx, engine: str):
        return run(ctx, engine, self.text, [p.value if isinstance(p, Secret) else p for p in self.params] or None)

    def shown(self, ctx, engine: str) -> str:
        """The statement as it would be sent, a secret parameter as '***'."""
        masked = ["***" if isinstance(p, Secret) else p for p in self.params]
        with (postgresql(ctx) if engine == "postgresql" else mariadb(ctx)).cursor() as cur:
            text = cur.mogrify(self.text, masked or None)
        return text.decode() if isinstance(text, bytes) else text


def checked_name(name: str) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise BadInput(f"{str(name)[:40]!r} is not an account name a database can take")
    return name


def _pg_id(name):
    from psycopg2 import sql as pgsql
    return pgsql.Identifier(checked_name(name))


def _pg(text, *names):
    from psycopg2 import sql as pgsql
    return pgsql.SQL(text).format(*(_pg_id(n) for n in names))


def _my_id(name: str) -> str:
    """A backquoted MariaDB identifier (a backquote doubled, though checked_name allows none)."""
    return "`" + checked_name(name).replace("`", "``") + "`"


def _my_grant_db(name: str) -> str:
    """The database of `GRANT ... ON db.*`, whose `_` and `%` are wildcards there: escaped, though
    checked_name allows neither."""
    return "`" + re.sub(r"([_%\\])", r"\\\1", checked_name(name)).replace("`", "``") + "`"


def _pg_verifier(ctx, name: str, password: str) -> str:
    from psycopg2.extensions import encrypt_password
    return encrypt_password(password, checked_name(name), postgresql(ctx), "scram-sha-256")


def _my_verifier(password: str) -> str:
    import hashlib
    return "*" + hashlib.sha1(hashlib.sha1(password.encode()).digest()).hexdigest().upper()


def state(ctx, engine: str, name: str) -> dict:
    """{database, user, managed, leftover} (MariaDB: and locked): whether a database and a user
    of that name exist, whether they are the pair ceo made, and whether ceo's user is all that is
    left of a drop that did not finish (see LEFTOVER)."""
    name = checked_name(name)
    if engine == "postgresql":
        row = run(ctx, engine, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = %s), "
                  "EXISTS (SELECT 1 FROM pg_roles WHERE rolname = %s), "
                  "EXISTS (SELECT 1 FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = %s "
                  "AND r.rolname = %s AND shobj_description(r.oid, 'pg_authid') = %s), "
                  "EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = %s "
                  "AND shobj_description(r.oid, 'pg_authid') = %s)",
                  [name, name, name, name, MARKER, name, MARKER], fetch=True)[0]
        database, user, managed, marked = map(bool, row)
        return {"database": database, "user": user, "managed": managed, "leftover": marked and not database}
    comment, user, granted, flags = run(
        ctx, engine, "SELECT (SELECT schema_comment FROM information_schema.schemata WHERE schema_name = %s), "
        "EXISTS (SELECT 1 FROM mysql.user WHERE user = %s), "
        "EXISTS (SELECT 1 FROM mysql.db WHERE Db = %s AND User = %s AND Host = %s), "
        "(SELECT concat(IFNULL(JSON_VALUE(Priv, '$.account_locked') IN ('1', 'true'), 0), "
        "IFNULL(JSON_VALUE(Priv, '$.authentication_string') = %s, 0)) FROM mysql.global_priv "
        "WHERE User = %s AND Host = %s)",
        [name, name, name, name, ANY_HOST, DROPPING, name, ANY_HOST], fetch=True)[0]
    locked, dropping = (flags or "00")[0] == "1", (flags or "00")[1:] == "1"
    return {"database": comment is not None, "user": bool(user), "managed": comment == MARKER and bool(granted),
            "leftover": bool(granted) and locked and dropping and not comment, "locked": locked}


def creation(ctx, engine: str, name: str, password: str) -> list[Statement]:
    """A database and a user named `name`, the user allowed only on that database; each
    statement undone by dropping what it made."""
    if engine == "postgresql":
        drop_role = Statement(_pg("DROP ROLE IF EXISTS {}", name))
        return [
            Statement(_pg("CREATE ROLE {} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
                          "NOBYPASSRLS PASSWORD %s", name), [Secret(_pg_verifier(ctx, name, password))], drop_role),
            Statement(_pg("COMMENT ON ROLE {} IS %s", name), [MARKER]),
            Statement(_pg("CREATE DATABASE {} OWNER {}", name, name), (),
                      Statement(_pg("DROP DATABASE IF EXISTS {} WITH (FORCE)", name))),
            # Only its owner (and superusers) may connect to it, or make temporary tables in it.
            Statement(_pg("REVOKE ALL ON DATABASE {} FROM PUBLIC", name)),
        ]
    return [
        Statement(f"CREATE DATABASE {_my_id(name)} COMMENT %s", [MARKER],
                  Statement(f"DROP DATABASE IF EXISTS {_my_id(name)}")),
        Statement("CREATE USER %s@%s IDENTIFIED BY PASSWORD %s", [name, ANY_HOST, Secret(_my_verifier(password))],
                  Statement("DROP USER IF EXISTS %s@%s", [name, ANY_HOST])),
        Statement(f"GRANT ALL PRIVILEGES ON {_my_grant_db(name)}.* TO %s@%s", [name, ANY_HOST]),
    ]


def password_change(ctx, engine: str, name: str, password: str) -> list[Statement]:
    """A new password for the user, undone by putting the old verifier back."""
    if engine == "postgresql":
        old = run(ctx, engine, "SELECT rolpassword FROM pg_authid WHERE rolname = %s", [checked_name(name)],
                  fetch=True)
        change = _pg("ALTER ROLE {} PASSWORD %s", name)
        return [Statement(change, [Secret(_pg_verifier(ctx, name, password))],
                          Statement(change, [Secret(old[0][0])]) if old and old[0][0] else None)]
    old = run(ctx, engine, "SELECT authentication_string FROM mysql.user WHERE user = %s AND host = %s",
              [checked_name(name), ANY_HOST], fetch=True)
    change = "ALTER USER %s@%s IDENTIFIED BY PASSWORD %s"
    return [Statement(change, [name, ANY_HOST, Secret(_my_verifier(password))],
                      Statement(change, [name, ANY_HOST, Secret(old[0][0])]) if old and old[0][0] else None)]


def removal(ctx, engine: str, name: str, noun: str) -> list[Statement]:
    """Drop the database and the user; the member's open sessions end with them. Not undoable:
    the caller runs this last."""
    if engine == "postgresql":
        # DROP ROLE fails while the role holds privileges or objects in other databases (another
        # member's GRANT on a table of theirs): found first, so that nothing is dropped half.
        held = run(ctx, engine, "SELECT count(*) FROM pg_shdepend s JOIN pg_roles r ON s.refobjid = r.oid "
                   "JOIN pg_database d ON d.datname = r.rolname WHERE r.rolname = %s "
                   "AND s.refclassid = 'pg_authid'::regclass AND s.dbid <> d.oid "
                   "AND NOT (s.dbid = 0 AND s.classid = 'pg_database'::regclass AND s.objid = d.oid)",
                   [checked_name(name)], fetch=True)[0][0]
        if held:
            raise BadInput(f"the PostgreSQL user {name} still holds privileges or objects in other databases "
                           f"({held}); they must be revoked first: ask syscom")
        # Its "undo" only says what is left when DROP ROLE fails after it (LEFTOVER).
        return [Statement(_pg("DROP DATABASE IF EXISTS {} WITH (FORCE)", name), (), Dropped(name, noun)),
                Statement(_pg("DROP ROLE {}", name))]
    found = state(ctx, engine, name)
    if found["leftover"]:  # marked already: the re-run of a drop that did not finish
        mark = Statement("ALTER USER %s@%s ACCOUNT LOCK", [name, ANY_HOST])
    else:
        old = run(ctx, engine, "SELECT authentication_string FROM mysql.user WHERE user = %s AND host = %s",
                  [name, ANY_HOST], fetch=True)[0][0]
        back = f"ALTER USER %s@%s IDENTIFIED BY PASSWORD %s{'' if found['locked'] else ' ACCOUNT UNLOCK'}"
        mark = Statement("ALTER USER %s@%s IDENTIFIED BY PASSWORD %s ACCOUNT LOCK", [name, ANY_HOST, Secret(DROPPING)],
                         WhileManaged(name, Statement(back, [name, ANY_HOST, Secret(old)]), noun))
    return [mark,
            Statement("KILL CONNECTION USER %s", [name]),  # or DROP DATABASE waits on their locks
            Statement(f"DROP DATABASE IF EXISTS {_my_id(name)}"),
            Statement("DROP USER IF EXISTS %s@%s", [name, ANY_HOST])]


class Dropped:
    """The undo of a DROP DATABASE, which nothing undoes: once the database is gone, it says that
    the user is left and what finishes the drop (the failure is then reported as partly done)."""

    def __init__(self, name: str, noun: str):
        self.name, self.noun = name, noun

    def run(self, ctx, engine: str):
        if not state(ctx, engine, self.name)["database"]:
            raise CeoError(f"the database is dropped but not its user: `ceo {self.noun} delete {self.name}` "
                           "finishes it")


class WhileManaged:
    """An undo that runs only while the database still has ceo's comment: once DROP DATABASE
    has taken it, the user's lock and mark must stay, for the re-run to finish (LEFTOVER)."""

    def __init__(self, name: str, statement: Statement, noun: str):
        self.name, self.statement, self.noun = name, statement, noun

    def run(self, ctx, engine: str):
        if not state(ctx, engine, self.name)["managed"]:
            raise CeoError(f"the database is half dropped, so its user stays locked: `ceo {self.noun} delete "
                           f"{self.name}` finishes it")
        self.statement.run(ctx, engine)


def managed(ctx, engine: str) -> list[dict]:
    """The databases ceo made: {database, owner, bytes}, by name."""
    if engine == "postgresql":
        rows = run(ctx, engine, "SELECT d.datname, r.rolname, pg_database_size(d.oid) FROM pg_database d "
                   "JOIN pg_roles r ON r.oid = d.datdba WHERE r.rolname = d.datname "
                   "AND shobj_description(r.oid, 'pg_authid') = %s ORDER BY d.datname", [MARKER], fetch=True)
    else:
        marked = run(ctx, engine, "SELECT schema_name FROM information_schema.schemata WHERE schema_comment = %s",
                     [MARKER], fetch=True)
        granted = {r[0] for r in run(ctx, engine, "SELECT Db FROM mysql.db WHERE Host = %s AND User = Db",
                                     [ANY_HOST], fetch=True)}
        sizes = dict(run(ctx, engine, "SELECT table_schema, SUM(data_length + index_length) "
                         "FROM information_schema.tables GROUP BY table_schema", fetch=True))
        rows = [(n, n, sizes.get(n) or 0) for (n,) in sorted(marked) if n in granted]
    return [{"database": d, "owner": o, "bytes": int(b or 0)} for d, o, b in rows]


def require_managed(ctx, engine: str, name: str, label: str, noun: str, leftover_ok: bool = False):
    """NotFound unless `name` has the database and user ceo made (a same-named database that
    someone else made is refused, never touched); with leftover_ok, what an unfinished drop left
    will do (the drop finishes it)."""
    found = state(ctx, engine, name)
    if found["managed"] or (leftover_ok and found["leftover"]):
        return
    if found["leftover"]:
        raise BadInput(f"the {label} database {name} is what a delete that did not finish left: "
                       f"`ceo {noun} delete {name}` finishes it")
    if found["database"] or found["user"]:
        raise BadInput(f"the {label} database or user {name} was not made by ceo: ask syscom")
    raise NotFound(f"{name} has no {label} database (`ceo {noun} create {name}` makes one)")


def require_absent(ctx, engine: str, name: str, label: str, noun: str):
    found = state(ctx, engine, name)
    if found["managed"]:
        raise AlreadyExists(f"{name} already has a {label} database: `ceo {noun} pwreset {name}` "
                            "gives it a new password")
    if found["leftover"]:
        raise AlreadyExists(f"{name}'s {label} database is what a delete that did not finish left: "
                            f"`ceo {noun} delete {name}` finishes it, then create")
    if found["database"] or found["user"]:
        raise AlreadyExists(f"a {label} database or user named {name} already exists, not made by ceo: ask syscom")
