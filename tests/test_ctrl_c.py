"""Ctrl-C in the stages that run long (sample, steer step=all, analyze) is a clean stop: exit code 130,
one line of what was kept and where, no traceback, and no half-written folder. Each test presses Ctrl-C
at a chosen point of a real run (helpers.run_stage_with_ctrl_c); Ctrl-C in training and in a replicate
are tests/test_resume.py's and tests/test_replicate.py's."""

from __future__ import annotations

from pathlib import Path

import pytest

from glassbox import fileio
from glassbox.errors import EXIT_INTERRUPTED
from glassbox.prepare import prepare
from glassbox.train import train
from helpers import project_with_corpus, run_stage_with_ctrl_c, stage_config

TINY = ["experiment=tiny", "train.max_iters=16", "wandb.mode=disabled"]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A project with a 16-step tiny run on tiny-shakespeare (snapshots 0, 1, 2, 4, 8, 16)."""
    root = project_with_corpus(tmp_path_factory.mktemp("ctrl_c"))
    prepare(stage_config("prepare", root, *TINY))
    train(stage_config("train", root, *TINY), root / "outputs" / "tiny" / "run")
    return root


def stopped_cleanly(done) -> str:
    """The one line the command ended with, after checking it ended as a clean stop."""
    assert done.returncode == EXIT_INTERRUPTED, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "KeyboardInterrupt" not in done.stderr
    return done.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_ctrl_c_in_sample_keeps_the_text_drawn_so_far(root):
    overrides = [*TINY, "prompts=[ROMEO:,JULIET:]", "num_samples=2", "max_new_tokens=200"]
    # one call of sample_next per character (both samples at once): Ctrl-C as the 21st of JULIET: is drawn
    done = run_stage_with_ctrl_c("sample", "glassbox.generation:sample_next", 200 + 21, overrides, root)
    line = stopped_cleanly(done)
    (folder,) = (root / "outputs" / "tiny" / "samples").iterdir()
    assert (
        line == f"stopped by Ctrl-C: kept the text drawn so far (1 of 2 prompts finished) in {folder / 'samples.json'}"
    )
    written = fileio.read_json(folder / "samples.json")
    assert written["stopped"] is True and written["speed"]["decode_tokens"] > 0
    romeo, juliet = written["prompts"]
    assert "stopped" not in romeo and [len(s) for s in romeo["samples"]] == [len("ROMEO:") + 200] * 2
    assert juliet["stopped"] is True and len(juliet["samples"]) == 2
    assert all(s.startswith("JULIET:") and len(s) == len("JULIET:") + 20 for s in juliet["samples"])


@pytest.mark.slow
def test_ctrl_c_in_sample_before_any_text_leaves_no_folder(root, tmp_path):
    out = tmp_path / "outputs"
    run = root / "outputs" / "tiny" / "run"
    overrides = [*TINY, f"paths.output_dir={out}", f"run={run}", "max_new_tokens=100"]
    line = stopped_cleanly(run_stage_with_ctrl_c("sample", "glassbox.generation:sample_next", 1, overrides, root))
    assert line.startswith("stopped by Ctrl-C: nothing kept (removed the unfinished ")
    assert list((out / "tiny" / "samples").iterdir()) == []


@pytest.mark.slow
def test_ctrl_c_in_steer_over_every_snapshot_leaves_no_half_written_folder(root):
    overrides = [*TINY, "step=all", "alphas=[2]", "n_random=2", "gen_tokens=2"]
    done = run_stage_with_ctrl_c("steer", "glassbox.intervening:load_snapshot", 3, overrides, root)
    line = stopped_cleanly(done)
    steer = root / "outputs" / "tiny" / "run" / "interventions" / "steer"
    assert line.startswith(f"stopped by Ctrl-C: nothing kept (removed the unfinished {steer}")
    assert list(steer.iterdir()) == []


@pytest.mark.slow
def test_ctrl_c_in_analyze_leaves_no_half_written_analysis(root):
    run = root / "outputs" / "tiny" / "run"
    done = run_stage_with_ctrl_c("analyze", "glassbox.analysis.replay:run_suites", 3, [*TINY, f"run={run}"], root)
    line = stopped_cleanly(done)
    assert line.startswith(f"stopped by Ctrl-C: nothing kept (removed the unfinished {run / 'analysis'}")
    assert list((run / "analysis").iterdir()) == [] and not (run / "report").exists()
