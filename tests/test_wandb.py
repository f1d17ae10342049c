"""What a W&B user sees: the mode taken from the environment as W&B users expect, and a 西游记 run
(the tiny model, 4 layers × 4 heads: the session's xiyouji_run, W&B offline from WANDB_MODE alone) read
back from its offline W&B runs: keys W&B can sort and group, runs named and tagged
after their Hydra choices, the best val loss in the summary, the embedding views. The shakespeare
half of the key rule, the analysis run and the model artifacts are tested in test_analyze.py and
test_train.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from glassbox import fileio
from glassbox.errors import GlassboxError
from glassbox.run import tracking
from glassbox.run.tracking import STEP_KEY, JsonlFile, wandb_mode
from helpers import (
    WANDB_KEY,
    XIYOUJI_RUN,
    XIYOUJI_SNAPSHOTS,
    copy_project,
    logged_keys,
    run_as_user,
    wandb_records,
    without_wandb_mode,
)


def train_records(run_dir: Path) -> list[dict]:
    return wandb_records(run_dir / "wandb")


# --- the mode ----------------------------------------------------------------------------------------


def test_the_mode_is_the_override_then_wandb_mode_then_wandbs_settings_then_offline(monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setattr(tracking, "_settings_file_mode", lambda: None)
    assert wandb_mode(None) == "offline"
    monkeypatch.setattr(tracking, "_settings_file_mode", lambda: "disabled")  # `wandb disabled` was run
    assert wandb_mode(None) == "disabled"
    monkeypatch.setenv("WANDB_MODE", "online")
    assert wandb_mode(None) == "online"
    assert wandb_mode("offline") == "offline"  # wandb.mode=offline on the command line wins over all
    monkeypatch.setenv("WANDB_MODE", "ofline")
    with pytest.raises(GlassboxError, match="WANDB_MODE is 'ofline'; use online, offline or disabled"):
        wandb_mode(None)


@pytest.mark.slow
def test_wandb_disabled_in_the_project_is_read_from_wands_own_settings_file(tmp_path):
    """`wandb disabled` writes wandb/settings in the current directory; glassbox reads it there, as W&B does."""
    env = without_wandb_mode()
    wandb = Path(sys.executable).with_name("wandb")
    subprocess.run([str(wandb), "disabled"], cwd=tmp_path, env=env, check=True, capture_output=True, timeout=120)
    assert "mode = disabled" in (tmp_path / "wandb" / "settings").read_text()
    script = "from glassbox.run.tracking import wandb_mode; print(wandb_mode(None))"
    read = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, check=True, capture_output=True, text=True, timeout=120
    )
    assert read.stdout.strip() == "disabled"


@pytest.mark.e2e
def test_wandb_mode_disabled_in_the_environment_writes_no_wandb_run(xiyouji_run, tmp_path):
    root = copy_project(xiyouji_run[0], tmp_path / "project")  # its data prepared; train points `latest` here
    run_dir = tmp_path / "quiet"
    run_as_user(
        "train",
        [*XIYOUJI_RUN, "train.max_iters=1", "analysis.at_snapshots=false", f"hydra.run.dir={run_dir}"],
        root,
        WANDB_MODE="disabled",
    )  # what `WANDB_MODE=disabled make train` runs
    assert fileio.read_json(run_dir / "run.json")["status"] == "complete"
    assert [r["step"] for r in JsonlFile(run_dir / "metrics.jsonl").read()] == [0, 1]  # the local record stays
    assert not (run_dir / "wandb").exists() and not (root / "wandb").exists()
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step_0000000.pt", "step_0000001.pt"]


# --- a 西游记 run in W&B -------------------------------------------------------------------------------------


@pytest.mark.e2e
def test_every_key_logged_for_xiyouji_follows_the_wandb_naming_rule(xiyouji_run):
    root, run_dir = xiyouji_run
    records = wandb_records(root / "outputs")  # prepare, train and analysis runs: offline, from WANDB_MODE alone
    assert {r["run"]["job_type"] for r in records if r["type"] == "run"} == {"prepare", "train", "analysis"}
    keys = logged_keys(records)
    assert {
        "cos/shuo_dao",
        "z/shan_shui",
        "zf/shuo_shan",
        "p/dao_yue",
        "resid_std/embed",
        "resid_max/L1",
        "attn_entropy/L0H1",
        "context_gap/L1",
        "verdict/shuo_dao",
        "tables/claims",
    } <= keys
    assert sorted(key for key in keys if not WANDB_KEY.match(key)) == []
    local = {key for r in JsonlFile(run_dir / "metrics.jsonl").read() for key in r}
    assert "cos/shuo_dao" in local and sorted(key for key in local if not WANDB_KEY.match(key)) == []


@pytest.mark.e2e
def test_the_run_is_named_and_tagged_after_its_hydra_choices_and_records_them(xiyouji_run):
    root, run_dir = xiyouji_run
    (run,) = [r["run"] for r in train_records(run_dir) if r["type"] == "run"]
    assert run["display_name"] == "tiny-tiny-s1337" == fileio.read_json(run_dir / "run.json")["wandb_run_name"]
    assert {"model=tiny", "corpus=xiyouji", "train=default", "experiment=tiny"} <= set(run["tags"])
    config = run["config"]["update"]
    assert config["choices"]["corpus"] == "xiyouji" and config["choices"]["model"] == "tiny"
    assert config["overrides"] == [f"paths.root_dir={root}", *XIYOUJI_RUN]
    assert config["n_params"] == fileio.read_json(run_dir / "run.json")["n_params"]
    assert config["wandb"]["mode"] == "offline"  # the mode it ran in, though the config left it to WANDB_MODE
    shuo_dao = config["corpus"]["probes"]["pairs"][0]
    assert (shuo_dao["id"], shuo_dao["a"], shuo_dao["b"]) == ("shuo_dao", "说", "道")  # the characters stay here


@pytest.mark.e2e
def test_the_summary_holds_the_best_val_loss(xiyouji_run):
    _, run_dir = xiyouji_run
    updates = [r["summary"]["update"] for r in train_records(run_dir) if r["type"] == "summary"]
    summary = {key: value for update in updates for key, value in update.items()}
    losses = [r["loss/val"] for r in JsonlFile(run_dir / "metrics.jsonl").read()]
    assert summary["loss/val"] == {"min": pytest.approx(min(losses))}
    assert summary["final/loss_val"] == pytest.approx(losses[-1])


@pytest.mark.e2e
def test_every_snapshot_logs_a_row_norm_histogram_and_chosen_ones_a_projector_table(xiyouji_run):
    root, run_dir = xiyouji_run
    vocab = fileio.read_json(root / "data" / "processed" / "xiyouji" / "vocab.json")
    history = [r["history"]["item"] for r in train_records(run_dir) if r["type"] == "history"]
    steps = [r["step"] for r in JsonlFile(run_dir / "metrics.jsonl").read()]
    histograms = [item for item in history if item.get("emb/row_norms._type") == "histogram"]
    assert [item[STEP_KEY] for item in histograms] == steps == XIYOUJI_SNAPSHOTS
    assert all(sum(item["emb/row_norms.values"]) == len(vocab["itos"]) for item in histograms)  # one per character
    tables = [item for item in history if item.get("emb/projector._type") == "table-file"]
    assert [item[STEP_KEY] for item in tables] == [0, 1, 64]  # wandb.projector.steps=[0,1], and the last step
    (offline_run,) = (run_dir / "wandb").glob("offline-run-*")
    table = fileio.read_json(offline_run / "files" / tables[0]["emb/projector.path"])
    assert table["columns"] == ["char", "count", "group", "vector"]
    assert len(table["data"]) == 7 + 300  # the probe characters, then the 300 most frequent others
    assert table["data"][0][:3] == ["说", vocab["counts"]["说"], "say"] and table["data"][4][2] == "nature"
    assert len(table["data"][0][3]) == 32 and table["data"][-1][2] == "other"
