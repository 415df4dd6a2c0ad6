"""The sandbox supervisor: builds the cluster's state from nothing and runs every daemon.

It runs inside its own private mount namespace (`unshare -m`), where an overlay over /etc
and a tmpfs over /run give the hosts their names, NSS from LDAP, sudo rules, Kerberos config
and /etc/csc without changing the machine. Every daemon is a direct child in the foreground,
so stopping is SIGTERM + wait, with no pidfiles. When the supervisor exits the namespace and
everything mounted in it disappear.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from base64 import b64encode
from pathlib import Path

from ceo.handoff import SOCKET_DIR

from . import seed
from .topology import (BASE_DN, DOMAIN, HELPER, HELPERD, HOMES, HOSTS, KDC_ADDR, LDAP_ADDR, LISTS,
                       MAIL_ADDR, MAILMAN_PASS, MAILMAN_PORT, MAILMAN_USER, MAILMAN_VENV,
                       NETNS, OTHER_REALM, PRIVATE, REALM, DB_ADDR, SSSD_ROOT, STATE, VENV, SYSLOG_FILE, SYSLOG_SOCKET, UW_ADDR, UW_BASE, UW_HOST,
                       fqdn, password, seed_people)

FILES = Path(__file__).resolve().parent / "files"
LDAPI = STATE / "ldap" / "ldapi"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
READY_TIMEOUT = 30.0


class ServiceFailed(Exception):
    def __init__(self, service: str, why: str, log: Path | None = None):
        super().__init__(f"{service}: {why}")
        self.service, self.why, self.log = service, why, log


def render(template: str, dest: Path, **values) -> Path:
    text = (FILES / template).read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", str(value))
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text)
    return dest


def run(argv, **kw):
    """Run a setup command; its output goes into the error if it fails."""
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.STDOUT)
    proc = subprocess.run(argv, text=True, **kw)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(map(str, argv))} exited {proc.returncode}:\n{proc.stdout}")
    return proc.stdout


def wait_until(service: str, probe, log: Path | None, proc=None, timeout=READY_TIMEOUT):
    """Poll a protocol-level probe until it answers; fail early if the daemon died."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        if proc is not None and proc.poll() is not None:
            raise ServiceFailed(service, f"exited with status {proc.returncode}", log)
        try:
            if probe():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise ServiceFailed(service, f"not ready after {timeout:.0f} s", log)
        time.sleep(delay)
        delay = min(delay * 1.5, 0.1)


# --- protocol-level probes (also used by `status`) ---------------------------------------

def banner(addr: str, port: int, prefix: bytes) -> bool:
    with socket.create_connection((addr, port), timeout=1) as s:
        return s.recv(64).startswith(prefix)


def probe_ldap() -> bool:
    return subprocess.run(["ldapwhoami", "-Q", "-Y", "EXTERNAL", "-H", ldapi_uri()],
                          capture_output=True).returncode == 0


def probe_kdc() -> bool:
    env = dict(os.environ, KRB5CCNAME="MEMORY:probe")
    return subprocess.run(["kinit", "-k", "-t", str(STATE / "hosts" / "phosphoric-acid" / "krb5.keytab"),
                           f"host/{fqdn('phosphoric-acid')}"], env=env, capture_output=True).returncode == 0


def probe_kadmind() -> bool:
    env = dict(os.environ, KRB5CCNAME="MEMORY:probe")
    return subprocess.run(["kadmin", "-k", "-t", "/etc/csc/ceod-admin.keytab", "-p", f"ceod/admin@{REALM}",
                           "-q", "getprinc K/M"], env=env, capture_output=True).returncode == 0


def probe_nslcd() -> bool:
    return subprocess.run(["getent", "passwd", "ctdalek"], capture_output=True).returncode == 0


def probe_postgres() -> bool:
    return subprocess.run([PG_BIN / "pg_isready", "-q", "-h", "/run/postgresql"]).returncode == 0


