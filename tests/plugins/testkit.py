"""Verbs that exist only to test the framework (installed through the sandbox's site dir)."""

import os
import shutil

from ceo.errors import ServiceUnavailable
from ceo.plugin import Flag, GroupName, Int, Plugin, Str

plugin = Plugin("testkit", "Test verbs for the framework's own tests")
STAFF = ("office", "syscom")


@plugin.verb("whoami", "Who the helper thinks you are", role="any", allow=("any",))
def whoami(ctx):
    return {"caller": ctx.caller, "host": ctx.host, "roles": ctx.roles, "groups": sorted(ctx.groups)}


@plugin.verb("staffonly", "A change only office staff and syscom may make", role="ldap", allow=STAFF,
             mutating=True, check=True, params=[Str("note", "anything", positional=False)])
def staffonly(ctx, note):
    ctx.step("noop", lambda: None, describe=f"did nothing ({note})", would=f"do nothing ({note})")
    return {"done": True}


@plugin.verb("clubonly", "Something only the club's members may do", role="ldap", allow=("club-member",),
             params=[GroupName("club", positional=True)])
def clubonly(ctx, club):
    return {"club": club}


@plugin.verb("membersonly", "Something only current members may do", role="ldap", allow=("member",))
def membersonly(ctx):
    return {"member": ctx.caller}


@plugin.verb("secret", "A change with a secret parameter", role="ldap", allow=STAFF, mutating=True,
             params=[Str("password", "never logged", secret=True)])
def secret(ctx, password):
    return {"length": len(password)}


@plugin.verb("confirmed", "A change that asks first", role="ldap", allow=STAFF, mutating=True,
             confirm="Really do nothing to {name}?", params=[GroupName("name", positional=True)])
def confirmed(ctx, name):
    return {"name": name}


def _dn(ctx, name):
    return f"cn={name},ou=Group,{ctx.config.get('ldap', 'base')}"


def _home(ctx, name):
    return os.path.join(ctx.config.get("homes", "base"), name)


def _add_entry(ctx, name, fail=False):
    def do():
        if fail:
            raise ServiceUnavailable("injected failure while adding the entry")
        if not ctx.ldap().add(_dn(ctx, name), ["group"], {"cn": name}):
            raise ServiceUnavailable(f"LDAP add failed: {ctx.ldap().result['description']}")
    ctx.step("ldap-entry", do, lambda: _delete(ctx, _dn(ctx, name)), describe=f"added LDAP entry cn={name}",
             would=f"add LDAP entry cn={name}")


def _delete(ctx, dn):
    """An undo that fails says so (ldap3 reports a refused delete by returning False)."""
    if not ctx.ldap().delete(dn):
        raise ServiceUnavailable(f"LDAP delete of {dn} failed: {ctx.ldap().result['description']}")


def _make_dir(ctx, name, fail=False, pin=False):
    def do():
        if fail:
            raise ServiceUnavailable("injected failure while making the directory")
        os.mkdir(_home(ctx, name))
        if pin:  # a child entry nobody undoes: the LDAP entry's own undo will then fail
            if not ctx.ldap().add(f"cn=pin,{_dn(ctx, name)}", ["group"], {"cn": "pin"}):
                raise ServiceUnavailable(f"LDAP add failed: {ctx.ldap().result['description']}")
    ctx.step("directory", do, lambda: shutil.rmtree(_home(ctx, name)), describe=f"made directory {_home(ctx, name)}",
             would=f"make directory {_home(ctx, name)}")


@plugin.verb("mkentry", "Step: add an LDAP entry", role="ldap", allow=STAFF, mutating=True, hidden=True,
             params=[GroupName("name", positional=True), Flag("fail")])
def mkentry(ctx, name, fail):
    _add_entry(ctx, name, fail)
    return {}


@plugin.verb("rmentry", "Undo: remove the LDAP entry", role="ldap", allow=STAFF, mutating=True, hidden=True,
             params=[GroupName("name", positional=True), Flag("fail")])
def rmentry(ctx, name, fail):
    ctx.step("ldap-entry", lambda: _delete(ctx, _dn(ctx, name)), describe=f"removed LDAP entry cn={name}",
             would=f"remove LDAP entry cn={name}")
    return {}


@plugin.verb("mkdir", "Step: make a directory", role="homes", allow=STAFF, mutating=True, hidden=True,
             params=[GroupName("name", positional=True), Flag("fail"), Flag("pin")])
def mkdir(ctx, name, fail, pin):
    _make_dir(ctx, name, fail, pin)
    return {}


@plugin.verb("rmdir", "Undo: remove the directory", role="homes", allow=STAFF, mutating=True, hidden=True,
             params=[GroupName("name", positional=True), Flag("fail")])
def rmdir(ctx, name, fail):
    ctx.step("directory", lambda: shutil.rmtree(_home(ctx, name)), describe=f"removed {_home(ctx, name)}",
             would=f"remove {_home(ctx, name)}")
    return {}


