"""Fixtures: configs composed as the entry points compose them, outputs under tmp_path, and the trained
runs the whole session shares: a tiny run on shakespeare and one on 西游记."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from filelock import FileLock
from hydra.core.global_hydra import GlobalHydra

from glassbox.prepare import prepare
from glassbox.train import train
from helpers import (
    CORPUS_FILES,
    CORPUS_SOURCES,
    SMALL,
    TINY,
    XIYOUJI_RUN,
    compose_config,
    fake_job,
    final_row,
    make_replicate_overrides,
    path_overrides,
    project_with_corpus,
    run_as_user,
    run_stage,
    run_stages,
    tiny_cfg,
)

torch.set_num_threads(1)  # CI has 2 cores; tests are tiny and parallel threads only contend

BUILT = ".built"  # in a session folder: it is complete


def built_once(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """A folder the whole test session builds once and then only reads. Under pytest-xdist (`make test`)
    the test processes share it: the first to ask builds it while the others wait on a file lock."""
    base = tmp_path_factory.getbasetemp()
    if "PYTEST_XDIST_WORKER" in os.environ:
        base = base.parent  # the folder every worker's own basetemp is in
    folder = base / name
    with FileLock(f"{folder}.lock"):
        if not (folder / BUILT).exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            build(folder)
            (folder / BUILT).touch()
    return folder


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A project-like directory for one test: data/raw holds both real corpora (as links)."""
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    for file_name in CORPUS_FILES.values():
        source = next((f / file_name for f in CORPUS_SOURCES if (f / file_name).exists()), None)
        if source is not None:
            (raw / file_name).symlink_to(source.resolve())
    return tmp_path


@pytest.fixture
def make_cfg(workdir: Path):
    """compose(config_name, overrides) as the entry point would see it, with paths under workdir."""

    def _make(config_name: str = "train", overrides: list[str] = ()):
        return compose_config(config_name, [*path_overrides(workdir), *overrides])

    yield _make
    GlobalHydra.instance().clear()


@pytest.fixture
def toy_sweep(tmp_path: Path) -> Path:
    """model=tiny,small × seed=1,2; job 3 (small, seed 2) failed after a low loss that must not count."""
    sweep_dir = tmp_path / "sweep"
    common = ["experiment=toy", "wandb.group=toy-sweep-x"]
    tiny, small = [*common, "model=tiny"], [*common, "model=small"]
    fake_job(sweep_dir, 0, [*tiny, "seed=1"], 1, "complete", TINY, final_row(2.0, [1.5, 0.5, -1.0, 0.3]))
    fake_job(sweep_dir, 1, [*tiny, "seed=2"], 2, "complete", TINY, final_row(2.2, [-0.5, 1.0, -2.0, -0.1]))
    fake_job(sweep_dir, 2, [*small, "seed=1"], 1, "complete", SMALL, final_row(1.8, [2.0, 2.0, 1.0, 0.0]))
    fake_job(sweep_dir, 3, [*small, "seed=2"], 2, "failed", SMALL, final_row(0.1, [9, 9, 9, 9]), step=8)
    return sweep_dir


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory) -> Path:
    """`make prepare train EXPERIMENT=tiny` in a fresh project directory, W&B offline: trained once for the
    whole session. Read it only; a test module that runs a stage on it works on a `copy_project` of it."""

    def build(root: Path) -> None:
        project_with_corpus(root)
        run_stages(root, ["prepare", "train"], ["experiment=tiny"])

    return built_once(tmp_path_factory, "tiny", build)


@pytest.fixture(scope="session")
def root(tmp_path_factory) -> Path:
    """A project directory with the tiny experiment's corpus prepared, for the tests of resuming, locking,
    failures and damaged files. Read it only: a test that changes its data puts it back."""
    root = project_with_corpus(tmp_path_factory.mktemp("reference"))
    prepare(tiny_cfg(root, root / "outputs", config_name="prepare"))
    return root


@pytest.fixture(scope="session")
def reference(root) -> Path:
    """An uninterrupted run of TINY_RUN: what every interrupted and resumed run must end up equal to.
    Tests copy it (`copy_run`) rather than damage it."""
    return train(tiny_cfg(root, root / "reference"), root / "reference" / "tiny" / "run")


@pytest.fixture
def outputs(tmp_path) -> Path:
    return tmp_path / "outputs"


@pytest.fixture(scope="session")
def xiyouji_run(tmp_path_factory) -> tuple[Path, Path]:
    """(project, run) after prepare, train and analyze of XIYOUJI_RUN with WANDB_MODE=offline in the
    environment and no wandb.mode on the command line, as a W&B user runs them: done once for the session
    (test_explorer's page, test_wandb's W&B runs). Read it only; a test that runs a stage on it works on a
    `copy_project` of it."""

    def build(root: Path) -> None:
        project_with_corpus(root, "xiyouji")
        for stage in ("prepare", "train", "analyze"):
            run_as_user(stage, XIYOUJI_RUN, root, WANDB_MODE="offline")

    root = built_once(tmp_path_factory, "xiyouji", build)
    return root, (root / "outputs" / "tiny" / "latest").resolve()


@pytest.fixture(scope="session")
def two_seed_replicate(tmp_path_factory) -> tuple[Path, str]:
    """(project, what its train process printed) after `make prepare replicate EXPERIMENT=tiny SEEDS=1,2
    ARGS=train.max_iters=32` in a fresh project: a real two-seed multirun, its sweep summary and its
    replicate report, for test_replicate and test_sweep. Its jobs are analysed by test_replicate."""

    def build(root: Path) -> None:
        project_with_corpus(root)
        run_stages(root, ["prepare"], ["experiment=tiny"])
        overrides = make_replicate_overrides("EXPERIMENT=tiny", "SEEDS=1,2", "ARGS=train.max_iters=32")
        expected = ["--multirun", "experiment=tiny", "train.max_iters=32", "hydra/callbacks=replicate", "seed=1,2"]
        assert overrides == expected
        # --multirun as an override: run_stage puts its own overrides first, where no flag may follow them
        done = run_stage("train", ["hydra.mode=MULTIRUN", *overrides[1:]], root)
        assert done.returncode == 0, done.stderr[-3000:]
        (root / STDOUT).write_text(done.stdout, encoding="utf-8")

    root = built_once(tmp_path_factory, "replicate", build)
    return root, (root / STDOUT).read_text(encoding="utf-8")


STDOUT = ".train-stdout.txt"  # what the replicate's train process printed
