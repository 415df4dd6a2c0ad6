"""The sandbox itself: every service real, reachable the way ceo will reach it, and locked down."""

from __future__ import annotations

import json
import mailbox
import os
import pwd
import re
import smtplib
import socket
import time
import uuid
from email.message import EmailMessage

import gssapi
import paramiko
import pytest

from sandbox import topology

HOSTS = ["phosphoric-acid", "coffee", "mail"]
SSH = ["ssh", "-F", "/dev/null", "-o", "GSSAPIAuthentication=yes", "-o", "BatchMode=yes",
       "-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=/etc/ssh/ssh_known_hosts",
       "-o", "LogLevel=ERROR"]


HELLO = json.dumps({"hello": "ceo", "version": "test", "protocol": [1, 1]}) + "\n"


def hello(output: str) -> dict:
    """The helper's answer to our hello: its only output, else something else ran."""
    lines = output.splitlines()
    assert len(lines) == 1, f"expected the helper's hello only, got {output!r}"
    return json.loads(lines[0])


def paramiko_client(cluster, host: str, user: str) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.load_host_keys("/etc/ssh/ssh_known_hosts")
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(cluster.hosts[host], username=user, gss_auth=True, gss_kex=False, gss_deleg_creds=False,
                   gss_trust_dns=False, look_for_keys=False, allow_agent=False, timeout=10)
    return client


# --- SSH: GSSAPI logins get the helper and nothing else ----------------------------------

@pytest.mark.parametrize("host", HOSTS)
def test_openssh_login_runs_only_the_helper(cluster, host, tmp_path):
    marker = tmp_path / "pwned"
    proc = cluster.run(SSH + [f"regular1@{cluster.hosts[host]}", f"touch {marker}; echo shell"], "regular1",
                       input=HELLO)
    assert proc.returncode == 0, proc.stderr
    reply = hello(proc.stdout)
    assert (reply["hello"], reply["caller"], reply["host"]) == ("ceo-helper", "regular1", cluster.hosts[host])
    assert reply["principal"] == f"regular1@{cluster.realm}"  # sshd's record, read by the helper
    assert "shell" not in proc.stdout and not marker.exists()


@pytest.mark.parametrize("host", HOSTS)
def test_paramiko_login_runs_only_the_helper(cluster, as_user, host):
    as_user("ofstaff")
    client = paramiko_client(cluster, host, "ofstaff")
    try:
        stdin, out, _ = client.exec_command("id; cat /etc/shadow")
        stdin.write(HELLO)
        stdin.channel.shutdown_write()
        reply = hello(out.read().decode())
        assert reply["caller"] == "ofstaff" and reply["host"] == cluster.hosts[host]
        assert reply["principal"] == f"ofstaff@{cluster.realm}"
        assert out.channel.recv_exit_status() == 0
        # An interactive shell is not on offer either: no pty, and the "shell" is the helper.
        chan = client.get_transport().open_session()
        with pytest.raises(paramiko.SSHException):
            chan.get_pty()
        chan = client.get_transport().open_session()
        chan.invoke_shell()
        chan.sendall(HELLO.encode())
        chan.shutdown_write()
        assert hello(chan.makefile().read().decode())["caller"] == "ofstaff"
        # No port forwarding.
        with pytest.raises(paramiko.ChannelException):
            client.get_transport().open_channel("direct-tcpip", (cluster.addrs["coffee"], 5432), ("127.0.0.1", 0))
    finally:
        client.close()


def test_ldap_only_user_logs_in_and_locked_user_does_not(cluster):
    passwd = open("/etc/passwd").read()
    assert "regular2:" not in passwd and "expired1:" not in passwd  # they exist only in LDAP
    assert cluster.run(["getent", "passwd", "regular2"]).stdout.startswith("regular2:x:20004:20004:")
    ok = cluster.run(SSH + [f"regular2@{cluster.hosts['coffee']}"], "regular2", input=HELLO)
    assert ok.returncode == 0, ok.stderr
    reply = hello(ok.stdout)
    assert (reply["caller"], reply["principal"]) == ("regular2", f"regular2@{cluster.realm}")
    locked = cluster.run(SSH + [f"expired1@{cluster.hosts['coffee']}"], "expired1", input=HELLO)
    assert locked.returncode == 255 and locked.stdout == ""
    assert "Permission denied (gssapi-keyex,gssapi-with-mic)." in locked.stderr


