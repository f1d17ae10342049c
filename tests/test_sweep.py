"""sweep.py: the summary of a sweep, computed from hand-made job directories (known numbers in,
known means and sds out), and a real two-seed multirun of the tiny experiment read back from
its run directories, its offline W&B runs and its summary files."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from glassbox.model import GPT, GPTConfig
from glassbox.prepare import prepare
from glassbox.probes.probe_set import ProbeSet
from glassbox.run.layout import read_run_state, write_run_state
from glassbox.run.tracking import JsonlFile
from glassbox.sweep import main, summarize_sweep
from helpers import run_stage, wandb_records

PROBES = {"groups": {"vowels": ["a", "e"], "marks": [".", "!"]},
          "pairs": [["a", "e"], [".", "!"], ["a", "."], ["a", "A", "none"]]}  # up, up, down, none
TINY = dict(vocab_size=65, n_layer=1, n_head=1, n_embd=8, block_size=8, dropout=0.0, bias=False)
SMALL = {**TINY, "n_embd": 16}


def fake_job(sweep_dir: Path, num: int, overrides: list[str], seed: int, status: str, model_args: dict,
             final: dict[str, float], step: int = 16) -> None:
    """A job directory as Hydra and train leave it, with `final` as the last metrics.jsonl row."""
    run_dir = sweep_dir / str(num)
    (run_dir / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(overrides), run_dir / ".hydra" / "overrides.yaml")
    OmegaConf.save(OmegaConf.create({"hydra": {"job": {"num": num}}}), run_dir / ".hydra" / "hydra.yaml")
    OmegaConf.save(OmegaConf.create({"name": "toy", "seed": seed, "corpus": {"probes": PROBES},
                                     "wandb": {"mode": "disabled", "project": "glassbox", "entity": None,
                                               "group": "toy-sweep-x", "tags": []}}),
                   run_dir / ".hydra" / "config.yaml")
    write_run_state(run_dir, status=status, n_params=GPT(GPTConfig(**model_args)).num_params(), probe_pairs=probe_pairs())
    metrics = JsonlFile(run_dir / "metrics.jsonl")
    metrics.append({"step": 0, "loss/val": 4.2, **{f"{k}/{p}": 0.0 for k in ("cos", "z", "zf") for p in pair_names()}})
    metrics.append({"step": step, **final})


def probe_pairs() -> list[dict[str, str]]:
    """The pairs as train records them in run.json (kind and expected direction decided by ProbeSet)."""
    chars = sorted({c for group in PROBES["groups"].values() for c in group} | {c for p in PROBES["pairs"] for c in p[:2]})
    return ProbeSet.build(PROBES["groups"], PROBES["pairs"], {c: i for i, c in enumerate(chars)}).describe_pairs()


def pair_names() -> list[str]:
    return [f"{a}-{b}" for a, b, *_ in PROBES["pairs"]]


def final_row(loss: float, zf: list[float]) -> dict[str, float]:
    """loss/val, and for each pair cos = zf / 10, z = zf + 1, zf as given."""
    row = {"loss/val": loss}
    for name, value in zip(pair_names(), zf):
        row |= {f"cos/{name}": value / 10, f"z/{name}": value + 1, f"zf/{name}": value}
    return row


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


def test_jobs_that_differ_only_by_seed_are_one_configuration_with_mean_and_sd(toy_sweep):
    summary = summarize_sweep(toy_sweep, to_wandb=False)

    assert summary["axes"] == ["model", "seed"]
    tiny, small = summary["configurations"]  # in order of size
    assert (tiny["label"], small["label"]) == ("model=tiny", "model=small")
    assert tiny["n_params"] == GPT(GPTConfig(**TINY)).num_params()
    assert small["n_params"] == GPT(GPTConfig(**SMALL)).num_params() > tiny["n_params"]
    assert tiny["seeds"] == [1, 2] and tiny["incomplete_jobs"] == []
    assert tiny["loss_val"] == {"mean": pytest.approx(2.1), "sd": pytest.approx(statistics.stdev([2.0, 2.2])), "n": 2}
    a_e = tiny["pairs"]["a-e"]
    assert a_e["zf"] == {"mean": pytest.approx(0.5), "sd": pytest.approx(statistics.stdev([1.5, -0.5])), "n": 2}
    assert a_e["z"]["mean"] == pytest.approx(1.5) and a_e["cos"]["mean"] == pytest.approx(0.05)
    # direction: the share of seeds whose zf has the expected sign
    assert {name: (p["expect"], p["direction"]) for name, p in tiny["pairs"].items()} == {
        "a-e": ("up", 0.5), ".-!": ("up", 1.0), "a-.": ("down", 1.0), "a-A": ("none", None)}
    assert small["incomplete_jobs"] == [3] and small["seeds"] == [1]
    assert small["loss_val"] == {"mean": pytest.approx(1.8), "sd": None, "n": 1}  # the failed 0.1 is left out
    assert small["pairs"]["a-."]["direction"] == 0.0
    failed = summary["jobs"][3]
    assert (failed["status"], failed["step"], failed["loss_val"]) == ("failed", 8, 0.1)


def test_summary_files_hold_the_same_numbers(toy_sweep):
    summary = summarize_sweep(toy_sweep, to_wandb=False)

    assert json.loads((toy_sweep / "summary.json").read_text(encoding="utf-8")) == summary
    markdown = (toy_sweep / "summary.md").read_text(encoding="utf-8")
    assert f"| model=tiny | {summary['configurations'][0]['n_params']:,} | 1, 2 | 2.100 ± 0.141 |" in markdown
    assert "| model=small | " in markdown and "1 (not complete: job 3) | 1.800 |" in markdown
    assert "| a-e | up | 0.05 ± 0.14 | 1.50 ± 1.41 | 0.50 ± 1.41 | 1/2 |" in markdown
    assert "| 3 | model=small | 2 | failed |" in markdown
    for plot in ("val_loss.png", "pair_z.png"):
        assert (toy_sweep / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_summary_by_hand_and_its_errors(toy_sweep, tmp_path, capsys):
    main([str(toy_sweep)])
    assert "3/4 jobs complete" in capsys.readouterr().out
    assert (toy_sweep / "summary.md").exists()
    assert not (toy_sweep / "wandb").exists()  # the jobs' W&B mode is disabled, so is the summary's

    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "nowhere")])
    assert exit_info.value.code == 2
    assert "holds no sweep jobs" in capsys.readouterr().err


# --- a real multirun --------------------------------------------------------------------------------

def test_a_plain_run_keeps_the_experiment_name_as_its_wandb_group(make_cfg):
    assert make_cfg("train", ["experiment=tiny"]).wandb.group == "tiny"  # only a multirun's jobs get the sweep's


def final_losses(run_dirs: list[Path]) -> list[float]:
    return [JsonlFile(run_dir / "metrics.jsonl").read()[-1]["loss/val"] for run_dir in run_dirs]


@pytest.mark.e2e
def test_a_two_seed_multirun_gives_two_runs_in_one_wandb_group_and_a_summary(workdir, make_cfg):
    prepare(make_cfg("prepare", ["experiment=tiny", "wandb.mode=disabled"]))
    done = run_stage("train", ["hydra.mode=MULTIRUN", "experiment=tiny", "train.max_iters=16",
                               "train.snapshots.log_spaced_until=4", "train.snapshots.every=8", "seed=1,2"], workdir)
    assert done.returncode == 0, done.stderr[-3000:]

    [sweep_dir] = (workdir / "outputs" / "tiny" / "sweeps").iterdir()
    run_dirs = [sweep_dir / "0", sweep_dir / "1"]
    group = f"tiny-sweep-{sweep_dir.name}"
    for run_dir, seed in zip(run_dirs, (1, 2)):
        state = read_run_state(run_dir)
        assert state["status"] == "complete"
        [run] = [r["run"] for r in wandb_records(run_dir) if r["type"] == "run"]  # its own run, only one
        assert (run["run_id"], run["run_group"], run["job_type"]) == (state["wandb_run_id"], group, "train")
        assert run["config"]["update"]["seed"] == seed
    records = wandb_records(sweep_dir / "wandb")
    [summary_run] = [r["run"] for r in records if r["type"] == "run"]
    assert (summary_run["run_group"], summary_run["job_type"]) == (group, "sweep-summary")
    logged = {key for r in records if r["type"] == "history" for key in r["history"]["item"]}
    assert {"sweep/val_loss._type", "sweep/pair_z._type", "sweep/pairs._type"} <= logged

    summary = json.loads((sweep_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["wandb_group"] == group
    [configuration] = summary["configurations"]
    losses = final_losses(run_dirs)
    assert configuration["seeds"] == [1, 2]
    assert configuration["loss_val"] == {"mean": pytest.approx(statistics.fmean(losses)),
                                         "sd": pytest.approx(statistics.stdev(losses)), "n": 2}
    probe_pairs = make_cfg("train", ["experiment=tiny"]).corpus.probes.pairs
    assert set(configuration["pairs"]) == {f"{a}-{b}" for a, b, *_ in probe_pairs}
    assert all((sweep_dir / name).stat().st_size > 0 for name in ("summary.md", "val_loss.png", "pair_z.png"))
