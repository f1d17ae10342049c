"""Damaged files are found and named, never read as garbage: a corrupt snapshot that torch loads silently,
a damaged run.json, metrics.jsonl or token file, and a run analysed or traced with a damaged old snapshot,
one with non-finite weights, a last metrics line cut short, while it is still training."""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from glassbox import fileio
from glassbox.analyze import analyze
from glassbox.errors import GlassboxError
from glassbox.prepare import prepare
from glassbox.run.layout import pick_snapshot, point_latest, resolve_run_dir, snapshot_path, write_run_state
from glassbox.run.snapshots import load_snapshot, save_snapshot
from glassbox.run.tracking import JsonlFile
from glassbox.text.tokens import TokenData
from glassbox.trace import trace
from glassbox.train import train
from helpers import (
    SCHEDULE,
    copy_run,
    flip_a_byte_of_the_embedding,
    poison,
    project_with_corpus,
    tiny_cfg,
)

# --- snapshots -----------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_flipped_byte_loads_silently_with_torch_but_not_with_load_snapshot(root, reference, tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    path = run_dir / "checkpoints" / "step_0000016.pt"
    save_snapshot(path, torch.load(snapshot_path(reference, 16), weights_only=True))
    flip_a_byte_of_the_embedding(path)
    damaged = torch.load(path, weights_only=True)["model"]["wte.weight"]  # torch alone does not notice
    assert not torch.equal(damaged, load_snapshot(snapshot_path(reference, 16)).weights["wte.weight"])
    with pytest.raises(GlassboxError, match=r"step_0000016.pt is corrupt: its sha256 is"):
        load_snapshot(path)


@pytest.mark.slow
def test_trace_refuses_a_snapshot_with_non_finite_weights(root, reference, outputs):
    run_dir = copy_run(reference, outputs)
    poison(snapshot_path(run_dir, 40))
    with pytest.raises(GlassboxError, match="holds non-finite numbers .* use an earlier snapshot"):
        trace(tiny_cfg(root, outputs, "auto=true", config_name="trace"))


@pytest.mark.slow
def test_a_file_that_is_no_snapshot_or_is_away_from_its_run_is_named_so_not_an_unfinished_save(reference, tmp_path):
    """Each of these once read "the run was stopped before the snapshot was completely saved"."""
    text = tmp_path / "notes.pt"
    text.write_text("not a snapshot")
    other = tmp_path / "other.pt"
    torch.save({"model": torch.zeros(2)}, other)  # a torch file, but no glassbox snapshot
    copied = tmp_path / "step_0000016.pt"
    shutil.copy(snapshot_path(reference, 16), copied)
    run_dir = tmp_path / "run"
    shutil.copytree(reference, run_dir)
    renamed = run_dir / "checkpoints" / "mine.pt"
    shutil.copy(snapshot_path(reference, 16), renamed)
    answers = {
        text: r"notes.pt is not a glassbox snapshot \(those are the checkpoints/step_NNNNNNN.pt files",
        other: "other.pt is not a glassbox snapshot",
        copied: r"step_0000016.pt is a snapshot outside its run .* give run=<its run folder> step=<N>, or copy",
        renamed: r"mine.pt is not one of its run's snapshots \(step_NNNNNNN.pt\)",
        run_dir: "is a folder, not a snapshot file: give a run's folder as run=",
    }
    for path, answer in answers.items():
        with pytest.raises(GlassboxError, match=answer):
            load_snapshot(path)
    write_run_state(run_dir, snapshot_sha256={})  # the one case that message is right for
    with pytest.raises(GlassboxError, match="the run was stopped before the snapshot was completely saved"):
        load_snapshot(snapshot_path(run_dir, 16))


# --- run.json, metrics.jsonl and token files -----------------------------------------------------------------------


@pytest.mark.slow
def test_a_damaged_run_json_is_explained_by_train_analyze_and_trace(root, reference, outputs):
    run_dir = copy_run(reference, outputs)
    (run_dir / "run.json").write_text('{"status": "runn')
    damaged = f"{run_dir / 'run.json'} is damaged"
    with pytest.raises(GlassboxError, match=damaged):
        train(tiny_cfg(root, outputs), outputs / "tiny" / "second")
    with pytest.raises(GlassboxError, match=damaged):
        analyze(tiny_cfg(root, outputs, config_name="analyze"), run_dir / "analysis" / "now")
    with pytest.raises(GlassboxError, match=damaged):
        trace(tiny_cfg(root, outputs, "auto=true", config_name="trace"))


def test_a_jsonl_file_damaged_before_its_last_line_is_explained(tmp_path):
    log = JsonlFile(tmp_path / "metrics.jsonl")
    log.append({"step": 0})
    with open(log.path, "a") as f:
        f.write('{"step": 1, "lo\n')
    log.append({"step": 2})
    with pytest.raises(GlassboxError, match="metrics.jsonl is damaged: line 2 is not JSON"):
        log.read()


