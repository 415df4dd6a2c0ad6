"""`ceo doctor`: is everything ceo needs there? The ticket, every host, its helper, its services."""

from __future__ import annotations

import time

from ceo.output import safe
from ceo.plugin import Plugin

plugin = Plugin("doctor", "Check your ticket, every host, its helper and the services it runs",
                default_verb="check")


def render(console, result):
    """One table, readable at 80 columns: each host a heading row over its checks (not a
    column repeating it), details wrapped, never cut short."""
    from rich.table import Table
    table = Table(box=None, header_style="bold", padding=(0, 1))
    table.add_column("", no_wrap=True)
    table.add_column("check", no_wrap=True)
    table.add_column("ms", justify="right", no_wrap=True)
    table.add_column("detail", overflow="fold")
    host = "-"
    for row in result["checks"]:
        if row["host"] != host:
            host = row["host"]
            table.add_row("", f"[bold]{safe(host.split('.')[0])}[/]", "", "")
        status = "[green]ok[/]" if row["ok"] else "[red]FAIL[/]"
        ms = "" if row.get("ms") is None else str(row["ms"])
        table.add_row(status, safe(row["check"]), ms, safe(row["detail"]))
    console.print(table)
    failed = sum(not r["ok"] for r in result["checks"])
    console.print(f"{len(result['checks']) - failed} ok, {failed} failed")


@plugin.composite("check", "Check the ticket, then every inventory host in parallel (exit 1 on any failure)",
                  example=("ceo doctor",
                           "ceo doctor check --json"),
                  render=render)
def check(run):
    from ceo.errors import CeoError
    rows = []
    try:
        principal, left = run.ticket()
        rows.append(_row("-", "kerberos ticket", True, f"{principal}, {left // 3600} h {left % 3600 // 60} min left"))
    except CeoError as err:
        return {"ok": False, "exit": 1, "checks": [_row("-", "kerberos ticket", False, err.message)]}
    hosts = list(run.inventory.hosts.values())
    t0 = time.monotonic()
    sessions = run.open_hosts()
    for host in hosts:
        outcome = sessions[host.name]
        roles = ", ".join(run.inventory.roles_of(host.name)) or "no roles"
        if isinstance(outcome, Exception):
            rows.append(_row(host.name, f"helper ({host.connection})", False, getattr(outcome, "message", str(outcome))))
            continue
        hello = outcome.hello
        rows.append(_row(host.name, f"helper ({host.connection})", True,
                         f"{hello.get('principal') or hello['caller']}; {roles}; v{hello['version']}/{hello['protocol']}"))
        try:
            services = outcome.request("doctor", "services", {})
        except CeoError as err:
            rows.append(_row(host.name, "services", False, err.message))
            continue
        rows += [_row(host.name, s["check"], s["ok"], s["detail"], s.get("ms")) for s in services]
    ok = all(r["ok"] for r in rows)
    return {"ok": ok, "exit": 0 if ok else 1, "checks": rows, "seconds": round(time.monotonic() - t0, 3)}


def _row(host, check, ok, detail, ms=None):
    return {"host": host, "check": check, "ok": bool(ok), "detail": detail, "ms": ms}


@plugin.verb("ping", "Answer at once (a no-op: measures the round trip)",
             example="ceo doctor ping --host coffee.csclub.internal",
             role="any", allow=("any",))
def ping(ctx):
    return {"pong": True, "host": ctx.host}


@plugin.verb("services", "Check the services this host's roles need", role="any", allow=("any",), hidden=True)
def services(ctx):
    checks = []
    for role in ctx.roles:
        for name, probe in PROBES.get(role, ()):
            t0 = time.monotonic()
            try:
                detail, ok = probe(ctx), True
            except Exception as exc:  # a failing service is the answer here, not an error
                detail, ok = (getattr(exc, "message", None) or str(exc).splitlines()[0] or type(exc).__name__), False
            checks.append({"check": f"{role}: {name}", "ok": ok, "detail": detail,
                           "ms": round((time.monotonic() - t0) * 1000)})
    if not ctx.roles:
        checks.append({"check": "roles", "ok": False, "detail": f"{ctx.host} has no role in the inventory"})
    return checks


# --- the probes, run on the helper's host ------------------------------------------------

def _ldap(ctx):
    conn = ctx.ldap()
    base = ctx.config.get("ldap", "base")
    conn.search(base, "(objectClass=*)", search_scope="BASE", attributes=["dc"])
    if conn.result["result"] != 0:
        raise RuntimeError(f"search of {base} failed: {conn.result['description']}")
    who = conn.extend.standard.who_am_i().removeprefix("dn:")
    return f"{base} readable ({'root over ldapi' if 'peercred' in who else who})"


def _kadmin(ctx):
    from ceo.services import kadmin
    admin = kadmin.admin(ctx)
    kadmin.call(ctx, lambda: admin.principal_exists(f"K/M@{ctx.config.realm}"))
    return f"answers {kadmin.admin_principal(ctx.config)}"


def _homes(ctx):
    import os
    base = ctx.config.get("homes", "base", "/users")
    skel = ctx.config.get("homes", "skeleton", f"{base}/skel")
    for path in (base, skel):
        if not os.path.isdir(path):
            raise RuntimeError(f"{path} is not a directory")
    return f"{base}, {skel}"


def _postgresql(ctx):
    from ceo.services import sql
    return f"PostgreSQL {sql.run(ctx, 'postgresql', 'show server_version', fetch=True)[0][0].split()[0]}"


def _mariadb(ctx):
    from ceo.services import sql
    return f"MariaDB {sql.run(ctx, 'mariadb', 'select version()', fetch=True)[0][0].split('-')[0]}"


def _mailman(ctx):
    from ceo.services import mailman  # in the helper: only it has the REST credentials
    return f"{mailman.version(ctx).split(' (')[0]} at {mailman.url(ctx)}"


def _smtp(ctx):
    import smtplib
    host, port = ctx.config.get("smtp", "host", "localhost"), int(ctx.config.get("smtp", "port", "25"))
    with smtplib.SMTP(host, port, timeout=5) as smtp:
        code, _ = smtp.noop()
    if code != 250:
        raise RuntimeError(f"NOOP answered {code}")
    return f"{host}:{port} answers"


PROBES = {
    "ldap": [("slapd", _ldap)],
    "kerberos": [("kadmind", _kadmin)],
    "homes": [("home directories", _homes)],
    "databases": [("postgresql", _postgresql), ("mariadb", _mariadb)],
    "mail": [("mailman", _mailman), ("smtp", _smtp)],
}
