"""`ceo mysql` and `ceo postgresql`: create, pwreset, delete, list, through the real command,
checked with independent tools: the member's own TCP connection with the credentials read from
the info file (psycopg2, pymysql), the servers' catalogues read as their superusers over the
socket, the files under /users, the audit file, syslog, /proc.

Every test starts and ends with no database, user or info file for the accounts it uses (the
`clean` fixture drops them as the superuser). One test stops the homes host's sshd and starts
it again.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import threading
import time
from contextlib import closing

import psycopg2
import pymysql
import pytest
import rawhelper
from psycopg2 import sql as pgsql
from rootldap import RootLDAP

from ceo.services import sql as service

NOUNS = ("mysql", "postgresql")
FILE = {noun: f"ceo-{noun}-info" for noun in NOUNS}
PORT = {"mysql": 3306, "postgresql": 5432}
DB_HOST = "coffee.csclub.internal"
# The accounts these tests give databases to, and two planted in LDAP: a member in the member
# range whose home does not exist, and a system account (neither member nor club).
USED = ("regular1", "regular2", "club1", "ctdalek", "dbnohome", "dbsystem")
HOSTILE = ["a_b", "x%", "a`b", 'x"; DROP', "robert'); --", "a" * 64, "a" * 70, "Regular1", "REGULAR1"]
BASE = "dc=csclub,dc=internal"


# --- the servers, as their superusers ----------------------------------------------------------

def pg_admin():
    conn = psycopg2.connect(host="/run/postgresql", user="postgres", dbname="postgres")
    conn.autocommit = True
    return conn


def my_admin():
    return pymysql.connect(unix_socket="/run/mysqld/mysqld.sock", user="root", autocommit=True)


def rows(conn, query, params=None):
    with conn.cursor() as cur:
        cur.execute(query, params)
        return cur.fetchall()


def catalogues() -> dict:
    """Everything a database verb could change, read from each server's own catalogue, and
    every ceo info file under /users."""
    pg, my = pg_admin(), my_admin()
    try:
        out = {
            "pg_database": sorted(rows(pg, "SELECT datname, datdba, datacl::text FROM pg_database")),
            "pg_roles": sorted(rows(pg, "SELECT rolname, rolsuper, rolcreatedb, rolcreaterole, rolcanlogin, "
                                        "shobj_description(oid, 'pg_authid') FROM pg_roles")),
            "pg_authid": sorted(rows(pg, "SELECT rolname, rolpassword FROM pg_authid")),
            "schemata": sorted(rows(my, "SELECT schema_name, schema_comment FROM information_schema.schemata")),
            "mysql.user": sorted(rows(my, "SELECT user, host, authentication_string FROM mysql.user")),
            "mysql.db": sorted(rows(my, "SELECT Db, User, Host FROM mysql.db")),
            "locked": sorted(rows(my, "SELECT User, Host FROM mysql.global_priv "
                                      "WHERE JSON_VALUE(Priv, '$.account_locked') IN ('1', 'true')")),
        }
    finally:
        pg.close()
        my.close()
    out["files"] = sorted(f"{home}/{f}" for home in os.listdir("/users") if os.path.isdir(f"/users/{home}")
                          for f in os.listdir(f"/users/{home}") if f.startswith("ceo-"))
    assert ("postgres",) in [r[:1] for r in out["pg_database"]] and out["mysql.user"], out  # read for real
    return out


def exists(noun, name) -> dict:
    """{database, user} of `name` on `noun`'s server, from its catalogue."""
    if noun == "postgresql":
        with closing(pg_admin()) as pg:
            return {"database": bool(rows(pg, "SELECT 1 FROM pg_database WHERE datname = %s", [name])),
                    "user": bool(rows(pg, "SELECT 1 FROM pg_roles WHERE rolname = %s", [name]))}
    with closing(my_admin()) as my:
        return {"database": bool(rows(my, "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", [name])),
                "user": bool(rows(my, "SELECT 1 FROM mysql.user WHERE user = %s", [name]))}


def hand_made(noun, name):
    """A database of that name that ceo did not make (syscom's, by hand)."""
    if noun == "postgresql":
        with closing(pg_admin()) as pg:
            pg.cursor().execute(pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(name)))
    else:
        with closing(my_admin()) as my:
            my.cursor().execute(f"CREATE DATABASE `{name}`")


