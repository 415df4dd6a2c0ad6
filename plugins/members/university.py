"""The university directory in the members verbs: `lookup`, `updateprograms`, and the step
`members add` asks for a new member's name and program.

The directory is anonymous, so the client could read it itself; it does not, because
services are reached by the helpers (ceo/services/university.py): the helper's ceo.ini says
where the directory is, the lookup is authorized like the rest of `add` (office, syscom),
and one code path serves the CLI and the terminal UI.
"""

from __future__ import annotations

from ceo import policy
from ceo.errors import BadInput, CeoError, NotFound, ServiceUnavailable
from ceo.output import count, safe
from ceo.plugin import Uid, unsafe_text
from ceo.services import directory, university

from . import accounts as acct
from . import plugin

BATCH = 500  # program writes in flight at once
MAX_PROGRAM = 256  # as `members add --program` takes it


@plugin.verb("university", "Step: what the university directory holds about a user name", role="ldap",
             allow=policy.STAFF, hidden=True, params=[Uid("uid", positional=True)])
def university_step(ctx, uid):
    if not university.configured(ctx.config):
        return {"configured": False, "person": None}
    return {"configured": True, "person": university.person(ctx, uid)}


@plugin.composite("lookup", "Show what the university directory holds about a user name (office, syscom)",
                  example="ceo members lookup alice",
                  allow=policy.STAFF, params=[Uid("uid", "the user name", positional=True)])
def lookup(run, uid):
    found = run.call("members.university", {"uid": uid}, role="ldap")
    if not found["configured"]:
        raise CeoError("no university directory is configured ([directory] uri and base in ceo.ini)")
    if found["person"] is None:
        raise NotFound(f"{uid} is not in the university directory")
    return found["person"]


def fill(run, uid, cn, given_name, sn, program):
    """`members add`: the names and program not given, from the university directory when
    there is one. Given values win. The directory down: a warning if --cn was given (the
    rest stays empty, as without a directory), else the add stops before writing anything."""
    if cn and given_name and sn and program:
        return cn, given_name, sn, program
    try:
        found = run.call("members.university", {"uid": uid}, role="ldap")
    except ServiceUnavailable as err:
        if not cn:
            raise CeoError(f"{err.message}: give --cn (and --program) to add {uid} without it") from None
        run.output.event(run.inventory.host_for("ldap").name,
                         {"step": "university", "status": "warning", "message": f"{err.message}: "
                          "name parts and program not filled in"})
        return cn, given_name, sn, program
    person = found.get("person") or {}
    pick = lambda given, key: given or _clean(person.get(key))  # noqa: E731
    cn, given_name, sn, program = pick(cn, "cn"), pick(given_name, "given_name"), pick(sn, "sn"), pick(program, "program")
    if not cn:
        raise BadInput(f"cn: give --cn: {uid} is not in the university directory" if found.get("configured")
                       else "cn: give --cn (the full name; no university directory is configured)")
    return cn, given_name, sn, program


def _clean(value):
    """A value from outside (the university's data), as ceo would take it from a user."""
    if not isinstance(value, str) or not value.strip() or unsafe_text(value) or len(value) > MAX_PROGRAM:
        return None
    return value


@plugin.verb("updateprograms", "Bring every member's program in line with the university directory (syscom)",
             example="ceo members updateprograms --check",
             role="ldap", allow=("syscom",), mutating=True, check=True, audit_rows=True,
             render=lambda c, r: _render(c, r))
def updateprograms(ctx):
    """One paged search on each side, then one replace per member whose program differs,
    pipelined. Members the directory does not know, and placeholder programs
    (`[directory] skip_programs`, default: orphaned expired), are left as they are."""
    uw = university.programs(ctx)
    skip = university.skipped_programs(ctx.config)
    changes, unknown = [], 0
    for e in acct.search(ctx, "(objectClass=member)", ["uid", "program"]):
        uid, old = e["uid"][0], acct.first(e, "program")
        new = _clean(uw.get(uid))
        if uid not in uw:
            unknown += 1
        elif new is not None and new not in skip and new != old:
            changes.append({"uid": uid, "old": old, "new": new})
    changes.sort(key=lambda c: c["uid"])
    result = {"changes": changes, "failed": [], "not_in_directory": unknown, "check": ctx.check}
    if not changes:
        return ctx.unchanged("programs", "every member's program matches the university directory", **result)
    if ctx.check:
        for c in changes:
            ctx.would("program", f"change the program of {_line(c)}")
        return result
    done, result["failed"] = _write(ctx, changes)
    result["changes"] = done
    if result["failed"]:
        result["exit"] = 4 if done else 1
    return ctx.changed(**result)


def _write(ctx, changes):
    conn, done, failed, broken = ctx.ldap(pipelined=True), [], [], None
    for i in range(0, len(changes), BATCH):
        sent = []
        for c in changes[i:i + BATCH]:
            try:
                msgid = broken or conn.modify(acct.dn(ctx, c["uid"]), directory.changes(replace={"program": [c["new"]]}))
            except CeoError as exc:
                msgid = broken = exc.message
            sent.append((c, msgid))
        for c, msgid in sent:
            why = msgid if isinstance(msgid, str) else None
            if why is None:
                try:
                    reply = conn.response(msgid)
                    why = None if reply["result"] == directory.SUCCESS else f"LDAP: {reply.get('description')}"
                except ServiceUnavailable as exc:
                    why = broken = f"{exc.message}; run it again"
            args = {"uid": c["uid"], "program": c["new"], "was": c["old"]}
            if why is None:
                done.append(c)
                ctx.audit(args, "done")
                ctx.emit({"step": "program", "status": "done", "message": _line(c)})
            else:
                failed.append({**c, "message": why})
                ctx.audit(args, "failed", why)
                ctx.emit({"step": "program", "status": "failed", "message": f"{_line(c)}: {why}"})
    return done, failed


def _line(c) -> str:
    return f"{c['uid']}: {c['old'] or '(none)'} -> {c['new']}"


def _render(console, r):
    verb = "would change" if r.get("check") else "changed"
    console.print(f"{verb} {count(len(r.get('changes', [])), 'program')}, {len(r.get('failed', []))} failed; "
                  f"{count(r.get('not_in_directory', 0), 'member')} not in the university directory")
    for f in r.get("failed", []):
        console.print(f"FAILED {safe(f['uid'])}: {safe(f['message'])}")