def test_no_ticket_is_refused(cluster, as_user):
    proc = cluster.run(SSH + [f"regular1@{cluster.hosts['mail']}"], None)
    assert proc.returncode == 255 and proc.stdout == ""
    assert "Permission denied (gssapi-keyex,gssapi-with-mic)." in proc.stderr, proc.stderr
    as_user(None)
    with pytest.raises(gssapi.exceptions.GSSError):
        paramiko_client(cluster, "mail", "regular1")


def sshd_log_after(cluster, host: str, offset: int) -> str:
    """What `host`'s sshd logged since `offset` (a byte position taken before a login)."""
    with open(cluster.state / "hosts" / host / "sshd.log", "rb") as log:
        log.seek(offset)
        return log.read().decode("utf-8", "replace")


def sshd_log_size(cluster, host: str) -> int:
    return (cluster.state / "hosts" / host / "sshd.log").stat().st_size


def test_principal_from_another_realm_is_refused(cluster):
    klist = cluster.run(["klist"], "ctdalek@other").stdout
    assert "ctdalek@OTHER.INTERNAL" in klist
    offset = sshd_log_size(cluster, "coffee")
    proc = cluster.run(SSH + [f"ctdalek@{cluster.hosts['coffee']}"], "ctdalek@other", input=HELLO)
    assert proc.returncode == 255 and proc.stdout == ""
    # The cross-realm ticket was issued, so it is sshd's realm check that refused it.
    assert f"krbtgt/{cluster.realm}@OTHER.INTERNAL" in cluster.run(["klist"], "ctdalek@other").stdout
    log = sshd_log_after(cluster, "coffee", offset)
    assert "Failed gssapi-with-mic for ctdalek" in log and "Accepted gssapi-with-mic" not in log


@pytest.mark.parametrize("account", ["regular1", "ctdalek"])
def test_foreign_principal_that_sshd_accepts_is_refused_by_the_helper(cluster, account):
    """A member's ~/.k5login (theirs to write) may let a foreign principal in through sshd
    (krb5_kuserok); the helper's own check of sshd's authentication record (SSH_USER_AUTH) must
    still refuse it: as another member, and as the account of the same name in our realm."""
    member = pwd.getpwnam(account)
    k5login = f"{member.pw_dir}/.k5login"
    assert not os.path.lexists(k5login)
    try:
        # Written as the member could: their own file in their own home.
        with open(k5login, "x") as f:
            f.write("ctdalek@OTHER.INTERNAL\n")
        os.chown(k5login, member.pw_uid, member.pw_gid)
        offset = sshd_log_size(cluster, "coffee")
        proc = cluster.run(SSH + [f"{account}@{cluster.hosts['coffee']}"], "ctdalek@other", input=HELLO)
        log = sshd_log_after(cluster, "coffee", offset)
        # sshd let the foreign principal in ...
        assert re.search(rf"^Accepted gssapi-with-mic for {account} from \S+ port \d+ "
                         r"ssh2: ctdalek@OTHER\.INTERNAL\r?$", log, re.M), log
        # ... and the helper, not sshd, refused it before answering the hello.
        assert proc.returncode == 3, (proc.stdout, proc.stderr)
        error = hello(proc.stdout)["error"]
        assert error["name"] == "NotPermitted" and error["exit"] == 3
        assert error["message"] == f"principal ctdalek@OTHER.INTERNAL is not {account}@{cluster.realm}"
    finally:
        if os.path.lexists(k5login):
            os.unlink(k5login)
    assert not os.path.lexists(k5login)
    # The member's own login is unaffected once the file is gone.
    own = cluster.run(SSH + [f"{account}@{cluster.hosts['coffee']}"], account, input=HELLO)
    assert own.returncode == 0, own.stderr
    assert hello(own.stdout)["principal"] == f"{account}@{cluster.realm}"


def test_another_users_ticket_does_not_open_their_account(cluster):
    offset = sshd_log_size(cluster, "coffee")
    proc = cluster.run(SSH + [f"ctdalek@{cluster.hosts['coffee']}"], "regular1", input=HELLO)
    assert proc.returncode == 255 and proc.stdout == ""
    assert "Permission denied (gssapi-keyex,gssapi-with-mic)." in proc.stderr, proc.stderr
    log = sshd_log_after(cluster, "coffee", offset)
    assert "Failed gssapi-with-mic for ctdalek" in log and "Accepted gssapi-with-mic" not in log, log


# --- NSS and sudo from LDAP ---------------------------------------------------------------

