"""`ceo members expire` and `ceo members remind`: the term's maintenance, run every day by cron
or a systemd timer (see examples/), unattended.

Each is one request to the helper of the LDAP host: one paged search of the members, then its
writes pipelined in bounded batches, never a query per member. A run holds a lock on that host
(two runs of the same job never overlap: the second says so and exits 1) and leaves one line
with its counts in the host's syslog. Who may: syscom, root on the LDAP host (the `local`
connection) or a maintenance account (ceo/policy.py, `# --- maintenance`).
"""

from __future__ import annotations

import contextlib
import os

from ceo import policy
from ceo import terms as T
from ceo.errors import AlreadyExists, CeoError, ServiceUnavailable
from ceo.hostlog import log
from ceo.output import count, safe
from ceo.services import directory

from . import accounts as acct
from . import plugin
from .messages import REMIND, REMIND_SUBJECT, remind_summary

BATCH = 500  # writes in flight at once: bounded, so a run's memory does not grow with the directory
GRACE_DAYS = 28  # `[maintenance] expire_grace_days`: how long after a term starts lapsed accounts stay open
LOCKED_SINCE = "1"  # shadowExpire, in days since 1970: locked whatever the clock (sshd wants expire < today)
SMTP_GIVE_UP = 3  # failed sends in a row after which a remind run stops (the SMTP server is down)


class JobLock:
    """One run of a job at a time on this host: a non-blocking flock held for the whole run."""

    def __init__(self, ctx, job: str):
        self.job, self.host = job, ctx.host
        self.path = os.path.join(ctx.config.get("maintenance", "lock_dir", "/run/ceo"), f"ceo-members-{job}.lock")

    def __enter__(self):
        import fcntl
        import stat
        # The helper's own directory, not the world-writable /run/lock: there anyone could
        # leave a file of that name and stop the job for good (a review found it).
        directory = os.path.dirname(self.path)
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            pass
        st = os.lstat(directory)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
            raise CeoError(f"{directory} must be a directory of the helper's user that no one else can write")
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise CeoError(f"another `ceo members {self.job}` is running on {self.host} (it holds "
                           f"{self.path}): this run did nothing") from None
        return self

    def __exit__(self, *exc):
        os.close(self.fd)  # releases the lock


def dates(ctx):
    """(today, the current term, the day its lapsed accounts are locked)."""
    today = T.clock(ctx.config)
    now = T.current(today)
    grace = int(ctx.config.get("maintenance", "expire_grace_days", str(GRACE_DAYS)))
    import datetime  # here: every `ceo members ...` imports this module, and only the jobs need it
    return today, now, T.start(now) + datetime.timedelta(days=grace)


def _ahead(entry, now: str) -> bool:
    """Registered for a later term (renewed ahead): not lapsed."""
    n = T.ordinal(now)
    return any(T.ordinal(t) > n for t in entry.get("term", []) + entry.get("nonMemberTerm", []))


def _job(ctx, name):
    return JobLock(ctx, name) if not ctx.check else contextlib.nullcontext()


def _syslog(ctx, job, text):
    log(f"members.{job} by {ctx.caller} on {ctx.host}{' (check)' if ctx.check else ''}: {text}", "LOG_INFO")


# --- expire ---------------------------------------------------------------------------------

@plugin.verb("expire", "Lock members and club reps not registered this term, after its grace period "
             "(unattended: cron)",
             example=("ceo members expire --check",
                      "ceo --keytab /etc/csc/maintenance.keytab members expire --json   # from cron"),
             role="ldap", allow=("syscom",),
             permit=policy.maintenance_account, mutating=True, check=True, audit_rows=True,
             render=lambda c, r: _render_expired(c, r))