def probe_mariadb() -> bool:
    return subprocess.run(["mariadb-admin", "--no-defaults", "--socket=/run/mysqld/mysqld.sock",
                           "--silent", "ping"], capture_output=True).returncode == 0


def probe_uwldap() -> bool:
    """An anonymous read of the university directory's base, as ceo does it."""
    return subprocess.run(["ldapsearch", "-x", "-LLL", "-o", "nettimeout=1", "-H", f"ldap://{UW_ADDR}",
                           "-b", UW_BASE, "-s", "base", "dn"], capture_output=True).returncode == 0


def mailman_request(path: str, data: dict | None = None, method: str | None = None):
    req = urllib.request.Request(f"http://{MAIL_ADDR}:{MAILMAN_PORT}/3.1/{path}", method=method,
                                 data=None if data is None else urllib.parse.urlencode(data).encode())
    token = b64encode(f"{MAILMAN_USER}:{MAILMAN_PASS}".encode()).decode()
    req.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(req, timeout=5) as resp:
        body = resp.read()
        return json.loads(body) if body else None


def probe_mailman() -> bool:
    try:
        return "api_version" in mailman_request("system/versions")
    except (OSError, ValueError):
        return False


def ldapi_uri() -> str:
    return "ldapi://" + str(LDAPI).replace("/", "%2F")


PROBES = {
    "krb5kdc": probe_kdc,
    "kadmind": probe_kadmind,
    "slapd": probe_ldap,
    "uwldap": probe_uwldap,
    "nslcd": probe_nslcd,
    "sssd": lambda: Path("/var/lib/sss/pipes/sudo").exists(),
    "postgresql": probe_postgres,
    "mariadb": probe_mariadb,
    "mailman": probe_mailman,
    "smtp-sink": lambda: banner(MAIL_ADDR, 25, b"220"),
    "syslog-sink": SYSLOG_SOCKET.exists,
    **{f"sshd@{h}": (lambda a=a: banner(a, 22, b"SSH-2.0")) for h, a in HOSTS.items()},
    **{f"helperd@{h}": (lambda h=h: Path(f"{SOCKET_DIR}/{fqdn(h)}.sock").exists()) for h in HOSTS},
}


# --- the supervisor ----------------------------------------------------------------------

