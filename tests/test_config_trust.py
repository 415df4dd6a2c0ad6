"""Config split by trust: /etc/csc/ceo.ini is the client's (world-readable, nothing secret);
/etc/csc/ceo-helper.ini is the helper's (root only: the Mailman REST password, the admin
principal and keytabs). Proven against the sandbox: what a member can read as their own uid,
what the helper refuses to start on (through sudo over SSH, and in local mode), and that
doctor and the lists verbs still reach Mailman through the helper.
"""

from __future__ import annotations

import configparser
import json
import os
import pwd
import stat
import subprocess
import uuid
from pathlib import Path

import paramiko
import pytest

from sandbox import topology

REPO = Path(__file__).resolve().parent.parent
CEO_INI, HELPER_INI = Path("/etc/csc/ceo.ini"), Path("/etc/csc/ceo-helper.ini")
SECRET = topology.MAILMAN_PASS
MAIL = "mail.csclub.internal"


def as_member(cluster, uid: str, code: str) -> subprocess.CompletedProcess:
    """Python code run with a member's uid, gid and no other groups (what their shell could do)."""
    pw = pwd.getpwnam(uid)
    return cluster.run(["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups",
                        str(REPO / ".venv" / "bin" / "python"), "-c", code], uid)


def inventory_local(tmp_path) -> str:
    lines = [line + (" ansible_connection=local" if "ansible_host=" in line else "")
             for line in (REPO / "hosts.ini").read_text().splitlines()]
    path = tmp_path / "hosts-local.ini"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def local_helper(cluster, **env) -> subprocess.CompletedProcess:
    """ceo-helper in local mode (as root, as cron would run it), sent a hello."""
    hello = json.dumps({"hello": "ceo", "version": "0-test", "protocol": [1, 1]}) + "\n"
    return subprocess.run([str(topology.HELPER)], input=hello, capture_output=True, text=True, timeout=60,
                          env={**cluster.env(None), "CEO_HOST": MAIL, **env})


def assert_refused(stdout: str, status: int, path: str):
    """One error line naming the file, exit 1, and nothing served after it (no hello)."""
    lines = stdout.splitlines()
    assert len(lines) == 1, stdout
    reply = json.loads(lines[0])
    assert set(reply) == {"error"}, reply
    err = reply["error"]
    assert (err["name"], err["exit"], status) == ("CeoError", 1, 1), reply
    assert path in err["message"] and "\n" not in err["message"], err
    assert SECRET not in stdout
    return err["message"]


# --- what a member can read -----------------------------------------------------------------

def test_a_member_reads_no_secret_from_etc_csc(cluster):
    # As regular1: every file under /etc/csc they can open must hold no password option and
    # not the Mailman password; ceo-helper.ini must be one they cannot open.
    code = f"""if True:
        import configparser, json, os
        readable, denied = {{}}, []
        for d, _, files in os.walk("/etc/csc"):
            for f in files:
                p = os.path.join(d, f)
                try:
                    with open(p, "rb") as fh:
                        readable[p] = fh.read().decode("utf-8", "replace")
                except PermissionError:
                    denied.append(p)
        print(json.dumps({{"readable": readable, "denied": sorted(denied)}}))
    """
    proc = as_member(cluster, "regular1", code)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    for path, text in seen["readable"].items():
        assert SECRET not in text, f"{path} holds the Mailman password"
    assert str(CEO_INI) in seen["readable"]  # the client's config stays readable: the client needs it
    assert str(HELPER_INI) in seen["denied"], seen["denied"]
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(seen["readable"][str(CEO_INI)])
    assert not [(s, k) for s in parser.sections() for k in parser.options(s) if "password" in k]


def test_helper_ini_is_root_only_and_holds_the_credentials(cluster):
    st = os.stat(HELPER_INI, follow_symlinks=False)
    assert stat.S_ISREG(st.st_mode) and (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o600)
    assert stat.S_IMODE(os.stat(CEO_INI).st_mode) == 0o644
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(HELPER_INI)
    assert parser.get("mailman", "password") == SECRET
    assert parser.get("kerberos", "admin_keytab") == "/etc/csc/ceod-admin.keytab"
    proc = as_member(cluster, "regular1", f"open({str(HELPER_INI)!r})")
    assert proc.returncode == 1 and proc.stderr.strip().endswith(f"PermissionError: [Errno 13] Permission denied: "
                                                                f"'{HELPER_INI}'"), proc.stderr


def test_the_clients_config_holds_no_mailman_credentials(cluster):
    # What `ceo` itself loads (its default config path) has no Mailman user or password, even
    # run by root (who could read the helper's file: the client never does). As root because a
    # checkout in a folder only root can enter is not importable by a member.
    code = """if True:
        from ceo.config import Config, client_paths
        c = Config.load(client_paths(None, None)[0])
        print(repr((c.get("mailman", "user"), c.get("mailman", "password"))))
    """
    proc = cluster.run([str(REPO / ".venv" / "bin" / "python"), "-c", code], "regular1")
    assert (proc.returncode, proc.stdout) == (0, "(None, None)\n"), proc.stderr


# --- the helper refuses an unsafe helper config ---------------------------------------------

UNSAFE = {"group-readable": 0o640, "other-readable": 0o604, "group-writable": 0o620,
          "other-writable": 0o602, "owned by a member": 0o600}


def make_unsafe(path: Path, change: str):
    path.chmod(UNSAFE[change])
    if change == "owned by a member":
        os.chown(path, pwd.getpwnam("regular1").pw_uid, -1)