def expire(ctx):
    today, now, lock_date = dates(ctx)
    result = {"term": now, "today": today.isoformat(), "lock_date": lock_date.isoformat(),
              "locked": [], "failed": [], "protected": 0, "check": ctx.check}
    if today < lock_date:
        _syslog(ctx, "expire", f"term {now}, grace period until {lock_date}: 0 locked")
        return ctx.unchanged("expire", f"{now} began {T.start(now)}: its grace period lasts until {lock_date}, "
                                       "nobody is locked before", **result)
    with _job(ctx, "expire"):
        # Not registered now, nor ahead, not locked already (a lock of any kind is left as it is).
        flt = (f"(&(objectClass=member)(|(term=*)(nonMemberTerm=*))(!(term={now}))(!(nonMemberTerm={now}))"
               "(!(shadowExpire=*)))")
        lapsed = [e["uid"][0] for e in acct.search(ctx, flt, ["uid", "term", "nonMemberTerm"]) if not _ahead(e, now)]
        spared = policy.never_locked(ctx)
        due = sorted(u for u in lapsed if u not in spared)
        result["protected"] = len(lapsed) - len(due)
        if ctx.check:
            result["locked"] = due
            if due:
                ctx.would("expire", f"lock {count(len(due), 'account')} not registered in {now}")
        else:
            result["locked"], result["failed"] = _lock(ctx, due)
            if result["locked"]:
                ctx.emit({"step": "expire", "status": "done",
                          "message": f"locked {count(len(result['locked']), 'account')} not registered in {now}"})
    _syslog(ctx, "expire", f"term {now}, {len(result['locked'])} {'to lock' if ctx.check else 'locked'}, "
                           f"{len(result['failed'])} failed, {result['protected']} protected left open")
    if not result["locked"] and not result["failed"]:
        return ctx.unchanged("expire", f"every account not registered in {now} is locked already", **result)
    if result["failed"]:
        result["exit"] = 4 if result["locked"] else 1
    return ctx.changed(**result)


def _lock(ctx, due):
    """Lock `due` in pipelined batches: shadowExpire and the lapsed reason in one modify, both
    added, so an account someone locked meanwhile (for any reason) makes LDAP refuse the row."""
    conn, locked, failed, broken = ctx.ldap(pipelined=True), [], [], None
    for i in range(0, len(due), BATCH):
        sent = []
        for uid in due[i:i + BATCH]:
            change = directory.changes(add={"shadowExpire": [LOCKED_SINCE], "lockReason": [policy.LAPSED]})
            try:
                sent.append((uid, conn.modify(acct.dn(ctx, uid), change) if not broken else broken))
            except CeoError as exc:
                broken = exc.message
                sent.append((uid, broken))
        for uid, msgid in sent:
            if isinstance(msgid, str):
                why = msgid
            else:
                try:
                    reply = conn.response(msgid)
                    why = None if reply["result"] == directory.SUCCESS else f"LDAP: {reply.get('description')}"
                except ServiceUnavailable as exc:
                    why = broken = f"{exc.message}; run it again"
            args = {"uid": uid, "lock": policy.LAPSED}
            if why is None:
                locked.append(uid)
                ctx.audit(args, "done")
            else:
                failed.append({"uid": uid, "message": why})
                ctx.audit(args, "failed", why)
    return locked, failed


def _render_expired(console, r):
    for uid in r.get("locked", []):
        console.print(f"{'would lock' if r.get('check') else 'locked'} {safe(uid)}")
    for f in r.get("failed", []):
        console.print(f"FAILED {safe(f['uid'])}: {safe(f['message'])}")
    console.print(f"{r['term']}: {len(r.get('locked', []))} locked, {len(r.get('failed', []))} failed, "
                  f"{r.get('protected', 0)} protected accounts left open (locking from {r['lock_date']})")


# --- remind ---------------------------------------------------------------------------------

def reminders_dn(ctx, term: str | None = None) -> str:
    """Where `remind` records whom it reminded: one entry per member per term, added before the
    email goes (so a run that dies mid-way never sends anyone a second one), readable by syscom
    with ldapsearch: uid=UID,ou=TERM,ou=Reminders,BASE."""
    base = f"ou=Reminders,{ctx.config.get('ldap', 'base')}"
    return f"ou={term},{base}" if term else base


@plugin.verb("remind", "Remind last term's members who have not renewed, once per term; a summary to "
             "syscom-alerts (cron)",
             example="ceo members remind --check",
             role="ldap", allow=("syscom",),
             permit=policy.maintenance_account, mutating=True, check=True, audit_rows=True,
             render=lambda c, r: _render_reminded(c, r))
