"""`ceo members expire` and `ceo members remind`, the unattended jobs: through the real command,
against the sandbox, with a clock this module sets (`[testing] today` in the sandbox's
/etc/csc/ceo.ini, read by ceo/terms.py in the client and in every helper; restored after).

The accounts are this module's own: four made by `ceo members add` (a lapsed member, a lapsed
club rep, a current member, a lapsed syscom member), and batches of LDAP-only lapsed members
for the runs that must last a while; all are removed at the end, with their reminder records.
Checks read LDAP as root, the SMTP sink's Maildir and sshd's verdict on a login.
"""

from __future__ import annotations

import datetime
import json
import mailbox
import os
import pwd
import signal
import subprocess
import time
import uuid
from pathlib import Path

import ldap3
import pytest
from rootldap import RootLDAP

from ceo import terms as T

BASE = "dc=csclub,dc=internal"
PEOPLE = f"ou=People,{BASE}"
CONFIG = Path("/etc/csc/ceo.ini")
REAL_TODAY = datetime.date.today()
NOW = T.of_date(REAL_TODAY)
PREV, NEXT = T.add(NOW, -1), T.add(NOW, 1)
BEFORE = T.start(NOW) + datetime.timedelta(days=3)  # in the grace period (28 days in the sandbox)
AFTER = T.start(NOW) + datetime.timedelta(days=40)  # past it, in the same term
SSH = ["ssh", "-F", "/dev/null", "-o", "GSSAPIAuthentication=yes", "-o", "BatchMode=yes",
       "-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=/etc/ssh/ssh_known_hosts", "-o", "LogLevel=ERROR"]
HELLO = json.dumps({"hello": "ceo", "version": "test", "protocol": [1, 1]}) + "\n"
REPO = Path(__file__).resolve().parent.parent


# --- helpers ---------------------------------------------------------------------------------

def ceo(cluster, user, *args, env=None, **kw):
    kw.setdefault("stdin", subprocess.DEVNULL)  # never a terminal, as under cron
    return subprocess.run(["ceo", *args], env=env or cluster.env(user), capture_output=True, text=True,
                          timeout=120, **kw)


def ok(proc) -> dict:
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    return json.loads(proc.stdout)["result"]


def root_ldap(cluster):
    return ldap3.Connection(ldap3.Server("ldapi://" + str(cluster.state / "ldap" / "ldapi").replace("/", "%2F")),
                            authentication=ldap3.SASL, sasl_mechanism=ldap3.EXTERNAL, sasl_credentials="",
                            auto_bind=True)


def set_clock(day: datetime.date | None):
    """ceo's date for every process from now on (None: the machine's)."""
    text = ORIGINAL_CONFIG if day is None else ORIGINAL_CONFIG + f"\n[testing]\ntoday = {day.isoformat()}\n"
    tmp = CONFIG.with_name(".ceo.ini.test")
    tmp.write_text(text)
    tmp.chmod(0o644)
    os.replace(tmp, CONFIG)


ORIGINAL_CONFIG = ""


@pytest.fixture(scope="module", autouse=True)
def clock(cluster):
    global ORIGINAL_CONFIG
    ORIGINAL_CONFIG = CONFIG.read_text()
    assert "\n[testing]" not in ORIGINAL_CONFIG
    yield set_clock
    CONFIG.write_text(ORIGINAL_CONFIG)


def sink(cluster) -> list:
    return list(mailbox.Maildir(cluster.state / "mail" / "sink", create=False))


def reminders_to(cluster, uids) -> dict:
    """uid -> how many reminders the sink holds for it."""
    wanted = {f"{u}@csclub.internal": u for u in uids}
    counts = dict.fromkeys(uids, 0)
    for m in sink(cluster):
        if m["X-Ceo-Job"] == "members-remind" and "syscom-alerts" not in (m["To"] or ""):
            addr = (m["To"] or "").split("<")[-1].rstrip(">").strip()
            if addr in wanted:
                counts[wanted[addr]] += 1
    return counts


def summaries(cluster, needle) -> list:
    return [m for m in sink(cluster) if "syscom-alerts@csclub.internal" in (m["To"] or "")
            and m["X-Ceo-Job"] == "members-remind" and needle in m.get_payload(decode=True).decode()]


