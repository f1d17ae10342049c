"""Run the train stage with one snapshot frozen half-written, for a test to kill -9 it there.

    python tests/pausing_train.py step_0000032.pt <train overrides...>

The snapshot writer's `torch.save` is wrapped: when it writes the named snapshot's temporary
file, the file is cut to half its bytes, "paused while saving" is printed and the process
waits to be killed. Everything else is the real `python -m glassbox.train`.
"""

from __future__ import annotations

import runpy
import sys
import time

import glassbox.run.snapshots as snapshots


def pause_while_saving(name: str) -> None:
    real_save = snapshots.torch.save

    def save(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        if f"{name}.tmp-" in getattr(f, "name", ""):
            f.flush()
            f.truncate(f.tell() // 2)
            print(f"paused while saving {f.name}", flush=True)
            while True:
                time.sleep(60)

    snapshots.torch.save = save


if __name__ == "__main__":
    pause_while_saving(sys.argv[1])
    sys.argv = ["glassbox.train", *sys.argv[2:]]
    runpy.run_module("glassbox.train", run_name="__main__", alter_sys=True)
