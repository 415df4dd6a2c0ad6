"""The framework end to end, through the real `ceo` command against the sandbox."""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("testkit")  # tests/plugins/testkit.py, loaded for this module

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("paramiko", "ldap3", "rich", "gssapi", "psycopg2", "pymysql", "kadmin", "mailmanclient")


def ceo(cluster, user, *args, **kw):
    return cluster.run(["ceo", *args], user, **kw)


def inventory_with(tmp_path, **host_vars) -> str:
    """The repo's hosts.ini with extra vars on every host line that has ansible_host."""
    extra = " ".join(f"{k}={v}" for k, v in host_vars.items())
    lines = [line + (f" {extra}" if "ansible_host=" in line else "")
             for line in (REPO / "hosts.ini").read_text().splitlines()]
    path = tmp_path / f"hosts-{uuid.uuid4().hex[:6]}.ini"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def ldap_root(cluster):
    import ldap3
    return ldap3.Connection(ldap3.Server("ldapi://" + str(cluster.state / "ldap" / "ldapi").replace("/", "%2F")),
                            authentication=ldap3.SASL, sasl_mechanism=ldap3.EXTERNAL, sasl_credentials="",
                            auto_bind=True)


def ldap_has(cluster, name: str) -> bool:
    conn = ldap_root(cluster)
    conn.search(f"ou=Group,{cluster.base_dn}", f"(cn={name})", attributes=["cn"])
    found = bool(conn.entries)
    conn.unbind()
    return found


def ldap_subtree(cluster, name: str) -> list[str]:
    """The DNs at and under cn=NAME,ou=Group (none if it does not exist), children first."""
    import ldap3
    conn = ldap_root(cluster)
    conn.search(f"cn={name},ou=Group,{cluster.base_dn}", "(objectClass=*)", ldap3.SUBTREE, attributes=["cn"])
    assert conn.result["result"] in (0, 32), conn.result  # 32: no such entry
    dns = sorted((e.entry_dn for e in conn.entries), key=len, reverse=True)
    conn.unbind()
    return dns


def ldap_remove_subtree(cluster, name: str):
    conn = ldap_root(cluster)
    for dn in ldap_subtree(cluster, name):
        assert conn.delete(dn), conn.result
    conn.unbind()


def audit_lines(cluster) -> list[dict]:
    path = cluster.state / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# --- doctor over every transport ------------------------------------------------------------