def can_login(cluster, uid, ccache) -> bool:
    """sshd's verdict: a GSSAPI login to the LDAP host, answered by the helper (ForceCommand)."""
    env = {**cluster.env(None), "KRB5CCNAME": f"FILE:{ccache}"}
    proc = subprocess.run(SSH + [f"{uid}@{cluster.hosts['phosphoric-acid']}"], input=HELLO, env=env,
                          capture_output=True, text=True, timeout=30)
    if proc.returncode == 0 and '"ceo-helper"' in proc.stdout:
        return True
    assert "Permission denied" in proc.stderr, proc.stderr
    return False


def lock_of(uid, ldap) -> tuple:
    e = ldap.read(f"uid={uid},{PEOPLE}")
    return (e.get("shadowExpire"), e.get("lockReason"))


def bulk(cluster, n, number) -> list[str]:
    """n LDAP-only members of last term only (no principal or home: enough to be reminded)."""
    prefix = f"b{uuid.uuid4().hex[:5]}"
    conn = root_ldap(cluster)
    uids = [f"{prefix}{i:03d}" for i in range(n)]
    for i, uid in enumerate(uids):
        assert conn.add(f"uid={uid},{PEOPLE}", ["account", "posixAccount", "shadowAccount", "member"],
                        {"cn": f"Bulk {i}", "uid": uid, "uidNumber": number + i, "gidNumber": number + i,
                         "homeDirectory": f"/users/{uid}", "term": [PREV]}), conn.result
    conn.unbind()
    return uids


def drop(cluster, uids):
    conn = root_ldap(cluster)
    for uid in uids:
        conn.delete(f"uid={uid},{PEOPLE}")
        for term in (NOW, PREV):
            conn.delete(f"uid={uid},ou={term},ou=Reminders,{BASE}")
    conn.unbind()