def purge(*names):
    """No database, user or info file for `names`, whatever a test (or a broken verb) left."""
    with closing(pg_admin()) as pg:
        for (name,) in rows(pg, "SELECT datname FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba "
                                "WHERE datname = ANY(%s) OR rolname = ANY(%s)", [list(names)] * 2):
            pg.cursor().execute(pgsql.SQL("DROP DATABASE {} WITH (FORCE)").format(pgsql.Identifier(name)))
        for (name,) in rows(pg, "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", [list(names)]):
            pg.cursor().execute(pgsql.SQL("DROP ROLE {}").format(pgsql.Identifier(name)))
    with closing(my_admin()) as my:
        for (user, host) in rows(my, "SELECT user, host FROM mysql.user WHERE user IN %s", [names]):
            my.cursor().execute("DROP USER %s@%s", [user, host])
        for (name,) in rows(my, "SELECT schema_name FROM information_schema.schemata WHERE schema_name IN %s",
                            [names]):
            my.cursor().execute(f"DROP DATABASE `{name}`")
    for name in names:
        for noun in NOUNS:
            for suffix in ("", ".old"):
                path = f"/users/{name}/{FILE[noun]}{suffix}"
                if os.path.isdir(path) and not os.path.islink(path):
                    os.rmdir(path)
                elif os.path.lexists(path):
                    os.unlink(path)
    with closing(pg_admin()) as pg, closing(my_admin()) as my:
        assert not rows(pg, "SELECT datname FROM pg_database WHERE datname = ANY(%s) UNION "
                            "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", [list(names)] * 2)
        assert not rows(my, "SELECT schema_name FROM information_schema.schemata WHERE schema_name IN %s UNION "
                            "SELECT user FROM mysql.user WHERE user IN %s", [names] * 2)


# --- the command ----------------------------------------------------------------------------------

def ceo(cluster, user, noun, *args):
    return cluster.run(["ceo", noun, *args], user, stdin=subprocess.DEVNULL)


def ok(proc) -> dict:
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    return json.loads(proc.stdout)["result"]


def one_line_error(proc, code) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(("ceo: ", "ceo ")), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    return lines[0]


def info_file(noun, name) -> dict:
    """The info file as the member reads it: `key: value` lines, checked for mode and owner."""
    path = f"/users/{name}/{FILE[noun]}"
    st = os.lstat(path)
    number = os.lstat(f"/users/{name}").st_uid
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    assert (st.st_uid, st.st_gid) == (number, number)
    with open(path) as f:
        text = f.read()
    return dict(line.split(": ", 1) for line in text.splitlines() if ": " in line and not line.startswith("#"))


def login(noun, info, database=None, password=None):
    """A connection as the member over TCP, with what the info file says."""
    assert socket.gethostbyname(info["host"]) == "127.0.0.3"  # the databases host's address
    kw = dict(host=info["host"], port=int(info["port"]), user=info["user"],
              password=password or info["password"], connect_timeout=5)
    if noun == "postgresql":
        conn = psycopg2.connect(dbname=database or info["database"], **kw)
        conn.autocommit = True  # CREATE DATABASE runs outside a transaction: the refusal is the privilege
        return conn
    return pymysql.connect(database=database or info["database"], **kw)


def refused_login(noun, info, **kw) -> str:
    errors = (psycopg2.OperationalError,) if noun == "postgresql" else (pymysql.err.OperationalError,)
    with pytest.raises(errors) as refused:
        login(noun, info, **kw).close()
    return str(refused.value)


def denied(noun, conn, statement):
    """The statement fails for lack of privilege."""
    with pytest.raises((psycopg2.errors.InsufficientPrivilege, pymysql.err.OperationalError)) as why:
        with conn.cursor() as cur:
            cur.execute(statement)
    if noun == "postgresql":
        conn.rollback()
    else:
        assert why.value.args[0] in (1044, 1227), why.value  # access denied to a database; needs a privilege


def use_it(noun, conn):
    """The member makes a table, writes and reads it."""
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE notes (id int PRIMARY KEY, body text)")
        cur.execute("INSERT INTO notes VALUES (1, 'hello')")
        cur.execute("SELECT body FROM notes")
        assert cur.fetchall()[0][0] == "hello"
    conn.commit()


def audit_since(cluster, start) -> list[dict]:
    with open(cluster.state / "audit.jsonl", "rb") as f:
        f.seek(start)
        return [json.loads(line) for line in f.read().splitlines()]


def audit_size(cluster) -> int:
    path = cluster.state / "audit.jsonl"
    return path.stat().st_size if path.exists() else 0


# --- fixtures -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ldap(cluster):
    return RootLDAP(cluster)


