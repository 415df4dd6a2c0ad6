"""The sandbox cluster's fixed facts: realm, hosts, addresses and the people seeded into it.

Everything is on loopback addresses; names resolve only inside the sandbox's private mount
namespace (its own /etc/hosts), so nothing global changes.
"""

import datetime
import os
from pathlib import Path

from ceo import terms

REPO = Path(__file__).resolve().parent.parent
STATE = Path(os.environ.get("CEO_SANDBOX_STATE", REPO / ".sandbox"))
VENV = Path(os.environ.get("CEO_SANDBOX_VENV", REPO / ".venv"))
MAILMAN_VENV = Path(os.environ.get("CEO_SANDBOX_MAILMAN_VENV", REPO / ".venv-mailman"))
HELPER = VENV / "bin" / "ceo-helper"
# Each host runs ceo-helperd (the warm helper sessions are forked from) unless
# CEO_SANDBOX_HELPERD=0: then every session starts its helper cold, as without it.
HELPERD = os.environ.get("CEO_SANDBOX_HELPERD", "1") != "0"
# The sandbox's syslog (sandbox/syslogsink.py): the helpers' `[log] syslog_socket`, and the file
# where each line they log lands.
SYSLOG_SOCKET = STATE / "syslog" / "log.sock"
SYSLOG_FILE = STATE / "syslog" / "syslog.log"
# The sandbox's site plugin dir (`[plugins] site_dir`, a path inside its namespace): empty for
# users; the tests put their test plugin in it while they run (control.testkit_load).
SITE_DIR = Path("/etc/csc/plugins")
TESTKIT = REPO / "tests" / "plugins" / "testkit.py"
# sssd, unpacked from Debian's packages by sandbox/setup.sh (installing them would edit the
# machine's nsswitch.conf and PAM); the sandbox lays it over /usr in its own namespace.
SSSD_ROOT = Path(os.environ.get("CEO_SANDBOX_SSSD", REPO / ".sssd"))
# Daemons that run as their own users (postgres, mysql) keep their data here: STATE's
# subdirectories bind-mounted onto the namespace's private /run, so they are reachable even
# when the checkout sits in a folder only root can enter (mode 0700 /root, `mktemp -d`).
PRIVATE = Path("/run/ceo-sandbox")
# CEO_SANDBOX_NETNS=1: the cluster gets a network namespace of its own, so a second sandbox
# (the lifecycle test, parallel test runs) can use the same loopback addresses beside the first.
NETNS = os.environ.get("CEO_SANDBOX_NETNS", "") not in ("", "0")

REALM = "CSCLUB.INTERNAL"
OTHER_REALM = "OTHER.INTERNAL"  # a second realm that trusts ours, to prove foreign principals are refused
DOMAIN = "csclub.internal"
BASE_DN = "dc=csclub,dc=internal"
HOMES = Path("/users")

HOSTS = {
    "phosphoric-acid": "127.0.0.2",
    "coffee": "127.0.0.3",
    "mail": "127.0.0.4",
}
KDC_ADDR = HOSTS["phosphoric-acid"]
LDAP_ADDR = HOSTS["phosphoric-acid"]
DB_ADDR = HOSTS["coffee"]
MAIL_ADDR = HOSTS["mail"]
# The university's directory (UW's LDAP, read anonymously): a second slapd, on an address of
# its own, that is no CSC host (no sshd, no helper).
UW_ADDR = "127.0.0.6"
UW_HOST = "uwldap.uwaterloo.internal"
UW_BASE = "dc=uwaterloo,dc=internal"
MAILMAN_PORT = 8001
MAILMAN_USER, MAILMAN_PASS = "restadmin", "restpass"
LISTS = {
    "csc-general": "General discussion for all members",
    "syscom": "The systems committee",
    "syscom-alerts": "Alerts from the club's machines",
    "exec": "The executive",
    "ceo": "Membership and accounts (ceo's announcements)",
}


def fqdn(host: str) -> str:
    return f"{host}.{DOMAIN}"


def password(uid: str) -> str:
    """Seeded people's passwords (a sandbox, not a secret)."""
    return f"{uid}-sandbox-pw"


def seed_people(today: datetime.date | None = None):
    """(uid, cn, uidNumber, kind, terms, extra) for everyone seeded; terms are relative to today."""
    now = terms.current(today)
    prev, prev2 = terms.add(now, -1), terms.add(now, -2)
    return [
        # uid        cn                 uidNumber kind     terms            shadowExpire
        ("ctdalek", "Calum T. Dalek", 20001, "member", [prev, now], None),
        ("ofstaff", "Office Staffer", 20002, "member", [now], None),
        ("regular1", "Regular One", 20003, "member", [prev2, prev, now], None),
        ("regular2", "Regular Two", 20004, "member", [now], None),
        ("expired1", "Expired One", 20005, "member", [prev2], 1),
        ("clubrep1", "Club Rep One", 20006, "clubrep", [now], None),
    ]


# group -> (gidNumber, members)
SEED_GROUPS = {
    "syscom": (10001, ["ctdalek"]),
    "office": (10002, ["ctdalek", "ofstaff"]),
    "staff": (10003, ["ctdalek"]),
    "adm": (10004, ["ctdalek"]),
    "src": (10005, ["ctdalek"]),
    "cdrom": (10006, ["ctdalek", "ofstaff"]),
    "audio": (10007, ["ctdalek", "ofstaff"]),
    "video": (10008, ["ctdalek", "ofstaff"]),
    "www": (10009, ["ctdalek", "ofstaff"]),
    "exec": (10010, []),
}
# The university directory's people: (uid, givenName, sn, ou = the program as UW spells it).
# regular1's program differs from CSC's ("MAT/Mathematics Computer Science"), so
# `members updateprograms` has something to change; expired1's is a placeholder it skips;
# the uw* people are students who are not CSC members yet (`members add` without --cn).
UW_PEOPLE = [
    ("ctdalek", "Calum", "Dalek", "MAT/Mathematics Computer Science"),
    ("ofstaff", "Office", "Staffer", "MAT/Mathematics Computer Science"),
    ("regular1", "Regular", "One", "ENG/Software Engineering"),
    ("regular2", "Regular", "Two", "MAT/Mathematics Computer Science"),
    ("expired1", "Expired", "One", "expired"),
    ("clubrep1", "Club", "Rep", "ART/Economics"),
    ("uwnew1", "Ada", "Lovelace", "MAT/Mathematics Computer Science"),
    ("uwnew2", "Grace", "Hopper", "ENG/Electrical Engineering"),
    ("uwnew3", "Alan", "Turing", "MAT/Pure Mathematics"),
    ("uwnew4", "Edsger", "Dijkstra", "MAT/Combinatorics and Optimization"),
    ("uwnew5", "Barbara", "Liskov", "SCI/Physics"),
    ("uwnew6", "Donald", "Knuth", "MAT/Computer Science"),
]
SEED_CLUB = ("club1", "Club One", 30001, ["regular2", "clubrep1"])