@plugin.verb("explode", "Step: fail on the databases host", role="databases", allow=STAFF, mutating=True,
             hidden=True, params=[Flag("fail")])
def explode(ctx, fail):
    if fail:
        raise ServiceUnavailable("injected failure on the databases host")
    return {}


@plugin.composite("multistep", "Three steps on two hosts; --fail-at N makes step N fail",
                  params=[GroupName("name", positional=True), Int("fail_at", "the step that fails (0: none)",
                                                                    default=0, min=0, max=3),
                          Flag("warn", "add a best-effort step that fails"),
                          Flag("pin", "the directory step also adds a child entry, so undoing the LDAP entry fails")])
def multistep(run, name, fail_at, warn, pin):
    run.prepare(["ldap", "homes", "databases"])
    run.step("testkit.mkentry", {"name": name, "fail": fail_at == 1}, role="ldap", describe=f"LDAP entry cn={name}")
    run.step("testkit.mkdir", {"name": name, "fail": fail_at == 2, "pin": pin}, role="homes",
             describe=f"directory for {name}")
    run.step("testkit.explode", {"fail": fail_at == 3}, role="databases", describe="the databases step")
    if warn:
        run.step("testkit.explode", {"fail": True}, role="databases", describe="a best-effort step",
                 best_effort=True)
    return {"name": name}


@plugin.verb("localsteps", "Three steps on one host; --fail-at N makes step N fail", role="ldap", allow=STAFF,
             mutating=True, check=True, params=[GroupName("name", positional=True),
                                                Int("fail_at", "the step that fails (0: none)", default=0, min=0, max=3)])
def localsteps(ctx, name, fail_at):
    _add_entry(ctx, name, fail_at == 1)
    _make_dir(ctx, name, fail_at == 2)
    ctx.step("third", lambda: _fail(fail_at == 3), describe="the third step", would="do the third step")
    return {"name": name}


def _fail(fail):
    if fail:
        raise ServiceUnavailable("injected failure in the third step")



@plugin.verb("crash", "A bug: an unexpected exception in the helper", role="ldap", allow=STAFF)
def crash(ctx):
    return {"never": {}["testkit-crash-detail-7f3a"]}  # KeyError, whose text must stay in the log


# --- for tests/test_helper_bounds.py ----------------------------------------------------------

@plugin.verb("keepme", "A step with a no-op undo, open to anyone: something a session can keep",
             role="ldap", allow=("any",), hidden=True, params=[Str("blob", "anything", multiple=True)])
def keepme(ctx, blob):
    ctx.step("noop", lambda: None, lambda: None, describe="did nothing", would="do nothing")
    return {}


@plugin.verb("secretpin", "A change with a secret parameter that has a pattern", role="ldap", allow=STAFF,
             mutating=True, hidden=True, params=[Str("pin", "four digits, never shown", secret=True,
                                                     pattern=r"[0-9]{4}", describe="four digits")])
def secretpin(ctx, pin):
    return {}


@plugin.verb("leak", "A bug: a step (or its undo) raises a non-ceo exception carrying a secret", role="ldap",
             allow=STAFF, mutating=True, hidden=True,
             params=[Str("token", "never shown", secret=True), Flag("in_undo"), Flag("best_effort")])
def leak(ctx, token, in_undo, best_effort):
    def boom():
        raise RuntimeError(f"backend refused token {token}")
    if in_undo:  # the first step's undo leaks; the second step fails, so the first is undone
        ctx.step("first", lambda: None, boom, describe="the first step")
        ctx.step("second", lambda: _fail(True), describe="the second step")
    ctx.step("leaky", boom, best_effort=best_effort, describe="the leaky step")
    return {}


@plugin.verb("sqlfail", "A failing SQL statement that holds a secret (as a careless verb might)", role="databases",
             allow=STAFF, mutating=True, params=[Str("engine", choices=("postgresql", "mariadb"), positional=True),
                                                 Str("password", "never shown", secret=True)])
def sqlfail(ctx, engine, password):
    from ceo.services import sql
    if engine == "postgresql":  # a syntax error: PostgreSQL's own message quotes the statement
        sql.run(ctx, engine, f"ALTER ROLE nobody_ceo PASSWORD '{password}' NONSENSE")
    else:
        sql.run(ctx, engine, f"ALTER USER 'nobody_ceo'@'%' IDENTIFIED BY '{password}' NONSENSE")
    return {}


@plugin.composite("twohosts", "Ask the ldap host and the databases host; both sessions open at once (its roles)",
                  roles=("ldap", "databases"))
def twohosts(run):
    return {role: run.call("doctor.ping", {}, role=role)["host"] for role in ("ldap", "databases")}


@plugin.composite("onehost", "Ask the ldap host as twohosts does: its one-host twin (the speed bench's baseline)",
                  roles=("ldap",))
def onehost(run):
    return {"ldap": run.call("doctor.ping", {}, role="ldap")["host"]}
