"""The sandbox's syslog daemon, as small as one can be: a datagram unix socket (what the
helpers' `[log] syslog_socket` names) whose every datagram becomes one line of a file, so tests
can read what the helpers logged and search it for secrets.

Usage: python syslogsink.py SOCKET FILE
"""

import os
import socket
import sys


def main(sock_path: str, log_path: str):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    os.chmod(sock_path, 0o666)  # as /dev/log: any local helper may log, root or not
    with open(log_path, "ab", buffering=0) as out:
        while True:
            data = sock.recv(1 << 17)
            out.write(data.rstrip(b"\n").replace(b"\n", b"\\n") + b"\n")  # one datagram, one line


if __name__ == "__main__":
    main(*sys.argv[1:3])
