"""The `ceo` command (placeholder until the framework lands)."""

import sys


def main(argv=None):
    print("ceo: the framework is not built yet", file=sys.stderr)
    return 2