@pytest.fixture
def sandbox_helper_ini():
    """The sandbox's own /etc/csc/ceo-helper.ini, put back as it was (contents, owner, mode)."""
    st, text = os.stat(HELPER_INI), HELPER_INI.read_bytes()
    yield HELPER_INI
    HELPER_INI.write_bytes(text)
    os.chown(HELPER_INI, st.st_uid, st.st_gid)
    HELPER_INI.chmod(stat.S_IMODE(st.st_mode))
    after = os.stat(HELPER_INI)
    assert (after.st_uid, after.st_gid, after.st_mode, HELPER_INI.read_bytes()) == (st.st_uid, st.st_gid,
                                                                                   st.st_mode, text)


@pytest.mark.parametrize("change", list(UNSAFE))
def test_helper_through_sudo_refuses_an_unsafe_helper_ini(cluster, as_user, sandbox_helper_ini, change):
    make_unsafe(sandbox_helper_ini, change)
    as_user("ofstaff")
    client = paramiko.SSHClient()
    client.load_host_keys("/etc/ssh/ssh_known_hosts")
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(cluster.hosts["mail"], username="ofstaff", gss_auth=True, gss_kex=False, gss_deleg_creds=False,
                   gss_trust_dns=False, look_for_keys=False, allow_agent=False, timeout=10)
    try:
        channel = client.get_transport().open_session()
        channel.settimeout(20)
        channel.exec_command("ceo-helper")
        channel.sendall(json.dumps({"hello": "ceo", "version": "0-test", "protocol": [1, 1]}).encode() + b"\n")
        channel.shutdown_write()
        out = channel.makefile("rb").read().decode()
        status = channel.recv_exit_status()
    finally:
        client.close()
    assert_refused(out, status, str(HELPER_INI))


@pytest.mark.parametrize("change", list(UNSAFE))
def test_local_helper_refuses_an_unsafe_helper_ini(cluster, tmp_path, change):
    copy = tmp_path / "ceo-helper.ini"
    copy.write_text(f"[mailman]\nuser = {topology.MAILMAN_USER}\npassword = {SECRET}\n")
    make_unsafe(copy, change)
    proc = local_helper(cluster, CEO_HELPER_CONFIG=str(copy))
    assert_refused(proc.stdout, proc.returncode, str(copy))
    assert proc.stderr == ""


def test_helper_refuses_a_client_config_holding_a_secret(cluster, tmp_path):
    # A password left in the world-readable file is a leak: the helper will not run on it.
    cfg = tmp_path / "ceo.ini"
    cfg.write_text(CEO_INI.read_text() + f"\n[postgresql-admin]\npassword = {SECRET}\n")
    proc = local_helper(cluster, CEO_CONFIG=str(cfg))
    message = assert_refused(proc.stdout, proc.returncode, str(cfg))
    assert "[postgresql-admin] password" in message


def test_a_broken_helper_ini_keeps_its_secret_out_of_the_log(cluster, tmp_path):
    # A line the parser cannot read is reported by number only: its text may be a password.
    leaked = f"x{uuid.uuid4().hex}"
    copy = tmp_path / "ceo-helper.ini"
    copy.write_text(f"[mailman]\npassword {leaked}\n")
    copy.chmod(0o600)
    at = cluster.syslog_offset()
    proc = subprocess.run([str(topology.HELPER)], input="", capture_output=True, text=True, timeout=60,
                          env={**cluster.env(None), "CEO_HOST": MAIL, "CEO_HELPER_CONFIG": str(copy)})
    log = cluster.syslog_since(at)
    assert_refused(proc.stdout, proc.returncode, str(copy))
    assert [line for line in log if "ceo-helper[" in line], log  # it did log why
    assert not [line for line in log if leaked in line], log
    assert leaked not in proc.stdout + proc.stderr


# --- what still works ---------------------------------------------------------------------------

def test_doctor_reports_mailman_ok_through_the_helpers(cluster):
    proc = cluster.run(["ceo", "doctor", "--json"], "ofstaff")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    checks = {(c["host"], c["check"]): c for c in json.loads(proc.stdout)["result"]["checks"]}
    assert checks[(MAIL, "mail: mailman")]["ok"] is True, checks
    assert SECRET not in proc.stdout


def test_doctor_needs_no_secret_in_the_clients_config(cluster, tmp_path):
    # A client config with no Mailman credentials at all (local helpers are handed it as
    # $CEO_CONFIG): the helper still has its own, so Mailman checks out.
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(CEO_INI.read_text())
    for key in ("user", "password"):
        parser.remove_option("mailman", key)
    cfg = tmp_path / "ceo.ini"
    with open(cfg, "w") as f:
        parser.write(f)
    proc = cluster.run(["ceo", "-i", inventory_local(tmp_path), "-c", str(cfg), "doctor", "--json"], "ofstaff")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    checks = {(c["host"], c["check"]): c for c in json.loads(proc.stdout)["result"]["checks"]}
    assert checks[(MAIL, "mail: mailman")]["ok"] is True, checks


def test_lists_verbs_still_reach_mailman(cluster):
    from mailmanclient import Client
    mailman = Client(f"http://{cluster.addrs['mail']}:8001/3.1", topology.MAILMAN_USER, SECRET)
    address = f"t{uuid.uuid4().hex[:10]}@example.org"
    mlist = mailman.get_list("ceo@csclub.internal")
    try:
        proc = cluster.run(["ceo", "lists", "list", "--json"], "regular1")
        assert proc.returncode == 0, proc.stderr
        assert {r["list"] for r in json.loads(proc.stdout)["result"]} >= {"csc-general", "ceo"}
        proc = cluster.run(["ceo", "lists", "subscribe", "ceo", address], "ofstaff")
        assert proc.returncode == 0, proc.stderr
        assert address in {m.email for m in mlist.members}
    finally:
        if address in {m.email for m in mlist.members}:
            mlist.unsubscribe(address)
        assert address not in {m.email for m in mlist.members}
