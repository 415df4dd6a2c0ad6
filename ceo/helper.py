"""The privileged `ceo-helper` (minimal until the framework lands): says who called it, where."""

import json
import os
import socket
import sys


def main(argv=None):
    caller = os.environ.get("SUDO_USER") if os.geteuid() == 0 else None
    print(json.dumps({"hello": "ceo-helper", "caller": caller, "host": socket.gethostname(),
                      "euid": os.geteuid()}), flush=True)
    return 0