@pytest.fixture(scope="module")
def planted(cluster):
    """Two LDAP accounts of this module's own: `dbnohome`, a member in the member range with no
    home directory, and `dbsystem`, a posixAccount that is neither member nor club."""
    people = f"ou=People,{BASE}"
    entries = {
        f"uid=dbnohome,{people}": (["top", "account", "posixAccount", "shadowAccount", "member"],
                                   {"uid": "dbnohome", "cn": "No Home", "uidNumber": 29981, "gidNumber": 29981,
                                    "homeDirectory": "/users/dbnohome", "term": "w2020"}),
        f"uid=dbsystem,{people}": (["top", "account", "posixAccount"],
                                   {"uid": "dbsystem", "cn": "A Service", "uidNumber": 998, "gidNumber": 998,
                                    "homeDirectory": "/var/lib/dbsystem"}),
    }
    root = RootLDAP(cluster)
    for dn, (classes, attrs) in entries.items():
        root._do(lambda c, dn=dn: c.delete(dn))  # left by an interrupted run
        root._do(lambda c, dn=dn, classes=classes, attrs=attrs: c.add(dn, classes, attrs) or pytest.fail(str(c.result)))
    assert not os.path.lexists("/users/dbnohome")
    yield
    for dn in entries:
        root._do(lambda c, dn=dn: c.delete(dn))
        assert root.read(dn) is None


@pytest.fixture(scope="module", autouse=True)
def host_check(cluster):
    """MariaDB keeps '%' in its list of hosts that may try to log in after the last user@'%' is
    dropped, until privileges are reloaded: reloaded at the end, so that the server refuses
    other hosts as before (test_sandbox checks it does, with 'host not privileged')."""
    yield
    with closing(my_admin()) as my:
        my.cursor().execute("FLUSH PRIVILEGES")


@pytest.fixture(autouse=True)
def clean(cluster, planted):
    purge(*USED, "another")  # what a member's CREATE DATABASE or ROLE would make, if it worked
    yield
    purge(*USED, "another")


# --- create: a database only its account can use ------------------------------------------------

@pytest.mark.parametrize("noun", NOUNS)
def test_a_member_gets_a_database_only_they_can_use(cluster, noun):
    start = audit_size(cluster)
    mine = ok(ceo(cluster, "regular1", noun, "create", "--json"))  # NAME defaults to the caller
    theirs = ok(ceo(cluster, "regular2", noun, "create", "regular2", "--json"))
    info = info_file(noun, "regular1")
    assert info == {"host": DB_HOST, "port": str(PORT[noun]), "database": "regular1", "user": "regular1",
                    "password": mine["password"]}
    assert mine == {"host": DB_HOST, "port": PORT[noun], "database": "regular1", "user": "regular1",
                    "file": f"/users/regular1/{FILE[noun]}", "password": info["password"]}
    assert len(mine["password"]) >= 16 and mine["password"] != theirs["password"]

    conn = login(noun, info)
    try:
        use_it(noun, conn)
        denied(noun, conn, "CREATE DATABASE another")
        denied(noun, conn, "CREATE ROLE another" if noun == "postgresql" else "CREATE USER another")
        if noun == "mysql":
            denied(noun, conn, "CREATE ROLE another")
            denied(noun, conn, "USE regular2")
    finally:
        conn.close()
    # Not into another member's database, with their own password or the other's name.
    why = refused_login(noun, info, database="regular2")
    assert ("permission denied for database" in why) if noun == "postgresql" else ("1044" in why), why
    refused_login(noun, {**info, "user": "regular2"})

    # What the servers hold: exactly the pair, with nothing more than their own database.
    if noun == "postgresql":
        with closing(pg_admin()) as pg:
            role = rows(pg, "SELECT rolsuper, rolcreatedb, rolcreaterole, rolcanlogin, rolreplication, rolbypassrls "
                            "FROM pg_roles WHERE rolname = 'regular1'")
            assert role == [(False, False, False, True, False, False)]
            owner, acl = rows(pg, "SELECT r.rolname, d.datacl::text FROM pg_database d JOIN pg_roles r "
                                  "ON r.oid = d.datdba WHERE d.datname = 'regular1'")[0]
            assert owner == "regular1" and acl == "{regular1=CTc/regular1}"  # nothing for PUBLIC
    else:
        with closing(my_admin()) as my:
            assert rows(my, "SELECT user, host FROM mysql.user WHERE user = 'regular1'") == (("regular1", "%"),)
            grants = [g[0] for g in rows(my, "SHOW GRANTS FOR 'regular1'@'%'")]
            assert len(grants) == 2 and grants[0].startswith("GRANT USAGE ON *.* TO `regular1`@`%`")
            assert grants[1] == "GRANT ALL PRIVILEGES ON `regular1`.* TO `regular1`@`%`"
    records = [r for r in audit_since(cluster, start) if r["plugin"] == noun]
    assert [(r["verb"], r["caller"], r["outcome"]) for r in records] == [
        ("make", "regular1", "done"), ("write_info", "regular1", "done"),
        ("make", "regular2", "done"), ("write_info", "regular2", "done")]
    assert records[1]["args"] == {"name": "regular1", "password": "***"}


