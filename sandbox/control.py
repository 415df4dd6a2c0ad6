"""Starting, joining and stopping the sandbox from outside it (the CLI and the test fixture)."""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .topology import HOMES, NETNS, REPO, SITE_DIR, STATE, TESTKIT

PIDFILE = STATE / "supervisor.pid"
CREATED = STATE.parent / ".sandbox-created"  # mount points `up` made on the machine, for `down`
TESTKIT_USERS = STATE / "testkit-users"  # a file per test session that loaded the test plugin
CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
joined = False  # whether this process has moved into a sandbox's namespace
_machine_ns = None  # an fd on the machine's own mount namespace, kept by join() for down()


class SandboxError(Exception):
    pass


def _alive(pid: int) -> bool:
    """True while pid runs; a zombie waiting for PID 1 to reap it counts as gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def running_pid() -> int | None:
    try:
        pid = int(PIDFILE.read_text())
    except (FileNotFoundError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return None
    return pid if b"sandbox.cluster" in cmdline and _alive(pid) else None


def up() -> tuple[int, dict | None]:
    """Bring the cluster up (or find it up). Returns (supervisor pid, timings or None if it was up)."""
    pid = running_pid()
    if pid:
        return pid, None
    if os.geteuid() != 0:
        raise SandboxError("the sandbox needs root (it runs real daemons and a mount namespace)")
    if STATE.exists():
        shutil.rmtree(STATE)  # the remains of a cluster that died without `down`
    STATE.mkdir(parents=True)
    if not HOMES.exists():
        HOMES.mkdir()
        CREATED.write_text(f"{HOMES}\n")
    read_fd, write_fd = os.pipe()
    t0 = time.monotonic()
    with open(STATE / "supervisor.log", "ab") as log:
        proc = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", *(["-n"] if NETNS else []),
             sys.executable, "-m", "sandbox.cluster", str(write_fd)],
            pass_fds=(write_fd,), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    os.close(write_fd)
    with os.fdopen(read_fd) as report:
        line = report.readline()
    total = time.monotonic() - t0
    try:
        result = json.loads(line)
    except ValueError:
        proc.wait()
        raise SandboxError(f"the supervisor died during setup; see {STATE / 'supervisor.log'}:\n"
                           + _tail(STATE / "supervisor.log")) from None
    if "failed" in result:
        proc.wait()
        log = f"\n--- {result['log']} ---\n{result['tail']}" if result["log"] else ""
        raise SandboxError(f"{result['failed']} failed: {result['why']}{log}")
    PIDFILE.write_text(f"{proc.pid}\n")
    timings = result["ready"]
    timings["total"] = total
    return proc.pid, timings


def down() -> float | None:
    """Stop everything `up` started and remove what it added. Returns seconds taken, None if it was down."""
    t0 = time.monotonic()
    pid = running_pid()
    if pid:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 60  # its own stop takes at most ~10 s, more on a loaded machine
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        if _alive(pid):
            os.killpg(pid, signal.SIGKILL)
    was_up = pid is not None or STATE.exists()
    if STATE.exists():
        shutil.rmtree(STATE)
    # Another sandbox (CEO_SANDBOX_NETNS) may use the same mount point: removing it on the
    # machine would unmount its homes, so while one runs the record stays, for a later `down`.
    if CREATED.exists() and not _other_supervisors():
        for line in CREATED.read_text().split():
            _rmdir_on_machine(line)
        CREATED.unlink()
    return time.monotonic() - t0 if was_up else None


def _other_supervisors() -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and b"sandbox.cluster" in Path(f"/proc/{entry}/cmdline").read_bytes():
                found.append(int(entry))
        except OSError:
            pass
    return [pid for pid in found if _alive(pid)]


def _rmdir_on_machine(path: str):
    """rmdir in the machine's own mount namespace: a process that joined the sandbox sees the
    sandbox's mount there (and its contents), not the empty mount point it must remove."""
    if _machine_ns is None:
        try:
            os.rmdir(path)
        except OSError:
            pass
        return
    subprocess.run(["nsenter", f"--mount=/proc/self/fd/{_machine_ns}", "rmdir", path],
                   pass_fds=(_machine_ns,), capture_output=True)