@pytest.mark.parametrize("connection", ["paramiko", "ssh", "local"])
def test_doctor_passes_for_every_host(cluster, tmp_path, connection):
    inv = inventory_with(tmp_path, ansible_connection=connection)
    proc = ceo(cluster, "ofstaff", "-i", inv, "doctor", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    checks = doc["result"]["checks"]
    assert doc["ok"] and all(c["ok"] for c in checks)
    names = {(c["host"].split(".")[0], c["check"]) for c in checks}
    assert {("phosphoric-acid", "ldap: slapd"), ("phosphoric-acid", "kerberos: kadmind"),
            ("coffee", "databases: postgresql"), ("coffee", "databases: mariadb"),
            ("mail", "mail: mailman"), ("mail", "mail: smtp")} <= names
    assert sum(c["check"] == f"helper ({connection})" for c in checks) == 3


def test_doctor_fails_when_a_service_is_down(cluster, tmp_path):
    # Point mail's checks at a config whose Mailman URL nobody answers: doctor says so, exit 1.
    inv = inventory_with(tmp_path, ansible_connection="local")
    cfg = tmp_path / "ceo.ini"
    cfg.write_text(Path("/etc/csc/ceo.ini").read_text().replace(":8001/", ":8009/"))
    proc = cluster.run(["ceo", "-i", inv, "-c", str(cfg), "doctor", "--json"], "ofstaff")
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    failed = [(c["host"], c["check"]) for c in doc["result"]["checks"] if not c["ok"]]
    assert doc["ok"] is False and failed == [("mail.csclub.internal", "mail: mailman")]


# --- authorization ---------------------------------------------------------------------------

@pytest.mark.parametrize("user, code", [("regular1", 3), ("regular2", 3), ("ofstaff", 0), ("ctdalek", 0)])
def test_staff_only_verb(cluster, user, code):
    proc = ceo(cluster, user, "testkit", "staffonly", "--note", "x")
    assert proc.returncode == code, proc.stderr
    if code == 3:
        assert proc.stderr.strip() == f"ceo testkit staffonly needs office or syscom; {user} has none of these"


def test_json_error_is_one_document(cluster):
    proc = ceo(cluster, "regular1", "testkit", "staffonly", "--json")
    assert proc.returncode == 3
    doc = json.loads(proc.stdout)
    assert doc["ok"] is False and doc["error"]["name"] == "NotPermitted" and doc["error"]["exit"] == 3


def test_helper_knows_the_caller_from_the_session(cluster):
    doc = json.loads(ceo(cluster, "ofstaff", "testkit", "whoami", "--json").stdout)["result"]
    assert doc["caller"] == "ofstaff" and "office" in doc["groups"] and "syscom" not in doc["groups"]


# --- multi-step operations -------------------------------------------------------------------

def test_multistep_failure_at_step_three_leaves_no_trace(cluster):
    name = f"ms{uuid.uuid4().hex[:8]}"
    proc = ceo(cluster, "ofstaff", "testkit", "multistep", name, "--fail-at", "3")
    assert proc.returncode == 1
    assert "injected failure on the databases host" in proc.stderr
    assert f"undid: made directory /users/{name}" in proc.stdout and f"undid: added LDAP entry cn={name}" in proc.stdout
    assert not ldap_has(cluster, name)
    assert not Path(f"/users/{name}").exists()


def remove_entry_and_directory(cluster, name):
    """Cleanup as root (the steps are not commands), each checked; then nothing is left."""
    if ldap_has(cluster, name):
        conn = ldap_root(cluster)
        assert conn.delete(f"cn={name},ou=Group,{cluster.base_dn}"), conn.result
        conn.unbind()
    if Path(f"/users/{name}").exists():
        shutil.rmtree(f"/users/{name}")
    assert not ldap_has(cluster, name) and not Path(f"/users/{name}").exists()


def test_multistep_success_does_every_step(cluster):
    name = f"ms{uuid.uuid4().hex[:8]}"
    try:
        proc = ceo(cluster, "ofstaff", "testkit", "multistep", name, "--json")
        assert proc.returncode == 0, proc.stderr
        steps = [(s["host"], s["status"]) for s in json.loads(proc.stdout)["steps"]]
        assert steps == [("phosphoric-acid.csclub.internal", "done"), ("phosphoric-acid.csclub.internal", "done"),
                         ("coffee.csclub.internal", "done")]
        assert ldap_has(cluster, name) and Path(f"/users/{name}").is_dir()
    finally:
        remove_entry_and_directory(cluster, name)


def test_helper_side_steps_roll_back(cluster):
    name = f"ls{uuid.uuid4().hex[:8]}"
    proc = ceo(cluster, "ctdalek", "testkit", "localsteps", name, "--fail-at", "3", "--json")
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert [s["status"] for s in doc["steps"]] == ["done", "done", "failed", "undone", "undone"]
    assert not ldap_has(cluster, name) and not Path(f"/users/{name}").exists()


def test_check_mode_changes_nothing_and_is_not_audited(cluster):
    name = f"ck{uuid.uuid4().hex[:8]}"
    before = len(audit_lines(cluster))
    proc = ceo(cluster, "ctdalek", "testkit", "localsteps", name, "--check")
    assert proc.returncode == 0 and "check mode: nothing was changed" in proc.stdout
    assert not ldap_has(cluster, name) and not Path(f"/users/{name}").exists()
    assert len(audit_lines(cluster)) == before


# --- audit ------------------------------------------------------------------------------------

def test_changes_are_audited_with_secrets_redacted(cluster):
    before = len(audit_lines(cluster))
    proc = ceo(cluster, "ofstaff", "testkit", "secret", "--password", "hunter2-secret")
    assert proc.returncode == 0, proc.stderr
    records = audit_lines(cluster)[before:]
    assert len(records) == 1
    rec = records[0]
    assert (rec["caller"], rec["plugin"], rec["verb"], rec["outcome"]) == ("ofstaff", "testkit", "secret", "done")
    assert rec["args"] == {"password": "***"} and rec["host"] == "phosphoric-acid.csclub.internal"
    assert "hunter2-secret" not in (cluster.state / "audit.jsonl").read_text()


def test_refusals_are_audited_as_failed(cluster):
    before = len(audit_lines(cluster))
    ceo(cluster, "regular1", "testkit", "staffonly", "--note", "n")
    rec = audit_lines(cluster)[before:]
    assert [(r["caller"], r["verb"], r["outcome"]) for r in rec] == [("regular1", "staffonly", "refused")]


# --- errors: one line, right exit code, never a traceback ---------------------------------

def test_no_ticket(cluster):
    proc = ceo(cluster, None, "doctor", "ping")
    assert (proc.returncode, proc.stderr) == (1, "ceo: no Kerberos ticket: run kinit\n")


def test_unreachable_host_is_named_with_its_role(cluster, tmp_path):
    inv = tmp_path / "hosts.ini"
    inv.write_text("[mail]\nmail.csclub.internal ansible_host=127.0.0.9\n")
    proc = ceo(cluster, "ofstaff", "-i", str(inv), "doctor", "ping")
    assert proc.returncode == 1
    assert proc.stderr.startswith("ceo: cannot reach mail.csclub.internal (mail) at 127.0.0.9:22")
    assert len(proc.stderr.splitlines()) == 1


def test_a_host_that_does_not_speak_ssh_is_one_line_without_paramikos_traceback(cluster, tmp_path):
    """A wrong port in the inventory: paramiko's thread logs the failed handshake with a
    traceback, which Python would print to stderr were paramiko's logger left without a handler."""
    import socket
    import threading
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def answer_and_hang_up():
        with listener:
            conn, _ = listener.accept()
            with conn:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
                conn.recv(100)  # its banner: hung up on with nothing unread, the close is no reset
    threading.Thread(target=answer_and_hang_up, daemon=True).start()
    inv = tmp_path / "hosts.ini"
    inv.write_text(f"[ldap]\nphosphoric-acid.csclub.internal ansible_host=127.0.0.1 ansible_port={port}\n")
    proc = ceo(cluster, "ofstaff", "-i", str(inv), "doctor", "ping")
    assert proc.returncode == 1, proc
    assert proc.stderr == ("ceo: SSH to phosphoric-acid.csclub.internal (ldap) failed: "
                           "Error reading SSH protocol banner\n"), proc.stderr


def test_locked_account_is_refused_with_a_clear_message(cluster):
    proc = ceo(cluster, "expired1", "doctor", "ping")
    assert proc.returncode == 3 and "refused the login" in proc.stderr and "Traceback" not in proc.stderr


GROUP_NAME = "is not a group name (a lower-case letter, then letters, digits, '_' or '-')"


# --yes: without it the confirmation refusal (also exit 2, one line) would hide a missing check.
@pytest.mark.parametrize("args, message", [
    (["testkit", "confirmed", "x; DROP", "--yes"], f"ceo: name: 'x; DROP' {GROUP_NAME}"),
    (["testkit", "confirmed", "*)(uid=*", "--yes"], f"ceo: name: '*)(uid=*' {GROUP_NAME}"),
    (["testkit", "confirmed", "../etc", "--yes"], f"ceo: name: '../etc' {GROUP_NAME}"),
    (["testkit", "confirmed", "a\nb", "--yes"], "ceo: name: 'a\\nb' contains a control character (newline?)"),
    (["testkit", "multistep", "{name}", "--fail-at", "7"], "ceo: fail_at: 7 is outside 0..3"),
    (["testkit", "nosuchverb"], "ceo testkit: argument VERB: invalid choice: 'nosuchverb' (choose from "),
    (["nosuchplugin"], "ceo: argument PLUGIN: invalid choice: 'nosuchplugin' (choose from "),
    (["testkit", "staffonly", "--note", "line\nbreak"], "ceo: note: 'line\\nbreak' contains a control character"),
], ids=["semicolon", "ldap-filter", "dot-dot", "newline", "out-of-range", "no-verb", "no-plugin", "note-newline"])
def test_bad_input_is_one_line_exit_2(cluster, args, message):
    name = f"bi{uuid.uuid4().hex[:8]}"
    before = len(audit_lines(cluster))
    proc = ceo(cluster, "ofstaff", *[a.format(name=name) for a in args])
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and proc.stderr.startswith(message), proc.stderr
    assert proc.stdout == ""
    # Refused by the client's own check: no helper saw it (a helper audits even a refusal), nothing made.
    assert audit_lines(cluster)[before:] == []
    assert not ldap_has(cluster, name) and not Path(f"/users/{name}").exists()


def test_confirmation_needs_yes_without_a_terminal(cluster):
    before = len(audit_lines(cluster))
    proc = ceo(cluster, "ofstaff", "testkit", "confirmed", "thing")
    assert (proc.returncode, proc.stderr) == (2, "ceo: Really do nothing to thing? Needs confirmation: pass --yes\n")
    assert audit_lines(cluster)[before:] == []
    assert ceo(cluster, "ofstaff", "testkit", "confirmed", "thing", "--yes").returncode == 0
    assert [(r["verb"], r["args"], r["outcome"]) for r in audit_lines(cluster)[before:]] == [
        ("confirmed", {"name": "thing"}, "done")]


def test_missing_inventory_and_config(cluster, tmp_path):
    proc = ceo(cluster, "ofstaff", "-i", str(tmp_path / "none.ini"), "doctor", "ping")
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    proc = ceo(cluster, "ofstaff", "-c", str(tmp_path / "none.ini"), "doctor", "ping")
    assert proc.returncode == 2 and "does not exist" in proc.stderr


# --- discovery and laziness ---------------------------------------------------------------------

def _python(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-c", textwrap.dedent(code)],
                          capture_output=True, text=True, env={**os.environ, **env}, cwd=REPO)


@pytest.mark.parametrize("argv", [["--help"], ["doctor", "--help"], ["testkit", "--help"], ["plugins"]])
def test_help_imports_nothing_heavy(cluster, argv):
    proc = _python(f"""
        import sys
        from ceo import cli
        try:
            cli.main({argv!r})
        except SystemExit:
            pass
        print("HEAVY", sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))
    """)
    assert "HEAVY []" in proc.stdout, proc.stdout + proc.stderr


def test_plugins_lists_sources_and_reports_broken_ones(cluster, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "broken.py").write_text("raise ImportError('missing dependency frobnicate')\n")
    (site / "extra.py").write_text(textwrap.dedent("""
        from ceo.plugin import Plugin
        plugin = Plugin("extra", "An extra plugin")
        @plugin.verb("hi", "Say hi", role="any")
        def hi(ctx):
            return {"hi": ctx.caller}
    """))
    cfg = tmp_path / "ceo.ini"
    cfg.write_text(f"[plugins]\nsite_dir = {site}\n")
    proc = ceo(cluster, "ofstaff", "-c", str(cfg), "plugins")
    assert proc.returncode == 0
    assert "doctor       bundled" in proc.stdout
    assert f"extra        site dir {site}" in proc.stdout
    assert "broken" in proc.stdout and "BROKEN: ImportError: missing dependency frobnicate" in proc.stdout
    # the others keep working
    assert ceo(cluster, "ofstaff", "-c", str(cfg), "doctor", "ping").returncode == 0


def test_entry_point_plugins_are_found(cluster, tmp_path):
    entry_point_plugin(tmp_path, other_groups="[console_scripts]\nfoo = bar:baz\n\n")
    proc = _python("from ceo import cli; cli.main(['plugins'])", PYTHONPATH=str(tmp_path))
    assert "thirdparty   entry point in thirdparty_ceo-1.0.dist-info" in proc.stdout, proc.stdout + proc.stderr


PLUGIN_FILE = """
    import os, sys
    from ceo.plugin import Plugin
    with open({marker!r}, "a") as f:  # who imported this file: ceo or ceo-helper
        f.write(os.path.basename(sys.argv[0]) + "\\n")
    plugin = Plugin({plugin!r}, "from {path}")
    @plugin.verb({verb!r}, "where it ran", role="any", allow=("any",))
    def where(ctx):
        return {{"host": ctx.host}}
"""


def plugin_file(path: Path, plugin: str, verb: str = "where") -> Path:
    text = PLUGIN_FILE.format(marker=str(path) + ".seen", plugin=plugin, path=path, verb=verb)
    path.write_text(textwrap.dedent(text))
    path.chmod(0o644)
    return path


def importers(path: Path) -> set[str]:
    seen = Path(str(path) + ".seen")
    return set(seen.read_text().split()) if seen.exists() else set()


def test_the_first_source_wins_when_two_declare_the_same_plugin(cluster, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    same_file = plugin_file(site / "doctor.py", "doctor", "impostor")  # a bundled plugin's file name
    other_file = plugin_file(site / "zzdoctor.py", "doctor", "impostor")  # another name, the same plugin
    site_dupe = plugin_file(site / "dupe.py", "dupe", "fromsite")  # an entry point's name too
    entry_dupe = plugin_file(tmp_path / "dupe_ceo.py", "dupe", "fromentry")
    entry_lists = plugin_file(tmp_path / "lists_ceo.py", "lists", "impostor")  # a bundled one's name
    dist = tmp_path / "dupe_ceo-1.0.dist-info"
    dist.mkdir()
    (dist / "entry_points.txt").write_text("[ceo.plugins]\ndupe = dupe_ceo\nlists = lists_ceo\n")
    cfg = tmp_path / "ceo.ini"
    cfg.write_text(f"[plugins]\nsite_dir = {site}\n")
    proc = _python(f"from ceo import cli; cli.main(['-c', {str(cfg)!r}, 'plugins'])", PYTHONPATH=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[0]: line for line in proc.stdout.splitlines()}
    assert lines["doctor"].startswith(f"{'doctor':12} {'bundled':30} ") and "impostor" not in lines["doctor"]
    assert lines["lists"].startswith(f"{'lists':12} {'bundled':30} ") and "impostor" not in lines["lists"]
    assert lines["dupe"] == f"{'dupe':12} entry point in dupe_ceo-1.0.dist-info fromentry"
    assert lines["zzdoctor"] == f"{'zzdoctor':12} {'site dir ' + str(site):30} BROKEN: declares plugin 'doctor', " \
                                "already found (bundled)"
    # A file whose name was taken is not even imported; one of another name must be, to learn its plugin.
    assert (importers(same_file), importers(site_dupe), importers(entry_lists)) == (set(), set(), set())
    assert importers(other_file) == importers(entry_dupe) == {"-c"}  # python -c
    # and the bundled doctor is the one that runs
    proc = ceo(cluster, "ofstaff", "-c", str(cfg), "doctor", "ping")
    assert proc.returncode == 0, proc.stderr


@pytest.fixture
def helper_site(cluster, tmp_path):
    """A site dir of this test's own for the client and every helper of the sandbox: the sandbox's
    /etc/csc/ceo.ini (the one the helpers read through sudo) names it until the test ends."""
    ini = Path("/etc/csc/ceo.ini")
    original = ini.read_text()
    site = tmp_path / "site"
    site.mkdir()
    site.chmod(0o755)
    changed, count = re.subn(r"(?m)^site_dir = .*$", f"site_dir = {site}", original)
    assert count == 1
    ini.write_text(changed)
    try:
        yield site
    finally:
        ini.write_text(original)


def test_a_site_plugin_loads_in_the_helper(cluster, helper_site):
    ok = plugin_file(helper_site / "okplug.py", "okplug")
    proc = ceo(cluster, "ofstaff", "okplug", "where", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["result"] == {"host": "phosphoric-acid.csclub.internal"}
    assert importers(ok) == {"ceo", "ceo-helper"}


def test_a_verb_imports_only_its_own_plugin_in_the_client_and_the_helper(cluster, helper_site):
    other = plugin_file(helper_site / "okplug.py", "okplug")
    proc = ceo(cluster, "ofstaff", "doctor", "ping")  # a bundled plugin's verb: nothing else is imported
    assert proc.returncode == 0, proc.stderr
    assert importers(other) == set()
    proc = ceo(cluster, "ofstaff", "--help")  # the list of plugins needs every one of them
    assert proc.returncode == 0 and "okplug" in proc.stdout, proc.stderr
    assert importers(other) == {"ceo"}


LAZY = """
    import json, sys
    from ceo.discovery import discover
    reg = discover({site!r}, lazy=True)
    asked = [[p, v, reg.verb(p, v) is not None] for p, v in {asks!r}]
    print(json.dumps({{"asked": asked, "sources": {{n: p.source for n, p in reg.plugins.items()}},
                      "broken": sorted(reg.broken), "imported": sorted(m for m in sys.modules
                                                                      if m.split(".")[0] in ("plugins", "thirdparty_ceo"))}}))
"""


def lazy(tmp_path, asks, site=None) -> dict:
    proc = _python(LAZY.format(site=str(site) if site else None, asks=asks), PYTHONPATH=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def entry_point_plugin(tmp_path, other_groups=""):
    """A third-party plugin module and its dist-info, as pip installs one (other groups first)."""
    (tmp_path / "thirdparty_ceo.py").write_text(textwrap.dedent("""
        from ceo.plugin import Plugin
        plugin = Plugin("thirdparty", "From an entry point")
        @plugin.verb("x", "x", role="any")
        def x(ctx):
            return {}
    """))
    dist = tmp_path / "thirdparty_ceo-1.0.dist-info"
    dist.mkdir()
    (dist / "entry_points.txt").write_text(f"{other_groups}[ceo.plugins]\nthirdparty = thirdparty_ceo\n")


def test_a_lazy_registry_imports_a_bundled_plugin_alone_and_refuses_undeclared_verbs(tmp_path):
    entry_point_plugin(tmp_path)
    got = lazy(tmp_path, [("doctor", "ping"), ("doctor", "nosuch"), ("doctor", "check")])
    assert got["asked"] == [["doctor", "ping", True], ["doctor", "nosuch", False], ["doctor", "check", True]]
    assert got["imported"] == ["plugins", "plugins.doctor"] and list(got["sources"]) == ["doctor"]


def test_a_lazy_registry_finds_entry_point_and_site_plugins_as_a_full_one_does(tmp_path):
    entry_point_plugin(tmp_path)
    site = tmp_path / "site"
    site.mkdir()
    plugin_file(site / "zzdoctor.py", "doctor", "impostor")  # another name, a bundled plugin
    plugin_file(site / "sited.py", "sited")
    got = lazy(tmp_path, [("thirdparty", "x"), ("doctor", "impostor"), ("doctor", "ping"), ("sited", "where"),
                          ("nosuch", "x"), ("thirdparty", "nosuch")], site)
    assert got["asked"] == [["thirdparty", "x", True], ["doctor", "impostor", False], ["doctor", "ping", True],
                            ["sited", "where", True], ["nosuch", "x", False], ["thirdparty", "nosuch", False]]
    assert got["sources"]["thirdparty"] == "entry point in thirdparty_ceo-1.0.dist-info"
    assert got["sources"]["doctor"] == "bundled" and got["sources"]["sited"] == f"site dir {site}"
    assert "zzdoctor" in got["broken"]  # declares doctor, already found: exactly as with everything imported
    assert "thirdparty_ceo" in got["imported"]


@pytest.mark.parametrize("change", ["owned by a user", "group-writable", "world-writable"])
def test_the_helper_loads_no_site_file_that_non_root_could_change(cluster, helper_site, change):
    ok = plugin_file(helper_site / "okplug.py", "okplug")
    bad = plugin_file(helper_site / "badplug.py", "badplug")
    if change == "owned by a user":
        os.chown(bad, pwd.getpwnam("regular1").pw_uid, -1)
    else:
        bad.chmod(0o664 if change == "group-writable" else 0o646)
    proc = ceo(cluster, "ofstaff", "badplug", "where")
    assert (proc.returncode, proc.stderr) == (2, "ceo: unknown verb badplug.where\n")
    assert ceo(cluster, "ofstaff", "okplug", "where").returncode == 0  # the others still load
    # the helper (root) never ran the file; the client (the user's own process) did
    assert (importers(bad), importers(ok)) == ({"ceo"}, {"ceo", "ceo-helper"})


@pytest.mark.parametrize("change", ["owned by a user", "group-writable"])
def test_the_helper_loads_nothing_from_a_site_dir_non_root_could_change(cluster, helper_site, change):
    ok = plugin_file(helper_site / "okplug.py", "okplug")
    if change == "owned by a user":
        os.chown(helper_site, pwd.getpwnam("regular1").pw_uid, -1)
    else:
        helper_site.chmod(0o775)
    proc = ceo(cluster, "ofstaff", "okplug", "where")
    assert (proc.returncode, proc.stderr) == (2, "ceo: unknown verb okplug.where\n")
    assert importers(ok) == {"ceo"}


def test_version():
    from ceo import __version__
    proc = subprocess.run([str(REPO / ".venv" / "bin" / "ceo"), "--version"], capture_output=True, text=True)
    assert (proc.returncode, proc.stdout) == (0, f"ceo {__version__}\n")


@pytest.mark.parametrize("user, code", [("regular2", 0), ("clubrep1", 0), ("regular1", 3), ("ofstaff", 3)])
def test_club_member_role(cluster, user, code):
    assert ceo(cluster, user, "testkit", "clubonly", "club1").returncode == code


@pytest.mark.parametrize("user, code", [("regular1", 0), ("ofstaff", 0), ("clubrep1", 3)])
def test_member_role_needs_a_current_term(cluster, user, code):
    proc = ceo(cluster, user, "testkit", "membersonly")
    assert proc.returncode == code
    if code == 3:
        assert "needs a current membership" in proc.stderr


def test_best_effort_step_warns_and_keeps_the_rest(cluster):
    name = f"be{uuid.uuid4().hex[:8]}"
    try:
        proc = ceo(cluster, "ofstaff", "testkit", "multistep", name, "--warn", "--json")
        assert proc.returncode == 0, proc.stderr
        statuses = [s["status"] for s in json.loads(proc.stdout)["steps"]]
        assert statuses == ["done", "done", "done", "warning"]
        assert ldap_has(cluster, name) and Path(f"/users/{name}").is_dir()
    finally:
        remove_entry_and_directory(cluster, name)


def test_unknown_or_changed_host_key_is_refused(cluster, tmp_path):
    cfg = tmp_path / "ceo.ini"
    known = tmp_path / "known_hosts"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    known.write_text("phosphoric-acid.csclub.internal " + (tmp_path / "k.pub").read_text().rsplit(" ", 1)[0] + "\n")
    cfg.write_text(f"[ssh]\nknown_hosts = {known}\n")
    proc = ceo(cluster, "ofstaff", "-c", str(cfg), "doctor", "ping")
    assert proc.returncode == 1 and "does not match the known one" in proc.stderr
    known.write_text("")
    proc = ceo(cluster, "ofstaff", "-c", str(cfg), "doctor", "ping")
    assert proc.returncode == 1 and "is not known" in proc.stderr


def test_inventory_from_the_environment(cluster, tmp_path):
    inv = tmp_path / "hosts.ini"
    inv.write_text("[mail]\nmail.csclub.internal ansible_host=127.0.0.9\n")
    proc = subprocess.run(
        ["ceo", "doctor", "ping"], capture_output=True, text=True, env=cluster.env("ofstaff", CEO_INVENTORY=str(inv)))
    assert proc.returncode == 1 and "127.0.0.9" in proc.stderr


def test_shell_completion_of_plugins_and_verbs(cluster):
    def complete(line):
        env = cluster.env("ofstaff", _ARGCOMPLETE="1", _ARGCOMPLETE_IFS="\n", COMP_LINE=line,
                          COMP_POINT=str(len(line)), COMP_TYPE="9")
        return subprocess.run(["bash", "-c", "ceo 8>&1 9>/dev/null"], capture_output=True, text=True,
                              env=env).stdout.split()
    assert "doctor" in complete("ceo do")
    assert {"subscribe", "unsubscribe"} <= set(complete("ceo lists "))



# --- undo that fails, across hosts ---------------------------------------------------------------

def test_an_undo_that_fails_leaves_partly_done_exit_4(cluster):
    # Steps 1 and 2 on phosphoric-acid, step 3 fails on coffee. Step 2 (--pin) also put a child
    # entry under step 1's entry, so slapd refuses step 1's undo: the client must say so, exit 4.
    name = f"pd{uuid.uuid4().hex[:8]}"
    before = len(audit_lines(cluster))
    try:
        proc = ceo(cluster, "ofstaff", "testkit", "multistep", name, "--pin", "--fail-at", "3", "--json")
        assert proc.returncode == 4, proc.stderr
        assert proc.stderr == (f"ceo: the databases step: injected failure on the databases host; "
                               f"could not undo: LDAP entry cn={name}\n")
        doc = json.loads(proc.stdout)
        assert (doc["ok"], doc["error"]["name"], doc["error"]["exit"]) == (False, "PartlyDone", 4)
        assert doc["error"]["details"] == {"not_undone": [f"LDAP entry cn={name}"]}
        pa, coffee = "phosphoric-acid.csclub.internal", "coffee.csclub.internal"
        assert [(s["host"], s["status"], s["step"]) for s in doc["steps"]] == [
            (pa, "done", "ldap-entry"), (pa, "done", "directory"), (coffee, "failed", "the databases step"),
            (pa, "undone", f"made directory /users/{name}"), (pa, "undo-failed", f"added LDAP entry cn={name}"),
            ("", "undo-failed", f"LDAP entry cn={name}")]
        assert "notAllowedOnNonLeaf" in doc["steps"][4]["message"]
        # What is really left: the directory was undone, the entry (and its child) could not be.
        assert not Path(f"/users/{name}").exists()
        base = f"cn={name},ou=Group,{cluster.base_dn}"
        assert ldap_subtree(cluster, name) == [f"cn=pin,{base}", base]
        assert [(r["verb"], r["outcome"]) for r in audit_lines(cluster)[before:]] == [
            ("mkentry", "done"), ("mkdir", "done"), ("explode", "failed"), ("mkdir", "undone"),
            ("mkentry", "partly undone")]
    finally:
        ldap_remove_subtree(cluster, name)
        if Path(f"/users/{name}").exists():
            shutil.rmtree(f"/users/{name}")
        assert ldap_subtree(cluster, name) == [] and not Path(f"/users/{name}").exists()


# --- an unexpected exception on the helper -----------------------------------------------------------

CRASH = ("ceo: internal error in testkit.crash on phosphoric-acid.csclub.internal: KeyError "
         "(details in the helper's log)")
CRASH_DETAIL = "testkit-crash-detail-7f3a"  # the KeyError's text: in the helper's log only


@pytest.mark.parametrize("extra", [[], ["-v"], ["--json"]])
def test_helper_bug_reaches_the_client_as_one_generic_line(cluster, extra):
    proc = ceo(cluster, "ofstaff", "testkit", "crash", *extra)
    assert (proc.returncode, proc.stderr) == (1, CRASH + "\n")
    assert "Traceback" not in proc.stdout and CRASH_DETAIL not in proc.stdout
    if extra == ["--json"]:
        doc = json.loads(proc.stdout)
        assert doc == {"ok": False, "error": {"name": "CeoError", "exit": 1, "message": CRASH[len("ceo: "):]}}
    else:
        assert proc.stdout == ""


def test_helper_bug_traceback_is_in_the_helpers_log_only(cluster, tmp_path):
    inv = inventory_with(tmp_path, ansible_connection="local")
    at = cluster.syslog_offset()
    proc = cluster.run(["ceo", "-i", inv, "testkit", "crash", "-v"], "ofstaff")
    log = cluster.syslog_since(at)
    assert (proc.returncode, proc.stderr, proc.stdout) == (1, CRASH + "\n", "")
    helper = [line for line in log if "ceo-helper[" in line]
    assert any(line.endswith("internal error in testkit.crash:") for line in helper), log
    assert any(line.endswith("Traceback (most recent call last):") for line in helper), log
    assert any(line.endswith(f"KeyError: '{CRASH_DETAIL}'") for line in helper), log
    assert any("testkit.py" in line and "in crash" in line for line in helper), log


# --- global and common options --------------------------------------------------------------------

def test_an_option_value_that_names_the_plugin_is_not_taken_for_it(cluster, tmp_path):
    """`ceo -c whoami whoami`: the config file is named like the plugin; the plugin is the word
    after it, and its default verb is run (it printed the plugin's help)."""
    import shutil
    shutil.copyfile("/etc/csc/ceo.ini", tmp_path / "whoami")
    os.chmod(tmp_path, 0o755), os.chmod(tmp_path / "whoami", 0o644)
    proc = ceo(cluster, "ofstaff", "-c", "whoami", "whoami", "--json", cwd=str(tmp_path))
    assert proc.returncode == 0 and json.loads(proc.stdout)["result"]["caller"] == "ofstaff", proc


def test_ceo_config_from_the_environment(cluster, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text("")  # a config whose known hosts are none: every host key is unknown
    cfg = tmp_path / "ceo.ini"
    cfg.write_text(f"[ssh]\nknown_hosts = {known}\n")
    env = cluster.env("ofstaff", CEO_CONFIG=str(cfg))
    proc = subprocess.run(["ceo", "doctor", "ping"], capture_output=True, text=True, env=env)
    assert proc.returncode == 1 and "is not known" in proc.stderr, proc.stderr
    # -c wins over $CEO_CONFIG
    proc = subprocess.run(["ceo", "-c", "/etc/csc/ceo.ini", "doctor", "ping"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    # a config named by $CEO_CONFIG must exist, like one named by -c
    env["CEO_CONFIG"] = str(tmp_path / "none.ini")
    proc = subprocess.run(["ceo", "doctor", "ping"], capture_output=True, text=True, env=env)
    assert (proc.returncode, proc.stderr) == (2, f"ceo: config {tmp_path / 'none.ini'} does not exist\n")


def test_dry_run_is_check_mode(cluster):
    name = f"dr{uuid.uuid4().hex[:8]}"
    before = len(audit_lines(cluster))
    proc = ceo(cluster, "ctdalek", "testkit", "localsteps", name, "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["check"] is True and [s["status"] for s in doc["steps"]] == ["would", "would", "would"]
    assert not ldap_has(cluster, name) and not Path(f"/users/{name}").exists()
    assert audit_lines(cluster)[before:] == []


def test_verbose_names_the_host_of_each_step(cluster):
    name = f"vb{uuid.uuid4().hex[:8]}"
    quiet = ceo(cluster, "ctdalek", "testkit", "localsteps", name, "--check")
    loud = ceo(cluster, "ctdalek", "testkit", "localsteps", name, "--check", "-v")
    assert (quiet.returncode, loud.returncode) == (0, 0), quiet.stderr + loud.stderr
    steps = [f"~ would add LDAP entry cn={name}", f"~ would make directory /users/{name}", "~ would do the third step"]
    assert quiet.stdout.splitlines() == [*steps, "(check mode: nothing was changed)"]
    assert loud.stdout.splitlines() == [*(f"{s} (phosphoric-acid.csclub.internal)" for s in steps),
                                        "(check mode: nothing was changed)"]


def test_host_picks_the_inventory_host_to_ask(cluster):
    def where(*args):
        proc = ceo(cluster, "ofstaff", "testkit", "whoami", "--json", *args)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)["result"]["host"]  # the helper's own host name
    assert where() == "phosphoric-acid.csclub.internal"  # the inventory's first host
    assert where("--host", "coffee.csclub.internal") == "coffee.csclub.internal"
    assert where("--host", "mail.csclub.internal") == "mail.csclub.internal"
    proc = ceo(cluster, "ofstaff", "testkit", "whoami", "--host", "nowhere.csclub.internal")
    assert (proc.returncode, proc.stderr) == (2, "ceo: no host 'nowhere.csclub.internal' in /etc/csc/hosts.ini\n")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