@pytest.mark.slow
def test_a_changed_or_out_of_range_token_file_is_refused_until_prepared_again(tmp_path):
    project = project_with_corpus(tmp_path / "project")
    prepare_cfg = tiny_cfg(project, tmp_path / "outputs", config_name="prepare")
    processed = prepare(prepare_cfg)
    train_bin = processed / "train.bin"
    ids = np.fromfile(train_bin, dtype="<u2")

    np.random.default_rng(0).permutation(ids).tofile(train_bin)  # same length, same characters, garbage text
    with pytest.raises(GlassboxError, match=r"train.bin is not the file `make prepare` wrote.*Run `make prepare`"):
        train(tiny_cfg(project, tmp_path / "outputs"), tmp_path / "outputs" / "tiny" / "run")
    assert not (tmp_path / "outputs" / "tiny").exists()  # refused before the run existed

    bad = ids.copy()
    bad[1000] = 65  # the vocabulary has 65 characters: ids 0 to 64
    bad.tofile(train_bin)
    meta = fileio.read_json(processed / "meta.json")
    meta["files"]["train.bin"] = fileio.sha256_of(train_bin)  # as if the file had been written with it
    fileio.write_json(processed / "meta.json", meta)
    with pytest.raises(GlassboxError, match=r"train.bin holds token id 65, but the vocabulary has 65 characters"):
        TokenData(processed)

    shutil.rmtree(processed)  # as the message says, then prepare again
    prepare(prepare_cfg)
    assert np.array_equal(TokenData(processed).splits["train"], ids)


# --- analysis of a damaged run that is still training --------------------------------------------------------------


@pytest.fixture(scope="module")
def analysed(root, reference, tmp_path_factory) -> dict:
    """One analysis of a copy of the reference run with: a damaged old snapshot (step 1 cut short), one
    with non-finite weights (step 2), a last metrics.jsonl line cut short, and a live process training it."""
    outputs = tmp_path_factory.mktemp("analysed") / "outputs"
    run_dir = copy_run(reference, outputs)
    step_1 = snapshot_path(run_dir, 1)
    step_1.write_bytes(step_1.read_bytes()[:5000])
    poison(snapshot_path(run_dir, 2))
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write('{"step": 41, "loss/va')
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    write_run_state(run_dir, status="running", pid=alive.pid, host=socket.gethostname())
    logged, printed = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(logged)
    logging.getLogger().addHandler(handler)
    try:
        with contextlib.redirect_stdout(printed):
            cfg = tiny_cfg(
                root, outputs, f"run={run_dir}", "analysis.suites=[embeddings,predictions]", config_name="analyze"
            )
            report_dir = analyze(cfg, run_dir / "analysis" / "now")
    finally:
        logging.getLogger().removeHandler(handler)
        alive.kill()
        alive.wait()
    return {
        "pid": alive.pid,
        "analysis": fileio.read_json(report_dir / "analysis.json"),
        "log": logged.getvalue(),
        "stdout": printed.getvalue(),
        "report": (report_dir / "report.md").read_text(encoding="utf-8"),
    }


def analysed_steps(analysed: dict) -> list[int]:
    return [s["step"] for s in analysed["analysis"]["snapshots"]]


@pytest.mark.slow
def test_analyze_skips_a_damaged_old_snapshot_and_analyses_the_rest(analysed):
    assert analysed_steps(analysed) == [0, 4, 8, 16, 32, 40]
    assert "skipping the snapshot at step 1: snapshot" in analysed["log"] and "is corrupt" in analysed["log"]
    assert "step 1 (snapshot" in analysed["report"]


@pytest.mark.slow
def test_analyze_skips_a_snapshot_with_non_finite_weights(analysed):
    assert 2 not in analysed_steps(analysed)
    (skipped,) = [s for s in analysed["analysis"]["skipped_snapshots"] if s["step"] == 2]
    assert "holds non-finite numbers" in skipped["reason"]


@pytest.mark.slow
def test_analyze_drops_a_last_metrics_line_cut_short_with_a_warning(analysed):
    assert [row["step"] for row in analysed["analysis"]["losses"]] == SCHEDULE
    assert "metrics.jsonl: its last line is cut short" in analysed["log"]


@pytest.mark.slow
def test_analysing_a_run_still_training_says_so_and_which_steps(analysed):
    pid, steps = analysed["pid"], "0, 4, 8, 16, 32, 40"
    assert f"the run is still training (pid {pid}): the report covers steps {steps}" in analysed["log"]
    assert f"still training (pid {pid}): analysing the snapshots it has saved so far" in analysed["log"]
    assert f"(status: still training, pid {pid})" in analysed["report"]
    assert f"this analysis covers the snapshots it had saved, steps {steps}" in analysed["report"]


def test_run_given_as_the_experiments_folder_means_its_latest_run_as_load_run_reads_it(tmp_path):
    """run=outputs/tiny (the experiment's folder) once said "no snapshots"; it is the `latest` run, for
    every stage as for glassbox.load_run."""
    run_dir = tmp_path / "tiny" / "2026-01-01_00-00-00"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "step_0000016.pt").write_bytes(b"")
    point_latest(run_dir, tmp_path, "tiny")
    experiment = str(tmp_path / "tiny")
    assert pick_snapshot(tmp_path, "tiny", experiment, None, None) == (
        run_dir / "checkpoints" / "step_0000016.pt",
        [16],
    )
    assert resolve_run_dir(tmp_path, "other", experiment) == run_dir.resolve()
    assert resolve_run_dir(tmp_path, "other", str(run_dir)) == run_dir.resolve()  # a run stays itself
