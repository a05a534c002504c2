"""The server's collector settings (api.gc_tuning), in a process of their own: they are
global to the interpreter."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import gc, weakref
from api.gc_tuning import YOUNG, frozen_objects, tune_for_serving

tune_for_serving()
tune_for_serving()  # once is enough: the callback is not added twice
assert gc.callbacks.count(gc.callbacks[-1]) == 1

before = frozen_objects()
kept = [[i] for i in range(3 * YOUNG)]  # tracked by the collector; survives it
assert frozen_objects() >= before + 2 * YOUNG, (before, frozen_objects())
# No older generation fills up: the survivors went out of every collection.
assert gc.get_objects(generation=1) == [] and gc.get_objects(generation=2) == []

del kept  # frozen objects are still freed by reference counting
assert frozen_objects() < before + YOUNG, (before, frozen_objects())

class Node:
    pass

a, b = Node(), Node()
a.other, b.other = b, a  # a cycle that dies young
gone = weakref.ref(a)
del a, b
gc.collect(0)
assert gone() is None
print("ok")
"""


def test_survivors_are_frozen_and_young_cycles_still_collected() -> None:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT)],
        cwd=ROOT, env={"PYTHONPATH": str(ROOT / "src")}, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