class Supervisor:
    def __init__(self, report):
        self.report = report  # a writable text stream back to `sandbox up`
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.lock = threading.Lock()
        self.timings: dict[str, float] = {}
        self.t0 = time.monotonic()
        self.failures: list[Exception] = []
        self.starters: dict = {}

    # Each daemon: a log file in the state dir, its own session, stdin closed.
    def spawn(self, name: str, argv, log: Path, env=None, **kw) -> subprocess.Popen:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            proc = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    env={**os.environ, **(env or {})}, **kw)
        with self.lock:
            self.procs.append((name, proc))
        return proc

    def daemon(self, name: str, argv, log: Path, env=None, probe=None, ready_log: Path | None = None, **kw):
        """Start a daemon, wait until its probe answers, and remember how, for `start NAME`."""
        def start():
            proc = self.spawn(name, argv, log, env, **kw)
            wait_until(name, probe or PROBES[name], ready_log or log, proc)
            self.mark(name)
        self.starters[name] = start
        start()

    def stop_service(self, name: str):
        with self.lock:
            procs = [p for n, p in self.procs if n == name and p.poll() is None]
        if name not in self.starters:
            raise KeyError(name)
        for proc in procs:
            os.killpg(proc.pid, signal.SIGINT if name == "postgresql" else signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                kill_session(proc.pid)
                proc.wait()
            proc._reported = True

    def signal_service(self, name: str, sig: int):
        """Send sig to every process of the service's session (its own, from spawn): `kill`
        (SIGKILL, a crash), `pause` (SIGSTOP: it hangs mid-request) and `resume` (SIGCONT)."""
        with self.lock:
            procs = [p for n, p in self.procs if n == name and p.poll() is None]
        if name not in self.starters:
            raise KeyError(name)
        for proc in procs:
            if sig == signal.SIGKILL:
                kill_session(proc.pid)
                proc.wait()
                proc._reported = True
            else:
                signal_session(proc.pid, sig)

    def start_service(self, name: str):
        with self.lock:
            running = [p for n, p in self.procs if n == name and p.poll() is None]
        if not running:
            self.starters[name]()

    def mark(self, name: str):
        self.timings[name] = time.monotonic() - self.t0

    # --- namespace --------------------------------------------------------------------
    def enter_namespace(self):
        upper, work = STATE / "etc", STATE / ".etc-work"
        for d in (upper, work, STATE / "users"):
            d.mkdir(parents=True, exist_ok=True)
        run(["mount", "--make-rprivate", "/"])
        run(["mount", "-t", "overlay", "ceo-sandbox-etc", "-o",
             f"lowerdir=/etc,upperdir={upper},workdir={work}", "/etc"])
        run(["mount", "-t", "tmpfs", "-o", "mode=0755", "ceo-sandbox-run", "/run"])
        # sssd (for sudo rules in LDAP) comes unpacked, not installed: its packages would add
        # itself to the machine's nsswitch.conf and PAM. Here its files lie over /usr, and
        # /var/lib is written to the state dir, as /etc is.
        if SSSD_ROOT.is_dir():
            run(["mount", "-t", "overlay", "ceo-sandbox-usr", "-o", f"lowerdir={SSSD_ROOT / 'usr'}:/usr", "/usr"])
        varlib, varlib_work = STATE / "var-lib", STATE / ".var-lib-work"
        for d in (varlib, varlib_work):
            d.mkdir(parents=True, exist_ok=True)
        run(["mount", "-t", "overlay", "ceo-sandbox-var-lib", "-o",
             f"lowerdir=/var/lib,upperdir={varlib},workdir={varlib_work}", "/var/lib"])
        run(["mount", "--bind", STATE / "users", HOMES])
        if NETNS:
            run(["ip", "link", "set", "lo", "up"])
        with open("/etc/hosts", "a") as f:
            f.write("\n# ceo sandbox\n")
            for host, addr in HOSTS.items():
                f.write(f"{addr}\t{fqdn(host)} {host}\n")
            f.write(f"{UW_ADDR}\t{UW_HOST}\n")
        for dirname, owner in (("sshd", "root"), ("nslcd", "nslcd"), ("postgresql", "postgres"),
                               ("mysqld", "mysql"), ("sudo", "root")):
            d = Path("/run") / dirname
            d.mkdir(mode=0o755)
            shutil.chown(d, owner, owner if owner != "root" else "root")
        Path("/etc/csc").mkdir(exist_ok=True)
        Path("/etc/ssh/ssh_config.d/ceo-sandbox.conf").write_text(
            "# Written by the ceo sandbox: log in with Kerberos tickets, never delegate them.\n"
            "Host *.csclub.internal\n    GSSAPIAuthentication yes\n    GSSAPIDelegateCredentials no\n")
        render("krb5.conf", Path("/etc/krb5.conf"), REALM=REALM, OTHER_REALM=OTHER_REALM,
               KDC=KDC_ADDR, DOMAIN=DOMAIN)
        render("nsswitch.conf", Path("/etc/nsswitch.conf"))
        render("nslcd.conf", Path("/etc/nslcd.conf"), LDAP=LDAP_ADDR, BASE=BASE_DN).chmod(0o640)
        shutil.chown("/etc/nslcd.conf", "root", "nslcd")
        sudoers = render("sudoers", Path("/etc/sudoers.d/ceo"), HELPER=HELPER)
        sudoers.chmod(0o440)
        seed.write_ceo_config(Path("/etc/csc"))

    # --- services ---------------------------------------------------------------------
    def kerberos(self):
        k = STATE / "krb5"
        k.mkdir(parents=True, exist_ok=True)
        kdc_conf = render("kdc.conf", Path("/etc/krb5kdc/kdc.conf"), K=k, KDC=KDC_ADDR,
                          REALM=REALM, OTHER_REALM=OTHER_REALM)
        (k / "kadm5.acl").write_text(f"ceod/admin@{REALM} *\n*/admin@{REALM} *\n")
        env = {"KRB5_KDC_PROFILE": str(kdc_conf), "KRB5RCACHEDIR": str(k)}
        for realm in (REALM, OTHER_REALM):
            run(["kdb5_util", "create", "-s", "-W", "-r", realm, "-P", "sandbox-master-key"],
                env={**os.environ, **env})
        run(["kadmin.local", "-r", REALM], input=seed.kadmin_batch(), env={**os.environ, **env})
        run(["kadmin.local", "-r", OTHER_REALM], input=seed.kadmin_other_batch(), env={**os.environ, **env})
        self.daemon("krb5kdc", ["krb5kdc", "-n", "-r", REALM, "-r", OTHER_REALM], k / "krb5kdc.out", env,
                    ready_log=k / "krb5kdc.log")
        self.daemon("kadmind", ["kadmind", "-nofork", "-r", REALM], k / "kadmind.out", env,
                    ready_log=k / "kadmind.log")
        # Tickets for everyone seeded, so tests and shells can act as them at once.
        cc = STATE / "ccache"
        cc.mkdir(exist_ok=True)
        for uid, *_ in seed_people():
            seed.kinit(f"{uid}@{REALM}", password(uid), cc / uid)
        seed.kinit(f"ctdalek@{OTHER_REALM}", password("ctdalek"), cc / "ctdalek@other")
        self.mark("tickets")

    def ldap(self):
        ldap = STATE / "ldap"
        (ldap / "slapd.d").mkdir(parents=True, exist_ok=True)
        (ldap / "data").mkdir(exist_ok=True)
        # rfc2307bis: posixGroup is auxiliary, so CSC's `group` entries can carry it.
        nis = Path("/etc/ldap/schema/nis.ldif").read_text().replace("\n ", "")  # unfold LDIF lines
        (ldap / "rfc2307bis.ldif").write_text(
            nis.replace("cn=nis,", "cn=rfc2307bis,").replace("cn: nis", "cn: rfc2307bis")
               .replace("'Abstraction of a group of accounts' SUP top STRUCTURAL",
                        "'Abstraction of a group of accounts' SUP top AUXILIARY")
               .replace("MUST ( cn $ gidNumber )", "MUST gidNumber"))
        cfg = render("slapd-config.ldif", ldap / "config.ldif", L=ldap, FILES=FILES,
                     DOMAIN=DOMAIN, REALM=REALM, BASE=BASE_DN)
        run(["slapadd", "-n0", "-F", ldap / "slapd.d", "-l", cfg])
        (ldap / "seed.ldif").write_text(seed.ldif())
        run(["slapadd", "-q", "-n1", "-F", ldap / "slapd.d", "-l", ldap / "seed.ldif"])
        env = {"KRB5_KTNAME": f"FILE:{STATE}/hosts/phosphoric-acid/ldap.keytab", "KRB5RCACHEDIR": str(ldap)}
        self.daemon("slapd", ["/usr/sbin/slapd", "-d", "0", "-F", ldap / "slapd.d",
                              "-h", f"ldap://{LDAP_ADDR}:389/ {ldapi_uri()}"], ldap / "slapd.log", env)
        self.daemon("nslcd", ["/usr/sbin/nslcd", "-n"], ldap / "nslcd.log")
        self.sssd()
        seed.homes()
        self.mark("homes")

    def uwldap(self):
        """The university's directory: a second slapd with its own base, read anonymously."""
        d = STATE / "uwldap"
        (d / "slapd.d").mkdir(parents=True, exist_ok=True)
        (d / "data").mkdir(exist_ok=True)
        cfg = render("uwldap-config.ldif", d / "config.ldif", L=d, BASE=UW_BASE)
        run(["slapadd", "-n0", "-F", d / "slapd.d", "-l", cfg])
        (d / "seed.ldif").write_text(seed.uw_ldif())
        run(["slapadd", "-q", "-n1", "-F", d / "slapd.d", "-l", d / "seed.ldif"])
        self.daemon("uwldap", ["/usr/sbin/slapd", "-d", "0", "-F", d / "slapd.d", "-h", f"ldap://{UW_ADDR}:389/"],
                    d / "slapd.log")

    def sssd(self):
        """sssd's LDAP sudo provider: sudo (`sudoers: files sss`) applies the sudoRole entries
        ceo writes. Users and groups still come from nslcd; sssd looks them up itself."""
        if not SSSD_ROOT.is_dir():
            raise ServiceFailed("sssd", f"not unpacked in {SSSD_ROOT}: run sandbox/setup.sh")
        d = STATE / "sssd"
        d.mkdir(parents=True, exist_ok=True)
        for sub in ("db", "pipes/private", "mc", "pubconf", "gpo_cache"):
            Path("/var/lib/sss", sub).mkdir(parents=True, exist_ok=True)
        Path("/etc/sssd/conf.d").mkdir(parents=True, exist_ok=True)
        cfg = render("sssd.conf", d / "sssd.conf", LDAP=LDAP_ADDR, BASE=BASE_DN)
        cfg.chmod(0o600)  # sssd refuses a config anyone else can read
        self.daemon("sssd", ["/usr/sbin/sssd", "-i", "--logger=stderr", "-c", cfg], d / "sssd.log")

    def sshd(self, host: str):
        h = STATE / "hosts" / host
        h.mkdir(parents=True, exist_ok=True)
        key = h / "ssh_host_ed25519_key"
        if not key.exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", fqdn(host), "-f", key])
        pub = (h / "ssh_host_ed25519_key.pub").read_text().split()
        with self.lock, open("/etc/ssh/ssh_known_hosts", "a") as known:
            known.write(f"{fqdn(host)},{HOSTS[host]} {pub[0]} {pub[1]}\n")
        cfg = render("sshd_config", h / "sshd_config", FQDN=fqdn(host), ADDR=HOSTS[host], H=h, HELPER=HELPER)
        env = {"KRB5_KTNAME": f"FILE:{h}/krb5.keytab", "KRB5RCACHEDIR": str(h)}
        # Its own UTS namespace gives each host its name (strict GSSAPI acceptor check, helper).
        self.daemon(f"sshd@{host}", ["unshare", "--uts", "sh", "-c",
                                     'hostname "$0" && exec /usr/sbin/sshd -D -e -f "$1"', fqdn(host), cfg],
                    h / "sshd.log", env)
        if HELPERD:  # each host's warm helper (ceo/helperd.py), in a UTS namespace of the same name
            self.daemon(f"helperd@{host}", ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$1" -m ceo.helperd',
                                            fqdn(host), VENV / "bin" / "python"], h / "helperd.log")

    def private_dir(self, name: str, owner: str) -> Path:
        """STATE/name, owned by a daemon's user and reachable by it at /run/ceo-sandbox/name."""
        src, dest = STATE / name, PRIVATE / name
        src.mkdir(parents=True, exist_ok=True)
        dest.mkdir(parents=True, exist_ok=True)
        run(["mount", "--bind", src, dest])
        shutil.chown(dest, owner, owner)
        return dest

    def postgresql(self):
        p = self.private_dir("postgresql", "postgres")
        run([PG_BIN / "initdb", "-D", p / "data", "-U", "postgres", "--auth-local=peer",
             "--auth-host=scram-sha-256", "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"],
            user="postgres", group="postgres", cwd=p)
        # root (the helper) is the database superuser over the local socket only.
        (p / "data" / "pg_ident.conf").write_text("superuser root postgres\nsuperuser postgres postgres\n")
        (p / "data" / "pg_hba.conf").write_text(
            "local all postgres peer map=superuser\nlocal all all peer\n"
            "host all all 127.0.0.0/8 scram-sha-256\n")
        self.daemon("postgresql", [PG_BIN / "postgres", "-D", p / "data", "-c", f"listen_addresses={DB_ADDR}",
                                         "-c", "unix_socket_directories=/run/postgresql", "-c", "fsync=off",
                                         # Commits are written before they are acknowledged, not fsynced: a
                                         # killed server keeps them (the fault matrix kills it), a crashed
                                         # machine need not (a sandbox).
                                         "-c", "synchronous_commit=on", "-c", "full_page_writes=off",
                                         "-c", "shared_buffers=32MB"], p / "postgres.log",
                    user="postgres", group="postgres", cwd=p)

    def mariadb(self):
        m = self.private_dir("mariadb", "mysql")
        run(["mariadb-install-db", "--no-defaults", "--user=mysql", f"--datadir={m}/data",
             "--auth-root-authentication-method=socket", "--skip-test-db"], cwd=m)
        self.daemon("mariadb", ["mariadbd", "--no-defaults", "--user=mysql", f"--datadir={m}/data",
                                      "--socket=/run/mysqld/mysqld.sock", "--port=3306", f"--bind-address={DB_ADDR}",
                                      f"--pid-file={m}/mariadbd.pid", "--skip-name-resolve",
                                      "--innodb-buffer-pool-size=32M", "--skip-log-bin",
                                      "--innodb-flush-log-at-trx-commit=2"], m / "mariadb.log")

    def mailman(self):
        mm = STATE / "mailman"
        (mm / "var").mkdir(parents=True, exist_ok=True)
        render("gunicorn.cfg", mm / "gunicorn.cfg")
        cfg = render("mailman.cfg", mm / "mailman.cfg", MM=mm, DOMAIN=DOMAIN, MAIL=MAIL_ADDR,
                     PORT=MAILMAN_PORT, USER=MAILMAN_USER, PASS=MAILMAN_PASS)
        self.daemon("mailman", [MAILMAN_VENV / "bin" / "master", "-C", cfg, "--force"], mm / "master.log",
                    {"MAILMAN_CONFIG_FILE": str(cfg)}, cwd=mm)
        mailman_request("domains", {"mail_host": DOMAIN})
        for name, description in LISTS.items():
            mailman_request("lists", {"fqdn_listname": f"{name}@{DOMAIN}"})
            mailman_request(f"lists/{name}.{DOMAIN}/config", {"description": description}, "PATCH")
        self.mark("lists")

    def smtp_sink(self):
        sink = STATE / "mail" / "sink"
        for sub in ("cur", "new", "tmp"):
            (sink / sub).mkdir(parents=True, exist_ok=True)
        self.daemon("smtp-sink", [MAILMAN_VENV / "bin" / "python", "-m", "aiosmtpd", "-n",
                                  "-l", f"{MAIL_ADDR}:25", "-c", "aiosmtpd.handlers.Mailbox", sink],
                    STATE / "mail" / "smtp-sink.log")

    def syslog_sink(self):
        SYSLOG_SOCKET.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        SYSLOG_SOCKET.unlink(missing_ok=True)  # a stale one would pass the probe before the bind
        self.daemon("syslog-sink", [sys.executable, Path(__file__).with_name("syslogsink.py"),
                                    SYSLOG_SOCKET, SYSLOG_FILE], SYSLOG_SOCKET.with_name("sink.log"))

    # --- lifecycle --------------------------------------------------------------------
    def up(self):
        self.enter_namespace()
        self.mark("namespace")
        # Mailman is the slow one: start it first. Kerberos must exist before sshd/slapd use keytabs.
        jobs = [self.mailman, self.smtp_sink, self.syslog_sink, self.postgresql, self.mariadb, self.uwldap]
        threads = [self.start_thread(j) for j in jobs]
        seed.keytabs_dir()
        self.kerberos_then_rest()
        for t in threads:
            t.join()
        if self.failures:
            raise self.failures[0]

    def start_thread(self, job):
        def target():
            try:
                job()
            except Exception as exc:  # reported, with the service's log, by `up`
                self.failures.append(exc)
        t = threading.Thread(target=target, name=job.__name__)
        t.start()
        return t

    def kerberos_then_rest(self):
        try:
            self.kerberos()
        except Exception as exc:
            self.failures.append(exc)
            return
        threads = [self.start_thread(self.ldap)] + [self.start_thread(lambda h=h: self.sshd(h)) for h in HOSTS]
        for t in threads:
            t.join()

    def stop(self):
        """SIGTERM every daemon's process group at once, wait, then SIGKILL what is left."""
        with self.lock:
            procs = list(reversed(self.procs))
        for name, proc in procs:
            sig = signal.SIGINT if name == "postgresql" else signal.SIGTERM  # postgres: fast shutdown
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        for _, proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for _, proc in procs:
            kill_session(proc.pid)
            proc.wait()