def lock_holder(path: str) -> int | None:
    """The pid holding a flock on `path` (/proc/locks), if any."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    for line in Path("/proc/locks").read_text().splitlines():
        parts = line.split()
        if "FLOCK" in parts and parts[5].endswith(f":{st.st_ino}"):
            return int(parts[4])
    return None


def wait_for_holder(path, proc, timeout=60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = lock_holder(path)
        if pid:
            return pid
        assert proc.poll() is None, ("the run ended before it was caught holding its lock", proc.communicate())
        time.sleep(0.001)
    raise AssertionError(f"nobody took {path}")


def expected_lapsed(cluster) -> set[str]:
    """Independently: member entries not registered in NOW nor later, unlocked, not protected."""
    conn = root_ldap(cluster)
    conn.search(f"ou=Group,{BASE}", "(|(cn=syscom)(cn=office)(cn=exec))", attributes=["uniqueMember"])
    spared = {dn.split(",")[0][4:] for e in conn.response for dn in e["attributes"].get("uniqueMember", [])}
    conn.search(PEOPLE, "(objectClass=member)", attributes=["uid", "term", "nonMemberTerm", "shadowExpire"],
                paged_size=1000)
    out = set()
    for e in conn.response:
        a = e["attributes"]
        terms_ = list(a.get("term", [])) + list(a.get("nonMemberTerm", []))
        if terms_ and not a.get("shadowExpire") and all(T.ordinal(t) < T.ordinal(NOW) for t in terms_):
            out.add(a["uid"][0] if isinstance(a["uid"], list) else a["uid"])
    conn.unbind()
    return out - spared


# --- the module's accounts ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def people(cluster, tmp_path_factory):
    """lapsed (member of PREV), rep (club rep of PREV), current (NOW), sysop (syscom, PREV only);
    each with a password and a ticket for SSH logins."""
    tag = uuid.uuid4().hex[:6]
    made, spec = {}, {"lapsed": ["--term", PREV], "rep": ["--clubrep", "--term", PREV], "current": [],
                      "sysop": ["--term", PREV]}
    tickets = tmp_path_factory.mktemp("tickets")
    try:
        for role, extra in spec.items():
            uid = f"x{role[:3]}{tag}"
            proc = ceo(cluster, "ofstaff", "members", "add", uid, "--cn", f"Test {role}", "--no-welcome",
                       "--no-subscribe", *extra, "--json")
            assert proc.returncode == 0, proc.stderr
            made[role] = uid
            pw = f"{uid}-pw-{tag}"
            subprocess.run(["kadmin.local", "-q", f"cpw -pw {pw} {uid}"], check=True, capture_output=True)
            subprocess.run(["kadmin.local", "-q", f"modprinc -needchange {uid}"], check=True, capture_output=True)
            subprocess.run(["kinit", "-c", f"FILE:{tickets / uid}", uid], input=pw + "\n", text=True,
                           check=True, capture_output=True)
        conn = root_ldap(cluster)
        assert conn.modify(f"cn=syscom,ou=Group,{BASE}",
                           {"uniqueMember": [(ldap3.MODIFY_ADD, [f"uid={made['sysop']},{PEOPLE}"])]}), conn.result
        conn.unbind()
        yield {**made, "tickets": tickets}
    finally:
        for uid in made.values():
            proc = ceo(cluster, "ctdalek", "members", "delete", uid, "--yes")
            assert proc.returncode == 0, proc.stderr
        conn = root_ldap(cluster)
        for uid in made.values():
            for term in (NOW, PREV):
                conn.delete(f"uid={uid},ou={term},ou=Reminders,{BASE}")
        conn.unbind()


# --- remind (first: the expire tests below renew the lapsed accounts) ---------------------------

def test_remind_three_times_sends_each_lapsed_member_one_email_and_syscom_alerts_a_summary(cluster, people, clock):
    clock(BEFORE)
    mine = [people[r] for r in ("lapsed", "rep", "current", "sysop")]
    would = ok(ceo(cluster, "ctdalek", "members", "remind", "--check", "--json"))
    assert {people["lapsed"], people["sysop"]} <= set(would["reminded"])
    assert people["rep"] not in would["reminded"] and people["current"] not in would["reminded"]
    assert reminders_to(cluster, mine) == dict.fromkeys(mine, 0)  # --check sent nothing
    runs = [ok(ceo(cluster, "ctdalek", "members", "remind", "--json")) for _ in range(3)]
    assert {people["lapsed"], people["sysop"]} <= set(runs[0]["reminded"])
    assert runs[1]["reminded"] == runs[2]["reminded"] == []
    assert reminders_to(cluster, mine) == {people["lapsed"]: 1, people["sysop"]: 1, people["rep"]: 0,
                                           people["current"]: 0}
    letter = [m for m in sink(cluster) if people["lapsed"] in (m["To"] or "") and m["X-Ceo-Job"]][0]
    text = letter.get_payload(decode=True).decode()
    assert f"renewed for {NOW}" in text.replace("\n", " ") and "office" in text  # the config's template
    assert len(summaries(cluster, f"reminded {people['lapsed']}\n")) == 1
    record = RootLDAP(cluster).read(f"uid={people['lapsed']},ou={NOW},ou=Reminders,{BASE}")
    assert record and record["description"][0].startswith("reminded ")  # where syscom can see it


def test_remind_killed_halfway_and_run_again_sends_nobody_a_second_email(cluster, clock):
    clock(BEFORE)
    uids = bulk(cluster, 150, 41000)
    try:
        run = subprocess.Popen(["ceo", "members", "remind", "--json"], env=cluster.env("ctdalek"),
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        new = cluster.state / "mail" / "sink" / "new"
        seen = len(os.listdir(new))
        holder = wait_for_holder("/run/ceo/ceo-members-remind.lock", run)
        while len(os.listdir(new)) - seen < 60:  # past the first batch (of 50)
            assert run.poll() is None, "the run ended before it could be killed halfway"
            time.sleep(0.001)
        os.kill(holder, signal.SIGKILL)  # the job dies mid-run, as in a crash
        run.communicate(timeout=60)
        assert run.returncode != 0
        first = reminders_to(cluster, uids)
        assert 0 < sum(first.values()) < len(uids), "killed before or after the run, not halfway"
        again = ok(ceo(cluster, "ctdalek", "members", "remind", "--json"))
        after = reminders_to(cluster, uids)
        assert max(after.values()) == 1, {u: n for u, n in after.items() if n > 1}
        missing = {u for u, n in after.items() if n == 0}
        assert missing <= set(again["unconfirmed"])  # never resent; reported to syscom instead
        assert not set(again["reminded"]) & {u for u, n in first.items() if n}
        assert len(again["unconfirmed"]) <= 50  # at most the batch in flight
        if again["unconfirmed"]:
            assert summaries(cluster, f"UNCONFIRMED {again['unconfirmed'][0]}")
        assert ok(ceo(cluster, "ctdalek", "members", "remind", "--json"))["unconfirmed"] == []  # reported once
    finally:
        drop(cluster, uids)


def test_two_concurrent_runs_one_works_the_other_exits_1(cluster, clock):
    clock(BEFORE)
    uids = bulk(cluster, 60, 42000)
    try:
        first = subprocess.Popen(["ceo", "members", "remind", "--json"], env=cluster.env("ctdalek"),
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        holder = wait_for_holder("/run/ceo/ceo-members-remind.lock", first)
        os.kill(holder, signal.SIGSTOP)  # hold the first run inside its job, deterministically
        try:
            second = ceo(cluster, "ctdalek", "members", "remind")
        finally:
            os.kill(holder, signal.SIGCONT)
            # sudo stops itself when its child stops, and no one resumes it: it would be left
            # stopped (T) for good, its session with it.
            with open(f"/proc/{holder}/stat") as f:
                sudo = int(f.read().rsplit(")", 1)[1].split()[1])
            os.kill(sudo, signal.SIGCONT)
        out, err = first.communicate(timeout=120)
        assert first.returncode == 0, err
        assert set(uids) <= set(json.loads(out)["result"]["reminded"])
        assert second.returncode == 1 and second.stdout == ""
        assert second.stderr.startswith("ceo: another `ceo members remind` is running on phosphoric-acid"), second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
        assert reminders_to(cluster, uids) == dict.fromkeys(uids, 1)
    finally:
        drop(cluster, uids)


# --- expire ----------------------------------------------------------------------------------

def test_expire_locks_exactly_the_lapsed_after_the_grace_period_and_renewal_unlocks(cluster, people, clock):
    ldap, t = RootLDAP(cluster), people["tickets"]
    lapsed, rep, current, sysop = (people[r] for r in ("lapsed", "rep", "current", "sysop"))
    assert can_login(cluster, lapsed, t / lapsed) and can_login(cluster, rep, t / rep)

    clock(BEFORE)  # in the grace period: nobody
    before = ok(ceo(cluster, "ctdalek", "members", "expire", "--json"))
    assert before["locked"] == [] and before["lock_date"] == (T.start(NOW) + datetime.timedelta(days=28)).isoformat()
    assert lock_of(lapsed, ldap) == lock_of(rep, ldap) == (None, None)

    clock(AFTER)
    expected = expected_lapsed(cluster)
    assert {lapsed, rep} <= expected and not {current, sysop, "ctdalek", "expired1"} & expected
    would = ok(ceo(cluster, "ctdalek", "members", "expire", "--check", "--json"))
    assert set(would["locked"]) == expected and lock_of(lapsed, ldap) == (None, None)
    others = expected - {lapsed, rep}  # left by someone else: locked too, and put back after
    try:
        done = ok(ceo(cluster, "ctdalek", "members", "expire", "--json"))
        assert set(done["locked"]) == expected and done["failed"] == [] and done["protected"] >= 1
        for uid in expected:
            assert lock_of(uid, ldap) == (["1"], ["lapsed"]), uid
        assert lock_of(current, ldap) == lock_of(sysop, ldap) == (None, None)  # syscom stays open
        assert expected_lapsed(cluster) == set()
        assert not can_login(cluster, lapsed, t / lapsed) and not can_login(cluster, rep, t / rep)
        assert can_login(cluster, current, t / current) and can_login(cluster, sysop, t / sysop)
        again = ok(ceo(cluster, "ctdalek", "members", "expire", "--json"))
        assert again["locked"] == [] and again["state"] == "unchanged"  # locked accounts are left as they are
    finally:
        conn = root_ldap(cluster)
        for uid in others:
            conn.modify(f"uid={uid},{PEOPLE}", {"shadowExpire": [(ldap3.MODIFY_DELETE, [])],
                                                "lockReason": [(ldap3.MODIFY_DELETE, [])]})
        conn.unbind()

    assert ok(ceo(cluster, "ofstaff", "members", "renew", lapsed, "--json"))["unlocked"] is True
    assert ok(ceo(cluster, "ofstaff", "members", "renew", rep, "--clubrep", "--json"))["unlocked"] is True
    assert lock_of(lapsed, ldap) == lock_of(rep, ldap) == (None, None)
    assert can_login(cluster, lapsed, t / lapsed) and can_login(cluster, rep, t / rep)


def test_text_output_off_a_terminal_has_no_colour_and_no_prompt(cluster, clock):
    clock(AFTER)
    proc = ceo(cluster, "ctdalek", "members", "expire", "--check")
    assert proc.returncode == 0 and "\x1b" not in proc.stdout + proc.stderr
    assert f"{NOW}: " in proc.stdout and "(check mode: nothing was changed)" in proc.stdout


def test_only_syscom_or_a_maintenance_account_may_run_them(cluster, clock):
    clock(AFTER)
    for user in ("ofstaff", "regular1"):
        for job in ("expire", "remind"):
            proc = ceo(cluster, user, "members", job, "--check")
            assert proc.returncode == 3 and "needs syscom" in proc.stderr, (user, job, proc.stderr)


# --- unattended: a keytab, no ticket, no terminal; the local connection; syslog ---------------------

@pytest.fixture(scope="module")
def cron_keytab(cluster, tmp_path_factory):
    """ceo-cron (named in the sandbox's [maintenance] accounts): a principal in a keytab and a
    plain posixAccount, not a member."""
    kt = tmp_path_factory.mktemp("cron") / "ceo-cron.keytab"
    subprocess.run(["kadmin.local", "-q", "addprinc -randkey ceo-cron"], check=True, capture_output=True)
    subprocess.run(["kadmin.local", "-q", f"ktadd -k {kt} ceo-cron"], check=True, capture_output=True)
    conn = root_ldap(cluster)
    dn = f"uid=ceo-cron,{PEOPLE}"
    assert conn.add(dn, ["account", "posixAccount", "shadowAccount"],
                    {"uid": "ceo-cron", "cn": "ceo maintenance jobs", "uidNumber": 19990, "gidNumber": 19990,
                     "homeDirectory": "/nonexistent", "loginShell": "/bin/sh"}), conn.result
    conn.unbind()
    yield kt
    conn = root_ldap(cluster)
    conn.delete(dn)
    conn.unbind()
    subprocess.run(["kadmin.local", "-q", "delprinc -force ceo-cron"], check=True, capture_output=True)


def test_a_run_with_no_terminal_no_ticket_and_only_a_keytab_works(cluster, clock, cron_keytab):
    clock(AFTER)
    env = cluster.env(None)  # no ticket at all
    assert ceo(cluster, None, "members", "expire", "--check", env=env).returncode == 1  # no ticket, no keytab
    for job in ("expire", "remind"):
        got = ok(ceo(cluster, None, "--keytab", str(cron_keytab), "members", job, "--check", "--json", env=env))
        assert got["check"] is True
    assert ok(ceo(cluster, None, "--keytab", str(cron_keytab), "members", "expire", "--json", env=env))["failed"] == []
    # The account runs the jobs, nothing else.
    proc = ceo(cluster, None, "--keytab", str(cron_keytab), "members", "renew", "regular1", "--check", env=env)
    assert proc.returncode == 3, proc.stderr
    proc = ceo(cluster, None, "--keytab", "/nonexistent.keytab", "members", "expire", env=env)
    assert proc.returncode == 2 and "cannot read the keytab /nonexistent.keytab" in proc.stderr


def test_a_member_account_of_the_maintenance_name_is_refused(cluster, clock, tmp_path):
    """A member named in [maintenance] accounts (office could create one) gets no right from it."""
    clock(AFTER)
    set_clock_text = ORIGINAL_CONFIG.replace("accounts = ceo-cron", "accounts = ceo-cron regular1")
    assert set_clock_text != ORIGINAL_CONFIG
    CONFIG.write_text(set_clock_text + f"\n[testing]\ntoday = {AFTER.isoformat()}\n")
    try:
        proc = ceo(cluster, "regular1", "members", "expire", "--check")
        assert proc.returncode == 3 and "is a member or club account" in proc.stderr, proc.stderr
    finally:
        clock(AFTER)


@pytest.mark.parametrize("change", [{"objectClass": [(ldap3.MODIFY_ADD, ["club"])]},
                                    {"uidNumber": [(ldap3.MODIFY_REPLACE, [30999])]}],
                         ids=["a club account", "a number ceo hands out"])
def test_a_club_or_managed_number_of_the_maintenance_name_is_refused(cluster, clock, cron_keytab, change):
    """Found by a review: a club named ceo-cron made every member of its group (who may act as
    the club through its sudo rule) a maintenance account."""
    clock(AFTER)
    dn = f"uid=ceo-cron,{PEOPLE}"
    conn = root_ldap(cluster)
    assert conn.search(dn, "(objectClass=*)", "BASE", attributes=list(change))
    before = {k: conn.response[0]["raw_attributes"][k] for k in change}
    assert conn.modify(dn, change), conn.result
    try:
        env = cluster.env(None)
        proc = ceo(cluster, None, "--keytab", str(cron_keytab), "members", "expire", "--check", env=env)
        assert proc.returncode == 3 and "is a member or club account" in proc.stderr, proc.stderr
    finally:
        assert conn.modify(dn, {k: [(ldap3.MODIFY_REPLACE, v)] for k, v in before.items()}), conn.result
        conn.unbind()


def test_the_maintenance_names_are_reserved(cluster, clock):
    """No club (nor member) may take a maintenance account's name: its rights come with it."""
    clock(AFTER)
    CONFIG.write_text(ORIGINAL_CONFIG.replace("accounts = ceo-cron", "accounts = ceo-cron ceo-nightly")
                      + f"\n[testing]\ntoday = {AFTER.isoformat()}\n")
    try:
        for argv in (["groups", "add", "ceo-nightly", "--description", "Nightly Club"],
                     ["members", "add", "ceo-nightly", "--cn", "Nightly Person", "--no-welcome"]):
            proc = ceo(cluster, "ctdalek", *argv, "--yes")
            assert proc.returncode == 2 and "ceo-nightly is a reserved name" in proc.stderr, proc.stderr
    finally:
        clock(AFTER)


def test_a_member_cannot_block_the_jobs_with_a_lock_file(cluster, clock):
    """Found by a review: the locks were in the world-writable /run/lock, where a member's
    empty file of the lock's name stopped the job for good. They are in root's /run/ceo."""
    clock(AFTER)
    os.makedirs("/run/lock", mode=0o1777, exist_ok=True)
    os.chmod("/run/lock", 0o1777)
    squat = "/run/lock/ceo-members-expire.lock"
    if os.path.lexists(squat):
        os.unlink(squat)
    uid = pwd.getpwnam("regular1").pw_uid
    assert subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "touch", squat]).returncode == 0
    try:
        assert ceo(cluster, "ctdalek", "members", "expire", "--check").returncode == 0
        assert ceo(cluster, "ctdalek", "members", "expire", "--yes").returncode == 0
        st = os.lstat("/run/ceo")
        assert (st.st_uid, oct(st.st_mode & 0o777)) == (0, "0o700")
        inside = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "touch",
                                 "/run/ceo/x"], capture_output=True)
        assert inside.returncode != 0
    finally:
        os.unlink(squat)