def test_groups_and_sudo_rules_resolve_from_ldap(cluster):
    groups = cluster.run(["id", "-nG", "ctdalek"]).stdout.split()
    assert {"syscom", "office", "staff", "adm", "src"} <= set(groups)
    assert "club1" in cluster.run(["id", "-nG", "regular2"]).stdout.split()
    assert "(ALL : ALL) ALL" in cluster.run(["sudo", "-l", "-U", "ctdalek"]).stdout
    regular = cluster.run(["sudo", "-l", "-U", "regular1"]).stdout
    assert "(ALL : ALL) ALL" not in regular and "ceo-helper" in regular


def login_as(uid: str, *argv) -> list[str]:
    """argv run as uid's own process: its uid, primary group and groups from NSS."""
    pw = pwd.getpwnam(uid)
    return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", *argv]


def test_sudo_applies_sudo_rules_from_ldap_through_sssd(cluster):
    # The seeded rule cn=%club1 (ou=SUDOers) is in no file: sudo has it from sssd.
    assert "(club1) NOPASSWD: ALL" in cluster.run(["sudo", "-l", "-U", "regular2"]).stdout
    member = cluster.run(login_as("regular2", "sudo", "-n", "-u", "club1", "id", "-un"))
    assert (member.returncode, member.stdout.strip()) == (0, "club1"), member.stderr
    other = cluster.run(login_as("regular1", "sudo", "-n", "-u", "club1", "id", "-un"))
    assert other.returncode == 1 and "a password is required" in other.stderr, other


def test_a_sudo_rule_in_ldap_does_not_take_the_helper_away(cluster):
    # sudo's last matching rule wins: an LDAP rule that asks regular1 for a password for
    # everything must not override the file rule that runs the helper without one
    # (`sudoers: sss files`: the files come last).
    ldapi = ["-Q", "-Y", "EXTERNAL", "-H", "ldapi://" + str(cluster.state / "ldap" / "ldapi").replace("/", "%2F")]
    dn = "cn=password-for-everything,ou=SUDOers," + cluster.base_dn
    rule = (f"dn: {dn}\nobjectClass: sudoRole\ncn: password-for-everything\nsudoUser: regular1\n"
            "sudoHost: ALL\nsudoCommand: ALL\nsudoRunAsUser: ALL\n")
    assert cluster.run(["ldapadd", *ldapi], input=rule).returncode == 0
    try:
        # sssd sees a new rule within about a second; up to ~6 s after slapd was restarted
        # (failure-injection tests do that) while sssd was asked for something.
        for _ in range(300):
            if "password-for-everything" in cluster.run(["sudo", "-l", "-U", "regular1", "-ll"]).stdout:
                break
            time.sleep(0.1)
        else:
            pytest.fail("sssd never served the new rule")
        # Run, not `sudo -l`: -l reports the command allowed whichever rule wins.
        ran = cluster.run(login_as("regular1", "sudo", "-n", str(topology.HELPER)), input="")
        assert ran.returncode == 0 and "password" not in ran.stderr, ran
    finally:
        cluster.run(["ldapdelete", *ldapi, dn])


# --- LDAP -----------------------------------------------------------------------------------

def test_ldap_gssapi_bind_sees_seed_data(cluster, as_user):
    import ldap3
    as_user("regular1")
    conn = ldap3.Connection(ldap3.Server(f"ldap://{cluster.hosts['phosphoric-acid']}"),
                            authentication=ldap3.SASL, sasl_mechanism=ldap3.KERBEROS, auto_bind=True)
    assert conn.extend.standard.who_am_i().lower() == f"dn:uid=regular1,ou=people,{cluster.base_dn}"
    conn.search(f"ou=Group,{cluster.base_dn}", "(cn=syscom)", attributes=["uniqueMember", "objectClass"])
    entry = conn.entries[0]
    assert f"uid=ctdalek,ou=People,{cluster.base_dn}" in entry.uniqueMember.values
    assert {"group", "posixGroup"} <= set(entry.objectClass.values)
    conn.search(f"ou=People,{cluster.base_dn}", "(&(objectClass=member)(uid=regular1))",
                attributes=["term", "program"])
    assert len(conn.entries[0].term.values) == 3
    # Readers do not write.
    assert not conn.modify(f"uid=regular1,ou=People,{cluster.base_dn}",
                           {"term": [(ldap3.MODIFY_ADD, ["w2099"])]})
    assert conn.result["description"] == "insufficientAccessRights"
    conn.unbind()