@pytest.mark.parametrize("noun", NOUNS)
def test_a_clubs_members_share_its_database(cluster, noun):
    made = ok(ceo(cluster, "regular2", noun, "create", "club1", "--json"))  # regular2 is in club1's group
    info = info_file(noun, "club1")  # owned by club1 (30001), mode 0600
    assert os.lstat("/users/club1").st_uid == 30001 and info["password"] == made["password"]
    conn = login(noun, info)
    try:
        use_it(noun, conn)
        denied(noun, conn, "CREATE DATABASE another")
    finally:
        conn.close()
    # clubrep1, the group's other member, may reset it; regular1, no member of the club, may not.
    before = catalogues()
    one_line_error(ceo(cluster, "regular1", noun, "pwreset", "club1"), 3)
    one_line_error(ceo(cluster, "regular1", noun, "delete", "club1", "--yes"), 3)
    assert catalogues() == before
    again = ok(ceo(cluster, "clubrep1", noun, "pwreset", "club1", "--json"))
    assert info_file(noun, "club1")["password"] == again["password"] != made["password"]
    login(noun, info_file(noun, "club1")).close()


@pytest.mark.parametrize("noun", NOUNS)
def test_creating_what_exists_suggests_pwreset(cluster, noun):
    ok(ceo(cluster, "regular1", noun, "create", "--json"))
    before = catalogues()
    line = one_line_error(ceo(cluster, "regular1", noun, "create"), 2)
    assert f"regular1 already has a {'MySQL' if noun == 'mysql' else 'PostgreSQL'} database" in line
    assert f"ceo {noun} pwreset regular1" in line
    assert catalogues() == before


@pytest.mark.parametrize("noun", NOUNS)
def test_a_database_ceo_did_not_make_is_not_touched(cluster, noun):
    """A hand-made database of the same name (a shared `wiki`, say) is never ceo's to reset or drop."""
    hand_made(noun, "regular1")
    before = catalogues()
    assert "not made by ceo" in one_line_error(ceo(cluster, "regular1", noun, "create"), 2)
    assert "not made by ceo" in one_line_error(ceo(cluster, "regular1", noun, "pwreset"), 2)
    assert "not made by ceo" in one_line_error(ceo(cluster, "ctdalek", noun, "delete", "regular1", "--yes"), 2)
    assert catalogues() == before


# --- pwreset and delete ---------------------------------------------------------------------------

@pytest.mark.parametrize("noun", NOUNS)
def test_pwreset_the_old_password_fails_and_the_new_one_works(cluster, noun):
    first = ok(ceo(cluster, "regular1", noun, "create", "--json"))
    conn = login(noun, info_file(noun, "regular1"))
    use_it(noun, conn)
    conn.close()
    old_text = open(f"/users/regular1/{FILE[noun]}").read()
    second = ok(ceo(cluster, "ctdalek", noun, "pwreset", "regular1", "--json"))  # syscom, for a member
    info = info_file(noun, "regular1")
    assert info["password"] == second["password"] != first["password"]
    assert open(f"/users/regular1/{FILE[noun]}.old").read() == old_text  # the older file, kept
    refused_login(noun, info, password=first["password"])
    conn = login(noun, info)
    with conn.cursor() as cur:  # the same database: the table is still there
        cur.execute("SELECT body FROM notes")
        assert cur.fetchall()[0][0] == "hello"
    conn.close()


@pytest.mark.parametrize("noun", NOUNS)
def test_delete_leaves_no_database_user_or_file(cluster, noun):
    empty = catalogues()
    ok(ceo(cluster, "regular1", noun, "create", "--json"))
    ok(ceo(cluster, "regular1", noun, "pwreset", "--json"))  # so that there is a .old too
    kept = login(noun, info_file(noun, "regular1"))  # an open session does not keep it alive
    made = catalogues()
    one_line_error(ceo(cluster, "regular1", noun, "delete", "regular1"), 2)  # no terminal, no --yes
    assert catalogues() == made
    proc = ceo(cluster, "regular1", noun, "delete", "regular1", "--yes", "--json")
    ok(proc)
    assert exists(noun, "regular1") == {"database": False, "user": False}
    assert not [f for f in os.listdir("/users/regular1") if f.startswith("ceo-")]
    assert catalogues() == empty
    kept.close()
    line = one_line_error(ceo(cluster, "regular1", noun, "delete", "regular1", "--yes"), 2)
    assert "regular1 has no" in line and f"ceo {noun} create regular1" in line
    one_line_error(ceo(cluster, "regular1", noun, "pwreset"), 2)
    assert catalogues() == empty