def kill_session(sid: int):
    """SIGKILL every process of a daemon's session: sssd's children each have a process group
    of their own, and would outlive a killed monitor."""
    signal_session(sid, signal.SIGKILL)


def signal_session(sid: int, sig: int):
    for entry in os.listdir("/proc"):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except (OSError, ValueError):
            continue
        if entry.isdigit() and int(stat.rsplit(")", 1)[1].split()[3]) == sid:
            try:
                os.kill(int(entry), sig)
            except ProcessLookupError:
                pass


def tail(path: Path | None, lines: int = 30) -> str:
    if path is None or not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


CONTROL = STATE / "control.sock"


def serve_control(sup: Supervisor):
    """`stop|start|kill|pause|resume NAME` on a root-only Unix socket: failure injection for tests."""
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(str(CONTROL))
    os.chmod(CONTROL, 0o600)
    srv.listen()
    while True:
        conn, _ = srv.accept()
        with conn, conn.makefile("rw") as f:
            try:
                verb, name = f.readline().split()
                {"stop": sup.stop_service, "start": sup.start_service,
                 "kill": lambda n: sup.signal_service(n, signal.SIGKILL),
                 "pause": lambda n: sup.signal_service(n, signal.SIGSTOP),
                 "resume": lambda n: sup.signal_service(n, signal.SIGCONT)}[verb](name)
                f.write("ok\n")
            except KeyError:
                f.write(f"error: no such service; services: {', '.join(sorted(sup.starters))}\n")
            except Exception as exc:
                f.write(f"error {type(exc).__name__}: {exc}\n")