def join(pid: int):
    """Move this (single-threaded) process into the sandbox's mount (and network) namespace."""
    global _machine_ns
    cwd = os.getcwd()
    if _machine_ns is None:
        _machine_ns = os.open("/proc/self/ns/mnt", os.O_RDONLY)
    libc = ctypes.CDLL(None, use_errno=True)
    for kind, flag in (("mnt", CLONE_NEWNS), ("net", CLONE_NEWNET)):
        if os.readlink(f"/proc/{pid}/ns/{kind}") == os.readlink(f"/proc/self/ns/{kind}"):
            continue
        fd = os.open(f"/proc/{pid}/ns/{kind}", os.O_RDONLY)
        try:
            if libc.setns(fd, flag) != 0:
                raise SandboxError(f"cannot enter the sandbox's namespace: {os.strerror(ctypes.get_errno())}")
        finally:
            os.close(fd)
    os.chdir(cwd)
    global joined
    joined = True


def user_env(user: str) -> dict:
    """The environment of a shell inside the sandbox holding `user`'s Kerberos ticket."""
    return {**os.environ, "KRB5CCNAME": f"FILE:{STATE / 'ccache' / user}",
            "PATH": f"{REPO / '.venv' / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}"}


def nsenter(pid: int, user: str, argv: list[str]) -> int:
    net = [f"--net=/proc/{pid}/ns/net"] if NETNS else []
    return subprocess.call(["nsenter", f"--mount=/proc/{pid}/ns/mnt", *net, f"--wd={os.getcwd()}", *argv],
                           env=user_env(user))


def memory_mb(pid: int) -> float:
    """Proportional set size of every process in the sandbox, in MB."""
    total = 0
    for p in processes_in({os.readlink(f"/proc/{pid}/ns/mnt")}):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def probe_all() -> dict[str, bool]:
    """Run every service's readiness probe (from inside the namespace)."""
    from .cluster import PROBES

    def check(item):
        name, probe = item
        try:
            return name, bool(probe())
        except Exception:
            return name, False
    with ThreadPoolExecutor(len(PROBES)) as pool:
        return dict(pool.map(check, PROBES.items()))


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def namespaces(pid: int) -> set[str]:
    """The mount and network namespaces of a running sandbox ('mnt:[...]', 'net:[...]')."""
    return {os.readlink(f"/proc/{pid}/ns/{kind}") for kind in ("mnt", "net")}