def test_delete_refuses_a_role_others_granted_something_and_drops_nothing(cluster):
    """DROP ROLE fails while another database grants the role something: found before anything
    is dropped, so the database is not gone with the role left behind."""
    ok(ceo(cluster, "regular1", "postgresql", "create", "--json"))
    ok(ceo(cluster, "regular2", "postgresql", "create", "--json"))
    conn = login("postgresql", info_file("postgresql", "regular2"))
    use_it("postgresql", conn)
    with conn.cursor() as cur:
        cur.execute('GRANT SELECT ON notes TO "regular1"')
    before, text = catalogues(), open(f"/users/regular1/{FILE['postgresql']}").read()
    line = one_line_error(ceo(cluster, "regular1", "postgresql", "delete", "regular1", "--yes"), 2)
    assert "still holds privileges or objects in other databases" in line
    assert catalogues() == before and open(f"/users/regular1/{FILE['postgresql']}").read() == text
    with conn.cursor() as cur:
        cur.execute('REVOKE SELECT ON notes FROM "regular1"')
    conn.close()
    ok(ceo(cluster, "regular1", "postgresql", "delete", "regular1", "--yes", "--json"))
    assert exists("postgresql", "regular1") == {"database": False, "user": False}


def half_dropped(noun, name):
    """What a server killed inside ceo's drop leaves: MariaDB, the user locked and its grant kept,
    the database with some tables but no comment (DROP DATABASE loses it first); PostgreSQL, the
    marked role without its database. (The fault matrix makes these for real, by SIGKILL.)"""
    if noun == "postgresql":
        with closing(pg_admin()) as pg:
            pg.cursor().execute(pgsql.SQL("DROP DATABASE {} WITH (FORCE)").format(pgsql.Identifier(name)))
        return
    with closing(my_admin()) as my:
        cur = my.cursor()
        cur.execute("ALTER USER %s@'%%' IDENTIFIED BY PASSWORD %s ACCOUNT LOCK", [name, service.DROPPING])
        cur.execute(f"ALTER DATABASE `{name}` COMMENT ''")


@pytest.mark.parametrize("noun", NOUNS)
def test_a_delete_the_server_cut_short_is_finished_by_running_it_again(cluster, noun):
    empty = catalogues()
    ok(ceo(cluster, "regular1", noun, "create", "--json"))
    conn = login(noun, info_file(noun, "regular1"))
    use_it(noun, conn)
    conn.close()
    half_dropped(noun, "regular1")
    left = catalogues()
    for verb in ("create", "pwreset"):  # neither may take it for a database to use
        line = one_line_error(ceo(cluster, "regular1", noun, verb), 2)
        assert "a delete that did not finish" in line and f"ceo {noun} delete regular1" in line, line
    assert catalogues() == left
    ok(ceo(cluster, "regular1", noun, "delete", "regular1", "--yes", "--json"))
    assert catalogues() == empty


@pytest.mark.parametrize("noun", NOUNS)
def test_a_delete_whose_drop_finished_unanswered_leaves_only_the_info_file_which_the_re_run_removes(cluster, noun):
    """The server killed after the drop's last statement but before it answered: the step failed,
    the runner put the info file back, and the database and user are gone. Running delete again
    removes the file (once: a third run finds nothing, as ever)."""
    empty = catalogues()
    ok(ceo(cluster, "regular1", noun, "create", "--json"))
    text = open(f"/users/regular1/{FILE[noun]}").read()
    purge("regular1")  # the database and the user, as the drop left them; then the file, put back
    with open(f"/users/regular1/{FILE[noun]}", "w") as f:
        f.write(text)
    os.chmod(f"/users/regular1/{FILE[noun]}", 0o600)
    number = os.lstat("/users/regular1").st_uid
    os.chown(f"/users/regular1/{FILE[noun]}", number, number)
    checked = ceo(cluster, "regular1", noun, "delete", "regular1", "--check")
    assert checked.returncode == 0 and f"would remove /users/regular1/{FILE[noun]}" in checked.stdout, checked
    assert os.path.exists(f"/users/regular1/{FILE[noun]}")
    ok(ceo(cluster, "regular1", noun, "delete", "regular1", "--yes", "--json"))
    assert not [f for f in os.listdir("/users/regular1") if f.startswith("ceo-")] and catalogues() == empty
    line = one_line_error(ceo(cluster, "regular1", noun, "delete", "regular1", "--yes"), 2)
    assert "regular1 has no" in line


