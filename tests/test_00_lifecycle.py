"""`up`, `up` again, `down`, `up` after `down`: nothing is left on the machine afterwards.

Runs first (file name), before the session's cluster fixture brings the sandbox up again.
"""

import pytest

from sandbox import control


def test_up_twice_then_down_leaves_nothing():
    if control.running_pid() or control.joined:
        pytest.skip("a sandbox is already up (a developer's): not cycling it")
    assert control.leftovers() == []
    for _ in range(2):
        pid, timings = control.up()
        assert timings is not None and timings["total"] > 0
        again, second = control.up()
        assert (again, second) == (pid, None)  # harmless: the same cluster
        assert control.leftovers() != []  # the check sees a running cluster
        assert control.down() is not None
        assert control.leftovers() == []
    assert control.down() is None