def remind(ctx):
    today, now, lock_date = dates(ctx)
    prev, domain = T.add(now, -1), ctx.config.get("ceo", "domain")
    letter = _letter(ctx, now, prev, lock_date)
    result = {"term": now, "reminded": [], "failed": [], "earlier": 0, "unconfirmed": [], "check": ctx.check}
    with _job(ctx, "remind"):
        # Not an account locked for another reason than a lapsed membership (syscom's to lift).
        lapsed = {e["uid"][0]: acct.first(e, "cn") or e["uid"][0]
                  for e in acct.search(ctx, f"(&(objectClass=member)(term={prev})(!(term={now})))",
                                       ["uid", "cn", "term", "shadowExpire", "lockReason"])
                  if not _ahead(e, now) and (not e.get("shadowExpire") or policy.renewal_unlocks(e))}
        record = reminders_dn(ctx, now)
        done = {e["uid"][0]: acct.first(e, "description") or ""
                for e in acct.search(ctx, "(objectClass=account)", ["uid", "description"], base=record, scope="LEVEL")}
        due = sorted(set(lapsed) - set(done))
        result["earlier"] = len(set(lapsed) & set(done))
        # Recorded as being sent by a run that died before it could say they went: maybe sent,
        # maybe not. Never sent again; reported once to syscom-alerts.
        result["unconfirmed"] = sorted(u for u, d in done.items() if d.startswith(SENDING))
        if ctx.check:
            result["reminded"] = due
            if due:
                ctx.would("remind", f"email {count(len(due), 'member')} of {prev}")
        else:
            if due:
                _record_place(ctx, now)
                _send_all(ctx, due, lapsed, record, letter, result)
            if result["reminded"] or result["failed"] or result["unconfirmed"]:
                if _summary(ctx, now, result, domain):
                    _mark(ctx, [f"uid={u},{record}" for u in result["unconfirmed"]],
                          f"unconfirmed: the run that sent it died first (reported {_stamp()} by {ctx.caller})")
    _syslog(ctx, "remind", f"term {now}, {len(result['reminded'])} {'to remind' if ctx.check else 'reminded'}, "
                           f"{len(result['failed'])} failed, {result['earlier']} reminded earlier, "
                           f"{len(result['unconfirmed'])} unconfirmed")
    if not result["reminded"] and not result["failed"]:
        return ctx.unchanged("remind", f"every member of {prev} not registered in {now} has been reminded", **result)
    if result["failed"]:
        result["exit"] = 4 if result["reminded"] else 1
    return ctx.changed(**result)


SENDING = "sending"  # a record's description while its email is on the way
REMIND_BATCH = 50  # members recorded, then emailed, at a time: what a run that dies can leave unconfirmed


def _stamp() -> str:
    import datetime
    return f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M:%S} UTC"


def _letter(ctx, now, prev, lock_date):
    """(subject, body, fields): format strings from the config, checked before anything is sent."""
    subject = ctx.config.get("maintenance", "remind_subject", REMIND_SUBJECT)
    body = ctx.config.get("maintenance", "remind_template", REMIND)
    # In ceo.ini a value continues on indented lines, which cannot be empty: `.` stands for one.
    body = "\n".join("" if line.strip() == "." else line for line in body.splitlines()) + "\n"
    fields = {"cn": "x", "uid": "x", "term": now, "previous": prev, "domain": ctx.config.get("ceo", "domain"),
              "lock_date": lock_date.isoformat()}
    try:
        subject.format(**fields), body.format(**fields)
    except (KeyError, IndexError, ValueError) as exc:
        raise CeoError(f"[maintenance] remind_template or remind_subject in the config is not a valid template "
                       f"({type(exc).__name__}: {exc}); fields: {', '.join('{' + k + '}' for k in fields)}") from None
    return subject, body, fields


def _record_place(ctx, term):
    conn = ctx.ldap()
    for dn, ou in ((reminders_dn(ctx), "Reminders"), (reminders_dn(ctx, term), term)):
        if not acct.search(ctx, "(objectClass=*)", ["ou"], base=dn, scope="BASE"):
            try:
                directory.add(conn, dn, f"adding {dn}", ["top", "organizationalUnit"], {"ou": ou})
            except AlreadyExists:
                pass


def _mark(ctx, dns, description):
    """Replace the description of many records, pipelined."""
    conn = ctx.ldap(pipelined=True)
    sent = [conn.modify(dn, directory.changes(replace={"description": [description]})) for dn in dns]
    for msgid in sent:
        conn.response(msgid)