def test_local_connection_on_the_ldap_host_logs_one_line_per_run(cluster, clock, tmp_path):
    """Cron on the LDAP host itself as root: `ansible_connection=local`, no ticket; syslog gets
    one line with the counts."""
    clock(AFTER)
    inv = tmp_path / "hosts.ini"
    inv.write_text("[ldap]\nphosphoric-acid.csclub.internal ansible_connection=local\n")
    env = {k: v for k, v in cluster.env(None).items() if not k.startswith("SUDO_")}
    for job, counts in (("expire", "0 locked"), ("remind", "0 reminded")):
        at = cluster.syslog_offset()
        proc = subprocess.run(["ceo", "-i", str(inv), "members", job, "--json"], input="", capture_output=True,
                              text=True, timeout=60, env=env)
        log = cluster.syslog_since(at)
        assert proc.returncode == 0, proc.stderr
        lines = [line for line in log if f"members.{job} by root" in line]
        assert len(lines) == 1 and counts in lines[0] and f"term {NOW}" in lines[0], log


def test_an_account_locked_for_another_reason_is_left_as_it_is_and_not_reminded(cluster, clock):
    clock(AFTER)
    uid = bulk(cluster, 1, 43000)[0]
    conn = root_ldap(cluster)
    assert conn.modify(f"uid={uid},{PEOPLE}", {"shadowExpire": [(ldap3.MODIFY_ADD, ["5"])],
                                               "lockReason": [(ldap3.MODIFY_ADD, ["abuse"])]}), conn.result
    conn.unbind()
    try:
        assert uid not in ok(ceo(cluster, "ctdalek", "members", "expire", "--json"))["locked"]
        assert lock_of(uid, RootLDAP(cluster)) == (["5"], ["abuse"])
        assert uid not in ok(ceo(cluster, "ctdalek", "members", "remind", "--json"))["reminded"]
        assert reminders_to(cluster, [uid]) == {uid: 0}
    finally:
        drop(cluster, [uid])
