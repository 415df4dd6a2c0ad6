"""Ten sandbox up/down cycles in a row: up and down times, memory, and what each down left behind.

    sudo .venv/bin/python bench/sandbox_cycles.py [N]
"""

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sandbox import control  # noqa: E402


def main(n: int = 10) -> int:
    if control.running_pid():
        print("the sandbox is up: run `sandbox/ctl down` first")
        return 2
    ups, downs, dirty = [], [], 0
    for i in range(1, n + 1):
        pid, timings = control.up()
        mem = control.memory_mb(pid)
        took = control.down()
        left = control.leftovers()
        ups.append(timings["total"])
        downs.append(took)
        dirty += bool(left)
        print(f"cycle {i:2d}: up {timings['total']:.2f} s  down {took:.2f} s  memory {mem:.0f} MB  "
              f"leftovers: {', '.join(left) or 'none'}")
    print(f"up median {statistics.median(ups):.2f} s (max {max(ups):.2f}); "
          f"down median {statistics.median(downs):.2f} s (max {max(downs):.2f}); "
          f"cycles with leftovers: {dirty}")
    return 1 if dirty else 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 10))