def test_a_user_syscom_locked_beside_a_database_ceo_did_not_mark_is_not_a_leftover(cluster):
    """Only ceo's own mark (the verifier it gives a user it is dropping), its lock and grant, and
    no comment together say "ceo's, half dropped": a hand-made database whose user syscom locked
    is someone else's, never dropped."""
    hand_made("mysql", "regular1")
    with closing(my_admin()) as my:
        my.cursor().execute("CREATE USER regular1@'%' ACCOUNT LOCK")
        my.cursor().execute("GRANT ALL PRIVILEGES ON `regular1`.* TO regular1@'%'")
    before = catalogues()
    assert "not made by ceo" in one_line_error(ceo(cluster, "ctdalek", "mysql", "delete", "regular1", "--yes"), 2)
    assert catalogues() == before


def test_a_drop_that_fails_after_the_database_lost_its_comment_keeps_the_lock_for_the_re_run(cluster):
    """DROP DATABASE failing part way (a file the server cannot remove from the database's
    directory) rolls back the helper's steps; the user's lock and mark stay, since the database
    is no longer marked as ceo's, and once the file is gone the same delete finishes it."""
    empty = catalogues()
    ok(ceo(cluster, "regular1", "mysql", "create", "--json"))
    stray = cluster.state / "mariadb" / "data" / "regular1" / "stray.d"
    stray.mkdir()
    (stray / "x").write_text("a directory DROP DATABASE cannot remove")
    try:
        line = one_line_error(ceo(cluster, "ctdalek", "mysql", "delete", "regular1", "--yes"), 4)
        assert "DROP DATABASE" in line, line
        assert line.endswith("to remove what is left: ceo mysql delete regular1 --yes"), line
        with closing(my_admin()) as my:
            assert rows(my, "SELECT JSON_VALUE(Priv, '$.account_locked'), JSON_VALUE(Priv, '$.authentication_string') "
                            "FROM mysql.global_priv WHERE User = 'regular1'") == (("1", service.DROPPING),)
    finally:
        (stray / "x").unlink()
        stray.rmdir()
    ok(ceo(cluster, "ctdalek", "mysql", "delete", "regular1", "--yes", "--json"))
    assert catalogues() == empty


# --- check mode -------------------------------------------------------------------------------------

@pytest.mark.parametrize("noun", NOUNS)
def test_check_shows_the_statements_and_files_and_changes_nothing(cluster, noun):
    before = catalogues()
    doc = json.loads(ceo(cluster, "regular1", noun, "create", "--check", "--json").stdout)
    would = [s["message"] for s in doc["steps"] if s["status"] == "would"]
    if noun == "postgresql":
        assert would[0] == ('would run CREATE ROLE "regular1" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE '
                            "NOREPLICATION NOBYPASSRLS PASSWORD '***'")
        assert 'would run CREATE DATABASE "regular1" OWNER "regular1"' in would
        assert 'would run REVOKE ALL ON DATABASE "regular1" FROM PUBLIC' in would
    else:
        assert "would run CREATE USER 'regular1'@'%' IDENTIFIED BY PASSWORD '***'" in would
        assert "would run GRANT ALL PRIVILEGES ON `regular1`.* TO 'regular1'@'%'" in would
    assert would[-1] == f"would write /users/regular1/{FILE[noun]} (mode 0600, owner regular1)"
    assert doc["check"] is True and doc["result"]["password"] is None
    assert catalogues() == before

    ok(ceo(cluster, "regular1", noun, "create", "--json"))
    made = catalogues()
    for verb in (["pwreset"], ["delete", "regular1"]):
        doc = json.loads(ceo(cluster, "regular1", noun, *verb, "--check", "--json").stdout)
        would = [s["message"] for s in doc["steps"] if s["status"] == "would"]
        assert would and all("***" in m for m in would if "PASSWORD" in m), would
        assert catalogues() == made
    assert any(m.startswith("would run DROP") for m in would) and f"would remove /users/regular1/{FILE[noun]}" in would


# --- bad names and who may -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_refused_and_change_nothing(cluster, name):
    before = catalogues()
    for noun in NOUNS:
        for verb in ("create", "pwreset", "delete") if name == HOSTILE[0] else ("create",):
            line = one_line_error(ceo(cluster, "ctdalek", noun, verb, name, "--yes"), 2)
            assert "is not a user name" in line, line
    assert catalogues() == before


@pytest.mark.parametrize("noun", NOUNS)
def test_the_helper_refuses_hostile_names_itself(cluster, connect, noun):
    """The steps are requests any client can send: the helper validates on its own."""
    before = catalogues()
    session = rawhelper.Raw(connect("coffee", "ctdalek"))
    session.hello()
    for i, (name, verb) in enumerate((n, v) for n in HOSTILE for v in ("make", "password", "drop", "state")):
        _, reply = session.request(i, noun, verb, {"name": name})
        assert reply["error"]["name"] == "BadInput" and reply["error"]["exit"] == 2, reply
        assert "is not a user name" in reply["error"]["message"]
    assert session.finish()[1] == 0
    assert catalogues() == before


