"""callgw.runtime.tune_collector: what twistd applies once callgw is ready (in a child process,
since it changes the collector of the whole interpreter)."""
from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import gc
from callgw.runtime import GC_THRESHOLD, tune_collector
before = gc.get_threshold()
objs = [[] for _ in range(100)]
tune_collector({arg})
print(gc.get_freeze_count() >= 100, gc.get_threshold() == {want})
"""


def run(arg, want):
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(arg=arg, want=want)],
                         capture_output=True, text=True, check=True, timeout=60)
    return out.stdout.split()


def test_freezes_start_up_objects_and_raises_the_threshold():
    assert run("", "GC_THRESHOLD") == ["True", "True"]


def test_threshold_none_leaves_the_threshold():
    assert run("None", "before") == ["True", "True"]
