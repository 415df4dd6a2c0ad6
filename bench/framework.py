"""The framework's costs, each measured side by side with its floor in one run.

    .venv/bin/python bench/framework.py        (as root; brings the sandbox up if it is down)

1. `ceo --help` against `python -c pass`                          target: under 3x
2. a no-op verb over an open session (paramiko), per request       target: median under 1 ms
   beside the same helper over local pipes and a bare JSON echo over local pipes
3. a whole `ceo doctor ping` process against OpenSSH's `ssh` sending the same request to
   the same helper                                                 target: under 1.5x
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sandbox import control  # noqa: E402

PY = str(REPO / ".venv" / "bin" / "python")
CEO = str(REPO / ".venv" / "bin" / "ceo")
HELPER = str(REPO / ".venv" / "bin" / "ceo-helper")
ECHO = "import sys\nfor line in sys.stdin:\n    sys.stdout.write(line); sys.stdout.flush()\n"
USER = "ofstaff"


def interleaved(commands: dict, n: int, env) -> dict:
    """Median wall time (ms) of each command, run round-robin so load hits all alike."""
    times = {name: [] for name in commands}
    for _ in range(3):
        for argv in commands.values():
            subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, **argv_kw(argv))
    for _ in range(n):
        for name, argv in commands.items():
            t0 = time.perf_counter()
            subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, **argv_kw(argv))
            times[name].append((time.perf_counter() - t0) * 1000)
    return {name: statistics.median(t) for name, t in times.items()}


def argv_kw(argv):
    return {"input": argv.stdin} if isinstance(argv, Command) else {}


class Command(list):
    stdin = None


def round_trips(session, n: int) -> list[float]:
    lat = []
    for _ in range(n):
        t0 = time.perf_counter()
        session.request("doctor", "ping", {})
        lat.append((time.perf_counter() - t0) * 1000)
    return lat


def pipe_round_trips(argv, n: int, env, hello=True) -> list[float]:
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, bufsize=0)
    from ceo.protocol import client_hello, encode
    if hello:
        proc.stdin.write(encode(client_hello()))
        proc.stdout.readline()
    req = encode({"id": 1, "plugin": "doctor", "verb": "ping", "args": {}})
    lat = []
    for _ in range(50):
        proc.stdin.write(req)
        proc.stdout.readline()
    for _ in range(n):
        t0 = time.perf_counter()
        proc.stdin.write(req)
        proc.stdout.readline()
        lat.append((time.perf_counter() - t0) * 1000)
    proc.stdin.close()
    proc.wait()
    return lat


def main() -> int:
    pid, started = control.up()
    control.join(pid)
    env = {**os.environ, "KRB5CCNAME": f"FILE:{control.STATE / 'ccache' / USER}",
           "PATH": f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}", "PYTHONDONTWRITEBYTECODE": "1"}
    os.environ.update(KRB5CCNAME=env["KRB5CCNAME"])
    try:
        # 1. --help
        m = interleaved({"python -c pass": [PY, "-c", "pass"], "ceo --help": [CEO, "--help"]}, 30, env)
        r1 = m["ceo --help"] / m["python -c pass"]
        print(f"1. ceo --help {m['ceo --help']:.1f} ms, python -c pass {m['python -c pass']:.1f} ms: "
              f"{r1:.2f}x (target < 3x)")

        # 2. no-op verb on an open session
        from ceo.config import Config
        from ceo.inventory import Inventory
        from ceo.transport import Pool
        inv = Inventory.load("/etc/csc/hosts.ini")
        pool = Pool(inv, Config.load())
        session = pool.for_role("ldap")
        round_trips(session, 50)
        over_ssh = statistics.median(round_trips(session, 2000))
        pool.close()
        local_env = {**env, "CEO_HOST": "phosphoric-acid.csclub.internal"}
        helper_pipes = statistics.median(pipe_round_trips([HELPER], 2000, local_env))
        echo_pipes = statistics.median(pipe_round_trips([PY, "-c", ECHO], 2000, env, hello=False))
        print(f"2. no-op verb on an open session: {over_ssh:.3f} ms median over paramiko (target < 1 ms); "
              f"same helper over local pipes {helper_pipes:.3f} ms; bare JSON echo over pipes "
              f"{echo_pipes:.3f} ms; ssh/echo {over_ssh / echo_pipes:.1f}x")

        # 3. a whole ceo process against ssh(1) sending the same request to the same helper
        from ceo.protocol import client_hello, encode
        ssh = Command(["ssh", "-T", "-o", "BatchMode=yes", "-o", "GSSAPIAuthentication=yes",
                       "-o", "StrictHostKeyChecking=yes", "-o", "LogLevel=ERROR",
                       f"{USER}@phosphoric-acid.csclub.internal", "ceo-helper"])
        ssh.stdin = encode(client_hello()) + encode({"id": 1, "plugin": "doctor", "verb": "ping", "args": {}})
        check = subprocess.run(ssh, input=ssh.stdin, capture_output=True, env=env)
        assert b'"pong":true' in check.stdout, check
        m = interleaved({"ssh": ssh, "ceo": [CEO, "doctor", "ping", "--json"]}, 20, env)
        r3 = m["ceo"] / m["ssh"]
        print(f"3. ceo doctor ping {m['ceo']:.0f} ms, ssh with the same request {m['ssh']:.0f} ms: "
              f"{r3:.2f}x (target < 1.5x)")
        ok = r1 < 3 and over_ssh < 1 and r3 < 1.5
        print("all targets met" if ok else "a target was missed")
        return 0 if ok else 1
    finally:
        if started is not None:
            control.down()


if __name__ == "__main__":
    sys.exit(main())
