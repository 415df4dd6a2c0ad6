"""Hostile input, measured: hundreds of user names, group and list names, terms, addresses,
shells, position holders, descriptions and full names (control, bidirectional, invisible and
combining characters, SQL and LDAP metacharacters, paths, options, protocol lines), and CSV
files (huge, binary, badly encoded, formula cells). Each is sent both through `ceo` (its
`main`, as syscom, so that only validation can refuse it) and as a hand-written request to
the helper step that would act on it. Each must get a one-line error, exit 2 or 3, no
traceback; and nothing may change anywhere: LDAP, Kerberos, homes and forwarding, MariaDB,
PostgreSQL and Mailman are read before and after and must be equal.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess

import paramiko
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from rawhelper import Raw
from rootldap import RootLDAP
from test_databases import catalogues

from ceo import cli
from ceo import terms as T

NEXT = T.add(T.current(), 1)

# Fragments an attacker (or a paste from the wrong window) brings, each tried alone and inside
# otherwise ordinary values.
FRAGMENTS = [
    "*)(uid=*", "*", "(", ")", "\\2a", "x'; DROP TABLE users;--", "\"", "'", "`id`", "$(id)", "|id", ";id", "&",
    "../etc/passwd", "/", "..", "~root", "a\nb", "a\rb", "\t", "\x00", "\x1b[2J", "\x7f", "\x85", "\u202eevil",
    "\u2066x\u2069", "a\u200bb", "\ufeff", "\u00ad", "e\u0301\u0302\u0303", "\u0301", "Ａdmin", "ADMIN", "Regular1",
    "-rf", "--help", " lead", "trail ", "a b", "a" * 40, "ü", "%00", "{x}", "[x]", "@", "a,b", "a=b", "#",
    "\ud800", "=cmd|' /C calc'!A0", '{"id":1}', "cn=admin,dc=csclub,dc=internal", "\\", "",
]


def values(fragments=FRAGMENTS):
    out = []
    for f in fragments:
        for v in (f, f"a{f}", f"{f}z"):
            if v not in out:
                out.append(v)
    return out


# (category, parameter pattern that a valid value would match, CLI argv, helper request)
def cases():
    uid = r"[a-z][a-z0-9-]{0,31}"
    term = r"[wsf][0-9]{4}"
    text = None  # free text: refused only for what no name may hold
    rows = []
    for v in values():
        rows += [
            ("user name", uid, v, ["members", "get", v], ("ldap", "members", "info", {"uid": v})),
            ("user name", uid, v, ["members", "add", v, "--cn", "Hostile Case", "--no-welcome", "--no-subscribe"],
             ("ldap", "members", "create", {"uid": v, "cn": "Hostile Case", "terms": 1})),
            ("user name", uid, v, ["mysql", "create", v], ("databases", "mysql", "make", {"name": v})),
            ("group name", r"[a-z][a-z0-9_-]{0,31}", v, ["groups", "add", v, "--description", "x"],
             ("ldap", "groups", "create", {"name": v, "description": "x"})),
            ("list name", r"[a-z][a-z0-9._-]{0,63}", v, ["lists", "subscribe", v, "regular1"],
             ("mail", "lists", "subscribe", {"list": v, "who": "regular1"})),
            ("term", term, v, ["members", "renew", "regular2", "--term", v],
             ("ldap", "members", "renew_terms", {"uid": "regular2", "term": [v]})),
            ("address", r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+", v,
             ["members", "modify", "regular2", "--forwarding-address", v],
             ("homes", "members", "set_forwarding", {"uid": "regular2", "forwarding_address": [v]})),
            ("shell", r"/[A-Za-z0-9/._+-]{1,255}", v, ["members", "modify", "regular2", "--login-shell", v],
             ("ldap", "members", "set_shell", {"uid": "regular2", "shell": v})),
            ("position holder", f"({uid})?", v, ["positions", "set", "--president", v],
             ("ldap", "positions", "assign", {"assign": [f"president={v}"]})),
            ("full name", text, v, ["members", "add", "hxfresh", "--cn", v, "--no-welcome", "--no-subscribe"],
             ("ldap", "members", "create", {"uid": "hxfresh", "cn": v, "terms": 1})),
            ("description", text, v, ["groups", "add", "hxclub", "--description", v],
             ("ldap", "groups", "create", {"name": "hxclub", "description": v})),
        ]
    return rows


def hostile(category, pattern, value) -> bool:
    """Whether a value must be refused (this test's own rule, not the code's): it breaks its
    parameter's pattern, or, for free text, it is blank or holds a control or formatting
    character (Unicode Cc, Cf: bidirectional controls, zero-width marks) or stacked marks."""
    import unicodedata
    if "\ud800" in value:
        return True
    if pattern is not None:
        return not re.fullmatch(pattern, value)
    if not value.strip() or any(unicodedata.category(c) in ("Cc", "Cf") for c in value):
        return True
    marks = [bool(unicodedata.combining(c)) for c in value]
    return marks[0] or any(all(marks[i:i + 3]) for i in range(len(marks) - 2))


CASES = [c for c in cases() if hostile(*c[:3])]


# --- the state of every service ------------------------------------------------------------------

def snapshot(cluster) -> dict:
    root = RootLDAP(cluster)

    def tree(conn):
        conn.search(cluster.base_dn, "(objectClass=*)", attributes=["*"])
        return sorted((r["dn"], sorted((k, sorted(v)) for k, v in r["raw_attributes"].items()))
                      for r in conn.response if r.get("type") == "searchResEntry")
    princs = subprocess.run(["kadmin.local", "-q", "listprincs"], capture_output=True, text=True, timeout=60).stdout
    homes = {}
    for name in sorted(os.listdir("/users")):
        forward = f"/users/{name}/.forward"
        homes[name] = open(forward).read() if os.path.isfile(forward) else None
    from mailmanclient import Client
    from sandbox import topology
    mm = Client(f"http://{cluster.addrs['mail']}:8001/3.1", topology.MAILMAN_USER, topology.MAILMAN_PASS)
    rosters = {m.fqdn_listname: sorted(x.email for x in m.members) for m in mm.lists}
    return {"ldap": root._do(tree),
            "kerberos": sorted(p for p in princs.splitlines() if "@" in p and not p.startswith("Authenticating")), "homes": homes, "sql": catalogues(),
            "mailman": rosters}


@pytest.fixture(scope="module")
def before(cluster):
    return snapshot(cluster)


# --- through ceo ------------------------------------------------------------------------------------

def through_ceo(cluster, argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as exc:  # argparse's own exits
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def one_line_refusal(code, err) -> str | None:
    """None if this is a proper refusal, else what is wrong with it."""
    if code not in (2, 3):
        return f"exit {code}"
    if "Traceback" in err:
        return "a traceback"
    if len(err.strip().splitlines()) != 1:
        return f"{len(err.strip().splitlines())} lines"
    return None


def test_every_hostile_value_is_refused_by_ceo_in_one_line(cluster, before, summary, monkeypatch):
    monkeypatch.setenv("KRB5CCNAME", cluster.env("ctdalek")["KRB5CCNAME"])
    bad = []
    for category, _, value, argv, _ in CASES:
        if value == "--help":  # on a command line that is the option, and its help is the answer
            continue
        code, _, err = through_ceo(cluster, argv)
        problem = one_line_refusal(code, err)
        if problem:
            bad.append((category, value, " ".join(argv[:2]), problem, err[-200:]))
    summary.setdefault("hostile input", {}).update(
        {"values": len({c[2] for c in CASES}), "through ceo": len(CASES), "ceo refused in one line": len(CASES) - len(bad)})
    assert not bad, bad[:10]


# --- as hand-written helper requests ---------------------------------------------------------------

HOSTS = {"ldap": "phosphoric-acid", "homes": "phosphoric-acid", "databases": "coffee", "mail": "mail"}


class Helpers:
    """A raw session per host as syscom; a fresh helper before a session's refusal bound."""

    def __init__(self, cluster, user="ctdalek"):
        self.cluster, self.user, self.clients, self.raws, self.sent = cluster, user, {}, {}, {}

    def raw(self, host):
        if host not in self.clients:
            client = paramiko.SSHClient()
            client.load_host_keys("/etc/ssh/ssh_known_hosts")
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
            client.connect(self.cluster.hosts[host], username=self.user, gss_auth=True, gss_kex=False,
                           gss_trust_dns=False, look_for_keys=False, allow_agent=False, timeout=20)
            self.clients[host] = client
        if host not in self.raws or self.sent[host] >= 90:  # the helper ends a session at 100 refusals
            self.raws[host] = Raw(self.clients[host])
            self.raws[host].hello()
            self.sent[host] = 0
        self.sent[host] += 1
        return self.raws[host]

    def close(self):
        for client in self.clients.values():
            client.close()


