"""Running a command whose helpers log to syslog, and reading what they logged: the sandbox
runs no syslog daemon, so the command gets a mount namespace of its own whose /dev/log is a
datagram socket this test reads (/dev gets an overlay there: nothing changes for any other
process)."""

from __future__ import annotations

import socket
import subprocess
import threading


def run_with_syslog(tmp_path, argv, env: dict, timeout=60) -> tuple[subprocess.CompletedProcess, list[str]]:
    sock_path, dev = tmp_path / "log.sock", tmp_path / "dev"
    dev.mkdir()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    script = f"""set -e
        mount -t tmpfs -o mode=0755 ceo-test-dev {dev}
        mkdir {dev}/upper {dev}/work
        : > {dev}/upper/log
        mount -t overlay ceo-test-dev -o lowerdir=/dev,upperdir={dev}/upper,workdir={dev}/work /dev
        mount --bind {sock_path} /dev/log
        exec "$@"
    """
    lines, done = [], threading.Event()

    def read():  # meanwhile: the queue holds few datagrams (net.unix.max_dgram_qlen), then syslog(3) blocks
        while True:
            try:
                lines.append(sock.recv(65536).decode())
            except TimeoutError:
                if done.is_set():  # syslog(3) sent it all before the command ended
                    return

    sock.settimeout(0.2)
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *argv],
                              input="", capture_output=True, text=True, timeout=timeout, env=env)
    finally:
        done.set()
        reader.join()
        sock.close()
    return proc, lines