def supervise(report_fd: int) -> int:
    """Entry point inside the namespace: bring up, report on the pipe, then serve until SIGTERM."""
    report = os.fdopen(report_fd, "w", buffering=1)
    sup = Supervisor(report)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        sup.up()
    except ServiceFailed as exc:
        report.write(json.dumps({"failed": exc.service, "why": exc.why, "log": str(exc.log),
                                 "tail": tail(exc.log)}) + "\n")
        sup.stop()
        return 1
    except Exception as exc:
        report.write(json.dumps({"failed": "setup", "why": str(exc), "log": None, "tail": ""}) + "\n")
        sup.stop()
        return 1
    report.write(json.dumps({"ready": sup.timings, "pid": os.getpid()}) + "\n")
    report.close()
    threading.Thread(target=serve_control, args=(sup,), daemon=True).start()
    # Watch the daemons: one that dies is logged; the cluster keeps going.
    while not stop.wait(0.5):
        for name, proc in list(sup.procs):
            if proc.poll() is not None and not getattr(proc, "_reported", False):
                proc._reported = True
                print(f"{time.strftime('%H:%M:%S')} {name} exited with status {proc.returncode}", flush=True)
    sup.stop()
    return 0


if __name__ == "__main__":
    sys.exit(supervise(int(sys.argv[1])))
