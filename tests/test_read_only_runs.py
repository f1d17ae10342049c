"""A run on a read-only disk (or another user's): the stages that only read it work, and those that write into
it (analyze, export, steer, patch, ablate, scope, explore) say which run cannot be written and what to do, exit
code 2, instead of a traceback or a hint about paths.* (which moves new runs, not this one)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import copy_project, read_only, run_stage

pytestmark = pytest.mark.slow  # each test runs stages on the tiny run


@pytest.fixture(scope="module")
def read_only_run(tiny_project, tmp_path_factory) -> tuple[Path, Path]:
    """(project, its tiny run) with the run read-only for the module's tests."""
    project = copy_project(tiny_project, tmp_path_factory.mktemp("tiny"))
    run_dir = (project / "outputs" / "tiny" / "latest").resolve()
    with read_only(run_dir):
        yield project, run_dir


@pytest.mark.parametrize(
    "stage, overrides",
    [
        ("analyze", []),
        ("export", []),
        ("steer", ["alphas=[2]", "n_random=2", "gen_tokens=2"]),
        ("patch", ["source=ROMEO", "target=JULIET"]),
        ("ablate", []),
        ("scope", ["prompts=[ROMEO]"]),
    ],
)
def test_a_stage_writing_into_a_read_only_run_names_it_and_says_to_copy_it(read_only_run, stage, overrides):
    project, run_dir = read_only_run
    done = run_stage(stage, ["experiment=tiny", f"run={run_dir}", *overrides], project)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "paths.*" not in done.stderr
    assert f"This command writes into the run {run_dir}: make that folder writable, or copy the run" in done.stderr
    assert "give run=<copy>" in done.stderr


def test_explore_into_a_read_only_run_names_it_and_says_to_copy_it(xiyouji_run, tmp_path):
    """`make explore` rewrites <run>/report/explorer.html: on an analysed run it cannot write, the same answer."""
    project = copy_project(xiyouji_run[0], tmp_path / "project")
    run_dir = (project / "outputs" / "tiny" / "latest").resolve()
    page = (run_dir / "report" / "explorer.html").read_bytes()
    with read_only(run_dir):
        done = run_stage("explore", ["experiment=tiny", "corpus=xiyouji"], project)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert f"This command writes into the run {run_dir}: make that folder writable, or copy the run" in done.stderr
    assert (run_dir / "report" / "explorer.html").read_bytes() == page


def test_sample_and_trace_read_a_read_only_run(read_only_run):
    project, run_dir = read_only_run
    for stage, overrides in (("sample", ["num_samples=1", "max_new_tokens=4"]), ("trace", ["auto=true"])):
        done = run_stage(stage, ["experiment=tiny", f"run={run_dir}", *overrides], project)
        assert done.returncode == 0, done.stderr[-2000:]