def _send_all(ctx, due, names, record, letter, result):
    """A batch at a time: record it (pipelined adds, each saying it is being sent; a record
    already there means reminded), email each recorded member, then mark the batch sent. A
    send that fails removes its record, so the next run tries again; after SMTP_GIVE_UP
    failures in a row the run stops. A run that dies leaves at most one batch `sending`."""
    from ceo.services import mail
    subject, body, fields = letter
    sender = ("Computer Science Club", ctx.config.get("maintenance", "remind_from", f"exec@{fields['domain']}"))
    conn, sync, in_a_row = ctx.ldap(pipelined=True), ctx.ldap(), 0
    for i in range(0, len(due), REMIND_BATCH):
        claim = f"{SENDING} since {_stamp()} by {ctx.caller}"
        batch = [(uid, f"uid={uid},{record}") for uid in due[i:i + REMIND_BATCH]]
        sent = [(uid, dn, conn.add(dn, ["top", "account"], {"uid": uid, "description": claim})) for uid, dn in batch]
        claimed, went = [], []
        for uid, dn, msgid in sent:
            code = conn.response(msgid)["result"]
            if code == directory.SUCCESS:
                claimed.append((uid, dn))
            elif code == directory.ALREADY_EXISTS:
                result["earlier"] += 1
            else:
                result["failed"].append({"uid": uid, "message": "could not record the reminder in LDAP"})
        for n, (uid, dn) in enumerate(claimed):
            if in_a_row >= SMTP_GIVE_UP:  # the rest were not tried: unrecorded, for the next run
                for rest, rest_dn in claimed[n:]:
                    directory.delete(sync, rest_dn, f"removing {rest_dn}", gone_ok=True)
                    result["failed"].append({"uid": rest, "message": "not tried: SMTP kept failing"})
                break
            person = {**fields, "uid": uid, "cn": names[uid]}
            to = mail.address(ctx.config, uid)
            try:
                mail.send(ctx, to=(names[uid], to), sender=sender, subject=subject.format(**person),
                          body=body.format(**person), X_Ceo_Job="members-remind")
            except CeoError as exc:
                in_a_row += 1
                directory.delete(sync, dn, f"removing {dn}", gone_ok=True)
                result["failed"].append({"uid": uid, "message": exc.message})
                ctx.audit({"uid": uid, "term": fields["term"]}, "failed", exc.message)
                continue
            in_a_row = 0
            went.append(dn)
            result["reminded"].append(uid)
            ctx.audit({"uid": uid, "term": fields["term"]}, "done")
        _mark(ctx, went, f"reminded {_stamp()} by {ctx.caller}")
        if in_a_row >= SMTP_GIVE_UP:
            return
        ctx.progress(f"reminded {len(result['reminded'])} of {len(due)}")


def _summary(ctx, term, result, domain):
    from ceo.services import mail
    to = ctx.config.get("maintenance", "alerts_to", f"syscom-alerts@{domain}")
    subject = f"ceo members remind: {len(result['reminded'])} reminded for {term}" + \
        (f", {len(result['failed'])} FAILED" if result["failed"] else "")
    body = remind_summary(term, ctx.host, result["reminded"], [(f["uid"], f["message"]) for f in result["failed"]],
                          result["earlier"], result["unconfirmed"])
    try:
        mail.send(ctx, to=("Systems Committee alerts", to), sender=("ceo", f"ceo@{domain}"), subject=subject,
                  body=body, X_Ceo_Job="members-remind")
    except CeoError as exc:  # the reminders went; the summary is reported, not a reason to fail them
        ctx.emit({"step": "summary", "status": "warning", "message": f"summary to {to}: {exc.message}"})
        return False
    ctx.emit({"step": "summary", "status": "done", "message": f"summary sent to {to}"})
    return True


def _render_reminded(console, r):
    for uid in r.get("reminded", []):
        console.print(f"{'would remind' if r.get('check') else 'reminded'} {safe(uid)}")
    for f in r.get("failed", []):
        console.print(f"FAILED {safe(f['uid'])}: {safe(f['message'])}")
    for uid in r.get("unconfirmed", []):
        console.print(f"unconfirmed {safe(uid)} (a run died while emailing it: maybe sent, not sent again)")
    console.print(f"{r['term']}: {len(r.get('reminded', []))} {'to remind' if r.get('check') else 'reminded'}, "
                  f"{len(r.get('failed', []))} failed, {r.get('earlier', 0)} reminded in earlier runs")
