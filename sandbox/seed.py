"""The sandbox's seed data: principals and keytabs, LDAP entries, home directories, config."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from .topology import (BASE_DN, DOMAIN, HOMES, HOSTS, MAIL_ADDR, MAILMAN_PASS, MAILMAN_PORT,
                       MAILMAN_USER, OTHER_REALM, REALM, REPO, SEED_CLUB, SEED_GROUPS, SITE_DIR, STATE,
                       SYSLOG_FILE, SYSLOG_SOCKET, UW_BASE, UW_HOST, UW_PEOPLE, fqdn, password, seed_people)

CROSS_REALM_PW = "sandbox-cross-realm"


def keytabs_dir():
    for host in HOSTS:
        (STATE / "hosts" / host).mkdir(parents=True, exist_ok=True)


def kadmin_batch() -> str:
    """kadmin.local commands for our realm, run in one process (about 50 ms in all)."""
    lines = [f"addprinc -pw {password(uid)} {uid}" for uid, *_ in seed_people()]
    for host in HOSTS:
        kt = STATE / "hosts" / host / "krb5.keytab"
        lines += [f"addprinc -randkey host/{fqdn(host)}", f"addprinc -randkey ceod/{fqdn(host)}",
                  f"ktadd -k {kt} host/{fqdn(host)} ceod/{fqdn(host)}"]
    pa = fqdn("phosphoric-acid")
    lines += [f"addprinc -randkey ldap/{pa}", f"ktadd -k {STATE}/hosts/phosphoric-acid/ldap.keytab ldap/{pa}",
              "addprinc -randkey ceod/admin", "ktadd -k /etc/csc/ceod-admin.keytab ceod/admin",
              f"addprinc -pw {CROSS_REALM_PW} krbtgt/{REALM}@{OTHER_REALM}"]
    return "\n".join(lines) + "\n"


def kadmin_other_batch() -> str:
    """The foreign realm: one person, and the trust that lets its tickets reach our hosts."""
    return (f"addprinc -pw {password('ctdalek')} ctdalek\n"
            f"addprinc -pw {CROSS_REALM_PW} krbtgt/{REALM}@{OTHER_REALM}\n")


def kinit(principal: str, pw: str, ccache: Path):
    subprocess.run(["kinit", "-c", f"FILE:{ccache}", principal], input=pw + "\n", text=True,
                   check=True, capture_output=True)


def _entry(dn: str, attrs: list[tuple[str, object]]) -> str:
    return "\n".join([f"dn: {dn}"] + [f"{k}: {v}" for k, v in attrs]) + "\n"


def ldif() -> str:
    people, groups = f"ou=People,{BASE_DN}", f"ou=Group,{BASE_DN}"
    out = [
        _entry(BASE_DN, [("objectClass", "dcObject"), ("objectClass", "organization"), ("dc", "csclub"),
                         ("o", "Computer Science Club")]),
        *(_entry(f"ou={ou},{BASE_DN}", [("objectClass", "organizationalUnit"), ("ou", ou)])
          for ou in ("People", "Group", "SUDOers", "Services", "Tombstones", "Grants")),
        *(_entry(f"cn=ceod/{fqdn(h)},ou=Services,{BASE_DN}",
                 [("objectClass", "applicationProcess"), ("cn", f"ceod/{fqdn(h)}")]) for h in HOSTS),
    ]

    def account(uid, cn, number, kind, extra):
        cls = "club" if kind == "club" else "member"
        return _entry(f"uid={uid},{people}", [
            ("objectClass", "top"), ("objectClass", "account"), ("objectClass", "posixAccount"),
            ("objectClass", "shadowAccount"), ("objectClass", cls), ("uid", uid), ("cn", cn),
            ("uidNumber", number), ("gidNumber", number), ("homeDirectory", f"{HOMES}/{uid}"),
            ("loginShell", "/bin/bash"), *extra])

    def group(cn, number, members):
        return _entry(f"cn={cn},{groups}", [
            ("objectClass", "top"), ("objectClass", "group"), ("objectClass", "posixGroup"),
            ("cn", cn), ("gidNumber", number), *(("uniqueMember", f"uid={m},{people}") for m in members)])

    for uid, cn, number, kind, terms, expire in seed_people():
        extra = [("program", "MAT/Mathematics Computer Science")]
        extra += [("nonMemberTerm" if kind == "clubrep" else "term", t) for t in terms]
        if uid == "ctdalek":
            extra.append(("position", "sysadmin"))
        if expire is not None:
            extra += [("shadowExpire", expire), ("lockReason", "lapsed")]
        out += [account(uid, cn, number, kind, extra), group(uid, number, [])]
    for name, (gid, members) in SEED_GROUPS.items():
        out.append(group(name, gid, members))
    club, club_cn, club_number, club_members = SEED_CLUB
    out += [account(club, club_cn, club_number, "club", []), group(club, club_number, club_members),
            _entry(f"cn=%{club},ou=SUDOers,{BASE_DN}", [
                ("objectClass", "top"), ("objectClass", "sudoRole"), ("cn", f"%{club}"),
                ("sudoUser", f"%{club}"), ("sudoHost", "ALL"), ("sudoCommand", "ALL"),
                ("sudoOption", "!authenticate"), ("sudoRunAsUser", club)])]
    return "\n".join(out)


def uw_ldif() -> str:
    """The university directory: its base, ou=People, and UW_PEOPLE as inetOrgPerson entries
    (uid, cn, givenName, sn, and ou holding the program, as UW's directory has it)."""
    out = [_entry(UW_BASE, [("objectClass", "dcObject"), ("objectClass", "organization"), ("dc", "uwaterloo"),
                            ("o", "University of Waterloo")]),
           _entry(f"ou=People,{UW_BASE}", [("objectClass", "organizationalUnit"), ("ou", "People")])]
    for uid, given, sn, program in UW_PEOPLE:
        out.append(_entry(f"uid={uid},ou=People,{UW_BASE}", [
            ("objectClass", "inetOrgPerson"), ("uid", uid), ("cn", f"{given} {sn}"), ("givenName", given),
            ("sn", sn), ("ou", program)]))
    return "\n".join(out)


SKEL = {
    ".bashrc": "# ~/.bashrc: CSC default\n[ -z \"$PS1\" ] && return\nPS1='\\u@\\h:\\w\\$ '\n",
    ".profile": "# ~/.profile: CSC default\n[ -f ~/.bashrc ] && . ~/.bashrc\n",
    "www/index.html": "<p>This member has not made a web page yet.</p>\n",
}


def homes():
    """The skeleton, and a home for every seeded account, as `members add` will make them."""
    skel = HOMES / "skel"
    for name, text in SKEL.items():
        (skel / name).parent.mkdir(parents=True, exist_ok=True)
        (skel / name).write_text(text)
    accounts = [(uid, number) for uid, _, number, *_ in seed_people()] + [(SEED_CLUB[0], SEED_CLUB[2])]
    for uid, number in accounts:
        home = HOMES / uid
        shutil.copytree(skel, home, dirs_exist_ok=True)
        for path in [home, *home.rglob("*")]:
            os.chown(path, number, number, follow_symlinks=False)
        home.chmod(0o755)
    # The club's home is shared by its group, as `groups add` makes it: setgid, default ACLs.
    from ceo.services.homes import share
    club = HOMES / SEED_CLUB[0]
    for path in [club, *(p for p in club.rglob("*") if p.is_dir() and not p.is_symlink())]:
        path.chmod(path.stat().st_mode & 0o7777 | 0o2000)
    share(str(club), SEED_CLUB[2])


def write_ceo_config(etc: Path):
    """/etc/csc as every sandbox host sees it: the inventory, ceo's own settings (world-readable,
    nothing secret) and the helper's credentials (root only)."""
    shutil.copy(REPO / "hosts.ini", etc / "hosts.ini")
    (etc / "ceo.ini").write_text(f"""\
# Written by the ceo sandbox: settings for the ceo client and for ceo-helper on each host.
[ceo]
realm = {REALM}
domain = {DOMAIN}

[plugins]
# Site plugins (root-owned files only). Empty here: the tests copy their test plugin in while
# they run (tests/conftest.py), so users of the sandbox never see it.
site_dir = {SITE_DIR}

[ssh]
known_hosts = /etc/ssh/ssh_known_hosts

[ldap]
uri = ldap://{fqdn('phosphoric-acid')}
ldapi = {STATE / 'ldap' / 'ldapi'}
base = {BASE_DN}

[directory]
# The university's directory (anonymous, read only): `members add` fills names and program from
# it, `members lookup` shows it, `members updateprograms` copies its programs (ou). Programs
# that are placeholders, not programs, are never copied (space-separated).
uri = ldap://{UW_HOST}
base = ou=People,{UW_BASE}
skip_programs = orphaned expired

[homes]
base = {HOMES}
skeleton = {HOMES}/skel

[clubs]
# Club accounts (`ceo groups add`): their uid numbers, and the shell members get with sudo -iu.
uid_min = 30001
uid_max = 39999
shell = /bin/bash

[mailman]
url = http://{MAIL_ADDR}:{MAILMAN_PORT}/3.1
open_lists = csc-general

[ties]
# What membership in a group gives (ceo groups addmember; removemember takes back only that).
syscom.groups = office staff adm src
syscom.lists = syscom syscom-alerts
office.groups = cdrom audio video www
exec.lists = exec
# no: a Mailman failure rolls the whole membership change back; yes: a warning, the groups stand.
lists_best_effort = no

[positions]
names = president vice-president treasurer secretary sysadmin cro librarian imapd webmaster offsck
required = president vice-president sysadmin
group = exec

[postgresql]
socket_dir = /run/postgresql
# What members connect to: written into ~/ceo-postgresql-info by `ceo postgresql create`.
host = {fqdn('coffee')}
port = 5432

[mariadb]
socket = /run/mysqld/mysqld.sock
# What members connect to: written into ~/ceo-mysql-info by `ceo mysql create`.
host = {fqdn('coffee')}
port = 3306

[smtp]
host = {fqdn('mail')}
port = 25

[audit]
file = {STATE}/audit.jsonl

[log]
# The helpers' syslog: the sandbox's sink (sandbox/syslogsink.py) writes it to {SYSLOG_FILE}.
syslog_socket = {SYSLOG_SOCKET}

# --- maintenance: `ceo members expire` and `ceo members remind` (README, examples/).
# Tests move ceo's clock with `[testing] today = YYYY-MM-DD` (ceo/terms.py clock()), never set here.
[maintenance]
# Lapsed accounts are locked this many days after their term's first day.
expire_grace_days = 28
# Accounts that may run the two jobs (a keytab's principal and a non-member posixAccount).
accounts = ceo-cron
alerts_to = syscom-alerts@{DOMAIN}
remind_from = exec@{DOMAIN}
remind_subject = Your Computer Science Club membership: renew for {{term}}
remind_template = Hello {{cn}},
    .
    Your membership of the Computer Science Club ({{uid}}) was for {{previous}}; you have not
    renewed for {{term}} yet. Accounts not renewed by {{lock_date}} are locked until they are.
    .
    To renew, come to the club office (MC 3036/3037) with your WatCard and the term's fee, or
    send the office a request from your @{DOMAIN} address at office@{DOMAIN}.
    .
    The Computer Science Club
""")
    (etc / "ceo.ini").chmod(0o644)
    (etc / "plugins").mkdir(mode=0o755, exist_ok=True)
    # Created 0600 (not chmod-ed after writing): there is no moment a member could read it.
    helper = etc / "ceo-helper.ini"
    helper.unlink(missing_ok=True)
    fd = os.open(helper, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"""\
# Written by the ceo sandbox: ceo-helper's credentials, over ceo.ini. Root only (mode 0600).
[kerberos]
admin_principal = ceod/admin@{REALM}
admin_keytab = /etc/csc/ceod-admin.keytab
host_keytab = {STATE}/hosts/{{host}}/krb5.keytab

[mailman]
user = {MAILMAN_USER}
password = {MAILMAN_PASS}
""")
    os.chown(helper, 0, 0)