def test_sql_names_are_checked_and_quoted_by_the_service_too():
    """The service layer checks a name again before quoting it (pure logic)."""
    from ceo.errors import BadInput
    for name in HOSTILE + ["", "a b", "a\nb", "1abc"]:
        with pytest.raises(BadInput):
            service.checked_name(name)
        with pytest.raises(BadInput):
            service.creation(None, "mariadb", name, "x" * 16)
    assert service._my_id("a-b") == "`a-b`" and service._my_grant_db("a-b") == "`a-b`"


WHO = [("regular1", "regular2", 3),  # another member
       ("ofstaff", "regular1", 3),  # office
       ("regular1", "club1", 3),  # not in the club's group
       ("clubrep1", "regular2", 3)]  # a club's member, for another member of the club


@pytest.mark.parametrize("noun", NOUNS)
def test_who_may_not(cluster, noun):
    ok(ceo(cluster, "regular2", noun, "create", "--json"))
    before = catalogues()
    start = audit_size(cluster)
    for i, (caller, name, code) in enumerate(WHO):
        for verb in ("create", "pwreset", "delete") if i == 0 else ("create",):
            line = one_line_error(ceo(cluster, caller, noun, verb, name, "--yes"), code)
            assert "needs being" in line and caller in line, line
    assert catalogues() == before
    assert {r["outcome"] for r in audit_since(cluster, start)} <= {"refused"}


@pytest.mark.parametrize("noun", NOUNS)
def test_who_may(cluster, noun):
    """The account itself (above), a club's members for the club (above), and syscom for anyone."""
    made = ok(ceo(cluster, "ctdalek", noun, "create", "regular1", "--json"))
    assert info_file(noun, "regular1")["password"] == made["password"]
    ok(ceo(cluster, "ctdalek", noun, "create", "club1", "--json"))
    ok(ceo(cluster, "ctdalek", noun, "delete", "club1", "--yes", "--json"))
    assert exists(noun, "club1") == {"database": False, "user": False}


def test_a_personal_group_admits_no_one(cluster, ldap):
    """Whoever is in a member's personal group does not act for the member: only a club's group
    does (the `club-member` role alone would admit them)."""
    import ldap3
    group, ofstaff = f"cn=regular2,ou=Group,{BASE}", f"uid=ofstaff,ou=People,{BASE}"
    ldap._do(lambda c: c.modify(group, {"uniqueMember": [(ldap3.MODIFY_ADD, [ofstaff])]}))
    try:
        before = catalogues()
        for noun in NOUNS:
            one_line_error(ceo(cluster, "ofstaff", noun, "create", "regular2"), 3)
        assert catalogues() == before
    finally:
        ldap._do(lambda c: c.modify(group, {"uniqueMember": [(ldap3.MODIFY_DELETE, [ofstaff])]}))
    assert ofstaff not in (ldap.read(group) or {}).get("uniqueMember", [])


def test_only_member_and_club_accounts_get_databases(cluster):
    before = catalogues()
    for noun in NOUNS:
        assert "no member or club account 'nosuch'" in one_line_error(
            ceo(cluster, "ctdalek", noun, "create", "nosuch"), 2)
        assert "not a member or club account ceo manages" in one_line_error(
            ceo(cluster, "ctdalek", noun, "create", "dbsystem"), 3)
        one_line_error(ceo(cluster, "ctdalek", noun, "create", "root"), 2)
    assert catalogues() == before


def test_a_member_cannot_write_another_members_info_file(cluster, connect):
    client = connect("phosphoric-acid", "regular1")
    for noun in NOUNS:
        _, reply = rawhelper.request(client, noun, "write_info", {"name": "regular2", "password": "A" * 16})
        assert reply["error"]["name"] == "NotPermitted", reply
    assert not [f for f in os.listdir("/users/regular2") if f.startswith("ceo-")]


# --- failures: nothing half made ------------------------------------------------------------------------

@pytest.mark.parametrize("noun", NOUNS)
def test_a_missing_home_leaves_no_database_or_user(cluster, noun):
    before, start = catalogues(), audit_size(cluster)
    proc = ceo(cluster, "ctdalek", noun, "create", "dbnohome")
    line = one_line_error(proc, 2)
    assert "has no home directory /users/dbnohome" in line
    assert "undid:" in proc.stdout  # the database step ran, and was undone
    assert catalogues() == before
    records = [r for r in audit_since(cluster, start) if r["plugin"] == noun]
    assert [(r["verb"], r["outcome"]) for r in records] == [("make", "done"), ("write_info", "refused"),
                                                            ("make", "undone")]
    assert records[1]["args"]["password"] == "***"  # sent to the homes host, recorded as ***