def wire_refusal(reply, lines) -> str | None:
    error = reply.get("error")
    if not isinstance(error, dict):
        return f"not refused: {str(reply)[:200]}"
    if error.get("exit") not in (2, 3):
        return f"exit {error.get('exit')}: {error.get('message')}"
    message = error.get("message", "")
    if "\n" in message or "Traceback" in message or any(b"Traceback" in line for line in lines):
        return "a multi-line message or a traceback"
    return None


def test_every_hostile_value_is_refused_by_the_helper_itself(cluster, before, summary, monkeypatch):
    monkeypatch.setenv("KRB5CCNAME", cluster.env("ctdalek")["KRB5CCNAME"])
    helpers, bad = Helpers(cluster), []
    try:
        for n, (category, _, value, _, (role, plugin, verb, args)) in enumerate(CASES):
            raw = helpers.raw(HOSTS[role])
            if "\ud800" in value:  # not text: only a hand-written line can carry it
                raw.send(b'{"id": %d, "plugin": "%s", "verb": "%s", "args": %s}\n'
                         % (n, plugin.encode(), verb.encode(), json.dumps(args).encode()))
                reply = raw.reply()
            else:
                _, reply = raw.request(n, plugin, verb, args)
            problem = wire_refusal(reply, raw.lines[-1:])
            if problem:
                bad.append((category, value, f"{plugin}.{verb}", problem))
    finally:
        helpers.close()
    summary.setdefault("hostile input", {}).update(
        {"as helper requests": len(CASES), "helper refused in one line": len(CASES) - len(bad)})
    assert not bad, bad[:10]


