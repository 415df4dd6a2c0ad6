"""PostgreSQL and MariaDB, as the helper reaches them: root over the database host's own
socket (the servers accept administrative connections only there).

Errors come back as one line naming the server and the error's class (SQLSTATE or MySQL
error number), never the statement or its values: a statement may hold a password
(`ALTER ROLE ... PASSWORD`), and error text lands in audit records and logs.
"""

from __future__ import annotations

from ..errors import AlreadyExists, ServiceUnavailable

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
                                   user="root", connect_timeout=CONNECT_TIMEOUT, autocommit=True)
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