@pytest.mark.parametrize("noun", NOUNS)
def test_an_unwritable_info_file_undoes_pwreset(cluster, noun):
    ok(ceo(cluster, "regular1", noun, "create", "--json"))
    info = info_file(noun, "regular1")
    os.unlink(f"/users/regular1/{FILE[noun]}")  # the member made it a directory
    os.mkdir(f"/users/regular1/{FILE[noun]}")
    before = catalogues()
    proc = ceo(cluster, "regular1", noun, "pwreset")
    assert "is a directory" in one_line_error(proc, 2) and "undid:" in proc.stdout
    assert catalogues() == before  # the old password is back
    login(noun, info).close()


def test_the_homes_host_unreachable_leaves_no_database_or_user(cluster):
    from sandbox import control
    before = catalogues()
    control.service("stop", "sshd@phosphoric-acid")
    try:
        for noun in NOUNS:
            one_line_error(ceo(cluster, "regular1", noun, "create"), 1)
    finally:
        control.service("start", "sshd@phosphoric-acid")
    assert catalogues() == before


# --- the password, shown once and nowhere else ------------------------------------------------------------

def test_the_password_is_in_no_process_argument_audit_record_log_or_error(cluster):
    seen, done = set(), threading.Event()

    def sample():  # every process's arguments and environment, while the commands run
        while not done.is_set():
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    for what in ("cmdline", "environ"):
                        try:
                            with open(f"/proc/{pid}/{what}", "rb") as f:
                                seen.add(f.read())
                        except OSError:
                            pass
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    passwords, outputs = [], []
    try:
        for noun in NOUNS:
            for verb in ("create", "pwreset"):
                proc = subprocess.Popen(["ceo", noun, verb, "--json"], env=cluster.env("regular1"),
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                out, err = proc.communicate(timeout=60)
                assert proc.returncode == 0, err
                passwords.append(json.loads(out)["result"]["password"])
            failed = ceo(cluster, "regular1", noun, "create")  # exists: an error
            outputs += [failed.stdout, failed.stderr]
    finally:
        done.set()
        sampler.join()
    assert any(b"ceo-helper" in s for s in seen)  # the sampling saw the commands and their helpers
    assert all(any(b"ceo\x00" + noun.encode() + b"\x00" in s for s in seen) for noun in NOUNS)
    logs = [cluster.state / "audit.jsonl", cluster.state / "postgresql" / "postgres.log",
            cluster.state / "mariadb" / "mariadb.log"]
    texts = [p.read_text(errors="replace") for p in logs] + outputs
    for password in passwords:
        assert not [s for s in seen if password.encode() in s]
        assert not [t for t in texts if password in t]


def test_the_password_is_not_in_syslog(cluster):
    """What the helpers (through sshd and sudo) send to syslog, audit records included: the
    sandbox's syslog file."""
    passwords, lines = [], []
    for verb in ("create", "pwreset", "delete"):
        at = cluster.syslog_offset()
        result = ok(ceo(cluster, "ctdalek", "postgresql", verb, "regular1", "--yes", "--json"))
        if result.get("password"):
            passwords.append(result["password"])
        lines += cluster.syslog_since(at)
    audited = [line for line in lines if '"plugin": "postgresql"' in line]
    assert {'"verb": "make"', '"verb": "write_info"', '"verb": "password"', '"verb": "drop"'} <= {
        v for line in audited for v in ('"verb": "make"', '"verb": "write_info"', '"verb": "password"',
                                        '"verb": "drop"') if v in line}, lines
    assert len(passwords) == 2
    for password in passwords:
        assert not [line for line in lines if password in line]


# --- list -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("noun", NOUNS)
def test_list_shows_syscom_the_databases_ceo_made(cluster, noun):
    ok(ceo(cluster, "regular1", noun, "create", "--json"))
    ok(ceo(cluster, "regular2", noun, "create", "club1", "--json"))
    hand_made(noun, "regular2")  # a database ceo did not make is not listed
    listed = {r["database"]: r for r in ok(ceo(cluster, "ctdalek", noun, "list", "--json"))}
    assert set(listed) >= {"regular1", "club1"} and "regular2" not in listed
    assert listed["club1"]["owner"] == "club1" and isinstance(listed["club1"]["bytes"], int)
    table = ceo(cluster, "ctdalek", noun, "list")
    assert table.returncode == 0 and "club1" in table.stdout and "regular1" in table.stdout
    for who in ("regular1", "ofstaff"):
        one_line_error(ceo(cluster, who, noun, "list"), 3)