# Generated: any text the user-name pattern refuses, sent where a user name goes.
@settings(max_examples=150, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=0, max_size=40)
       .filter(lambda v: not re.fullmatch(r"[a-z][a-z0-9-]{0,31}", v)))
def test_generated_user_names_are_refused_everywhere(cluster, generated_helpers, value):
    code, _, err = through_ceo(cluster, ["members", "add", value, "--cn", "Generated Case", "--no-welcome"])
    assert one_line_refusal(code, err) is None, (value, code, err)
    raw = generated_helpers.raw("phosphoric-acid")
    _, reply = raw.request(1, "members", "create", {"uid": value, "cn": "Generated Case", "terms": 1})
    assert wire_refusal(reply, raw.lines[-1:]) is None, (value, reply)
    generated_helpers.count += 1


@pytest.fixture(scope="module")
def generated_helpers(cluster):
    os.environ["KRB5CCNAME"] = cluster.env("ctdalek")["KRB5CCNAME"]
    helpers = Helpers(cluster)
    helpers.count = 0
    yield helpers
    helpers.close()


def test_generated_inputs_counted(generated_helpers, summary):
    summary.setdefault("hostile input", {})["generated user names (hypothesis)"] = generated_helpers.count
    assert generated_helpers.count >= 100


# --- CSV files ---------------------------------------------------------------------------------------

def csv_cases(tmp):
    files = {
        "binary": bytes(range(256)) * 64,
        "latin-1": "uid,terms\nm\xfcller,1\n".encode("latin-1"),
        "utf-16": "uid,terms\nregular2,1\n".encode("utf-16-le"),
        "formula cells": b"uid,terms\n=cmd|' /C calc'!A0,1\n+SUM(A1),1\n@import,1\n-2+3,1\n",
        "ldap metacharacters": b"uid,terms\n*)(uid=*,1\nregular2)(x,1\n",
        "bad terms": b"uid,terms\nregular2,x2027\nregular2,99\nregular2,-1\n",
        "no uid column": b"user,terms\nregular2,1\n",
        "empty": b"",
        "a huge cell": b"uid,terms\n" + b"a" * (4 << 20) + b",1\n",
        "huge, all invalid": b"uid,terms\n" + b"".join(b"Bad%d,1\n" % i for i in range(100_000)),
        "NUL bytes": b"uid,terms\nregu\x00lar2,1\n",
    }
    for name, data in files.items():
        path = tmp / f"{name.replace(' ', '-')}.csv"
        path.write_bytes(data)
        yield name, str(path)


def test_hostile_csv_files_are_refused_before_anything_is_written(cluster, before, summary, monkeypatch, tmp_path):
    monkeypatch.setenv("KRB5CCNAME", cluster.env("ctdalek")["KRB5CCNAME"])
    bad, count = [], 0
    for name, path in csv_cases(tmp_path):
        count += 1
        code, _, err = through_ceo(cluster, ["members", "renew", "--csv", path])
        # The invalid rows are listed, one line each, before the one-line error that ends it.
        lines = err.strip().splitlines()
        problem = one_line_refusal(code, lines[-1] if lines else "")
        if not problem and not lines[-1].startswith("ceo: "):
            problem = f"ends with {lines[-1][:100]!r}"
        if problem:
            bad.append((name, problem, err[-300:]))
    summary.setdefault("hostile input", {})["CSV files"] = count
    assert not bad, bad


# --- and nothing changed -----------------------------------------------------------------------------

def test_nothing_changed_anywhere(cluster, before, summary):
    after = snapshot(cluster)
    changed = [k for k in before if before[k] != after[k]]
    summary.setdefault("hostile input", {})["services changed"] = len(changed)
    assert not changed, {k: difference(before[k], after[k]) for k in changed}


def difference(a, b):
    if isinstance(a, dict):
        return {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)}
    return {"gone": [x for x in a if x not in b], "new": [x for x in b if x not in a]}