def processes_in(known: set[str]) -> list[int]:
    """Processes (other than this one) still in any of these namespaces."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                if {os.readlink(f"/proc/{entry}/ns/{kind}") for kind in ("mnt", "net")} & known:
                    found.append(int(entry))
            except OSError:
                pass
    return found


def leftovers() -> list[str]:
    """What a stopped sandbox would have left on the machine (empty when `down` was clean).

    A sandbox in its own network namespace (CEO_SANDBOX_NETNS) shares the machine with another
    one, so the machine-wide checks (listeners, daemon names, /etc) are not its own: only its
    files are checked here, and its processes by `processes_in(namespaces(pid))`.
    """
    from .topology import HOSTS
    found = []
    if not NETNS:
        out = subprocess.run(["ss", "-ltnuHp"], capture_output=True, text=True).stdout
        addrs = set(HOSTS.values())
        found += [f"listener: {line.split()[4]}" for line in out.splitlines()
                  if len(line.split()) > 4 and line.split()[4].rsplit(":", 1)[0] in addrs]
    state = str(STATE).encode()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            daemon = not NETNS and (cmd.split(bytes(1))[0].rsplit(b"/", 1)[-1] in (b"krb5kdc", b"kadmind", b"nslcd")
                                    or b"sandbox.cluster" in cmd)
            if (state in cmd or daemon) and _alive(int(entry)):
                found.append(f"process {entry}: {cmd.replace(bytes(1), b' ').decode(errors='replace')[:100]}")
    for path in (str(STATE), str(CREATED)):
        if Path(path).exists():
            found.append(f"file {path}")
    if NETNS:
        return found
    if "csclub.internal" in Path("/etc/hosts").read_text():
        found.append("hosts entry in /etc/hosts")
    if subprocess.run(["getent", "passwd", "ctdalek"], capture_output=True).returncode == 0:
        found.append("user ctdalek resolves on the machine")
    for path in ("/etc/sudoers.d/ceo", "/etc/csc"):
        if Path(path).exists():
            found.append(f"file {path}")
    if HOMES.exists() and not CREATED.exists() and not any(HOMES.iterdir()):
        found.append(f"an empty {HOMES} (a sandbox's mount point?)")
    if "ceo-sandbox" in Path("/proc/mounts").read_text():
        found.append("a sandbox mount in the machine's namespace")
    return found


def service(action: str, name: str):
    """Stop, start, kill (SIGKILL), pause (SIGSTOP) or resume one of the running sandbox's
    services (`stop mailman`, `start kadmind`, `pause slapd`)."""
    import socket as _socket
    sock = _socket.socket(_socket.AF_UNIX)
    try:
        sock.connect(str(STATE / "control.sock"))
    except OSError as exc:
        raise SandboxError(f"the sandbox is not up ({exc.strerror})") from None
    with sock, sock.makefile("rw") as f:
        f.write(f"{action} {name}\n")
        f.flush()
        answer = f.readline().strip()
    if answer != "ok":
        raise SandboxError(f"{action} {name}: {answer}")


# --- the test plugin: in the site dir only while a test session uses it ------------------------
# These run inside the namespace (after join): SITE_DIR is the sandbox's own /etc/csc/plugins.

def _started(pid: int) -> str | None:
    """pid's start time (clock ticks since boot): with the pid, it names one process, never a
    later one that got the same pid."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def testkit_load(owner: int):
    """Put tests/plugins/testkit.py in the site dir for test session `owner` (its pid)."""
    TESTKIT_USERS.mkdir(exist_ok=True)
    (TESTKIT_USERS / str(owner)).write_text(f"{_started(owner)}\n")
    SITE_DIR.mkdir(mode=0o755, exist_ok=True)
    tmp = SITE_DIR / ".testkit.py.new"
    shutil.copyfile(TESTKIT, tmp)  # a copy owned by root, as the helper demands of site files
    tmp.chmod(0o644)
    os.replace(tmp, SITE_DIR / "testkit.py")


def testkit_unload(owner: int) -> bool:
    """Test session `owner` is done with it; it goes when no live session uses it. True if gone."""
    (TESTKIT_USERS / str(owner)).unlink(missing_ok=True)
    return testkit_repair()


def testkit_repair() -> bool:
    """Forget sessions that died without unloading it (killed, a lost machine); remove the
    plugin unless a live one still uses it. True if the site dir is left without it."""
    live = False
    for record in TESTKIT_USERS.glob("*") if TESTKIT_USERS.exists() else ():
        try:
            alive = record.name.isdigit() and record.read_text().strip() == _started(int(record.name))
        except OSError:
            alive = False
        if alive and _alive(int(record.name)):
            live = True
        else:
            record.unlink(missing_ok=True)
    if not live:
        (SITE_DIR / "testkit.py").unlink(missing_ok=True)
        (SITE_DIR / ".testkit.py.new").unlink(missing_ok=True)
        for cached in (SITE_DIR / "__pycache__").glob("testkit.*"):  # the helper's compiled copy
            cached.unlink(missing_ok=True)
    return not live