def test_ldap_schema_carries_csc_oids(cluster):
    import ldap3
    conn = ldap3.Connection(ldap3.Server(f"ldapi://{str(cluster.state / 'ldap' / 'ldapi').replace('/', '%2F')}",
                                         get_info=ldap3.SCHEMA),
                            authentication=ldap3.SASL, sasl_mechanism=ldap3.EXTERNAL, sasl_credentials="",
                            auto_bind=True)
    schema = conn.server.schema
    assert schema.attribute_types["term"].oid == "1.3.6.1.4.1.27934.1.1.1"
    assert schema.attribute_types["nonMemberTerm"].oid == "1.3.6.1.4.1.27934.1.1.5"
    assert schema.attribute_types["position"].oid == "1.3.6.1.4.1.27934.1.1.4"
    assert schema.object_classes["member"].oid == "1.3.6.1.4.1.27934.1.2.1"
    assert schema.object_classes["club"].oid == "1.3.6.1.4.1.27934.1.2.2"
    assert "sudoRole" in schema.object_classes
    assert conn.extend.standard.who_am_i() == "dn:gidNumber=0+uidNumber=0,cn=peercred,cn=external,cn=auth"
    conn.unbind()


# --- databases --------------------------------------------------------------------------------

def test_postgresql_root_only_over_coffees_socket(cluster):
    import psycopg2
    with psycopg2.connect(host="/run/postgresql", user="postgres", dbname="postgres") as conn:
        with conn.cursor() as cur:
            cur.execute("select current_user, inet_server_addr()")
            assert cur.fetchone() == ("postgres", None)
    with pytest.raises(psycopg2.OperationalError, match="password"):
        psycopg2.connect(host=cluster.hosts["coffee"], user="postgres", dbname="postgres", connect_timeout=3)
    with pytest.raises(psycopg2.OperationalError, match="Connection refused"):
        psycopg2.connect(host=cluster.addrs["phosphoric-acid"], user="postgres", dbname="postgres", connect_timeout=3)


def test_mariadb_root_only_over_coffees_socket(cluster):
    import pymysql
    conn = pymysql.connect(unix_socket="/run/mysqld/mysqld.sock", user="root")
    with conn.cursor() as cur:
        cur.execute("select current_user()")
        assert cur.fetchone()[0] == "root@localhost"
    conn.close()
    with pytest.raises(pymysql.err.OperationalError) as denied:
        pymysql.connect(host=cluster.addrs["coffee"], user="root", connect_timeout=3)
    # Refused by the server itself (ER_HOST_NOT_PRIVILEGED: root is root@localhost only), not "cannot connect".
    assert denied.value.args[0] == 1130, denied.value.args
    with pytest.raises(pymysql.err.OperationalError) as refused:
        pymysql.connect(host=cluster.addrs["phosphoric-acid"], user="root", connect_timeout=3)
    assert refused.value.args[0] == 2003


# --- mail -------------------------------------------------------------------------------------

def test_mailman_rest_lists_the_five_lists(cluster):
    from mailmanclient import Client
    client = Client(f"http://{cluster.addrs['mail']}:8001/3.1", "restadmin", "restpass")
    names = {ml.list_name for ml in client.lists}
    assert {"csc-general", "syscom", "syscom-alerts", "exec", "ceo"} <= names
    from urllib.error import HTTPError
    with pytest.raises(HTTPError, match="401"):
        _ = Client(f"http://{cluster.addrs['mail']}:8001/3.1", "restadmin", "wrong").lists


def test_smtp_sink_keeps_messages(cluster):
    msg = EmailMessage()
    subject = f"sandbox test {uuid.uuid4()}"
    msg["From"], msg["To"], msg["Subject"] = "ceo@csclub.internal", "regular1@csclub.internal", subject
    msg.set_content("hello")
    with smtplib.SMTP(cluster.hosts["mail"], 25, timeout=5) as smtp:
        smtp.send_message(msg)
    box = mailbox.Maildir(cluster.state / "mail" / "sink", create=False)
    assert any(m["Subject"] == subject for m in box)


def test_services_listen_on_their_own_host_only(cluster):
    def listening(addr, port):
        with socket.socket() as s:
            s.settimeout(1)
            return s.connect_ex((addr, port)) == 0
    a = cluster.addrs
    assert listening(a["phosphoric-acid"], 389) and not listening(a["coffee"], 389)
    assert listening(a["coffee"], 5432) and not listening(a["mail"], 5432)
    assert listening(a["mail"], 8001) and not listening(a["phosphoric-acid"], 8001)
    assert not listening("127.0.0.1", 22)
