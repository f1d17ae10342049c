"""sweep.py: the summary of a sweep, computed from hand-made job directories (known numbers in,
known means and sds out), its plots against the swept key, and a real two-seed multirun of the tiny
experiment read back from its run directories, its offline W&B runs and its summary files."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from glassbox.model import GPT, GPTConfig
from glassbox.report.sweep_summary import plot_labels, plot_pair_z, plot_val_loss
from glassbox.run.layout import read_run_state
from glassbox.run.tracking import JsonlFile
from glassbox.sweep import main, summarize_sweep
from helpers import SMALL, TINY, fake_job, final_row, run_stage, wandb_records


def test_jobs_that_differ_only_by_seed_are_one_configuration_with_mean_and_sd(toy_sweep):
    summary = summarize_sweep(toy_sweep, to_wandb=False)

    assert summary["axes"] == ["model", "seed"]
    tiny, small = summary["configurations"]  # in order of size
    assert (tiny["label"], small["label"]) == ("model=tiny", "model=small")
    assert tiny["n_params"] == GPT(GPTConfig(**TINY)).num_params()
    assert small["n_params"] == GPT(GPTConfig(**SMALL)).num_params() > tiny["n_params"]
    assert tiny["seeds"] == [1, 2] and tiny["incomplete_jobs"] == []
    assert tiny["loss_val"] == {"mean": pytest.approx(2.1), "sd": pytest.approx(statistics.stdev([2.0, 2.2])), "n": 2}
    a_e = tiny["pairs"]["a_e"]
    assert a_e["zf"] == {"mean": pytest.approx(0.5), "sd": pytest.approx(statistics.stdev([1.5, -0.5])), "n": 2}
    assert a_e["z"]["mean"] == pytest.approx(1.5) and a_e["cos"]["mean"] == pytest.approx(0.05)
    # direction: the share of seeds whose zf has the expected sign
    assert {name: (p["expect"], p["direction"]) for name, p in tiny["pairs"].items()} == {
        "a_e": ("up", 0.5),
        "period_exclamation": ("up", 1.0),
        "a_period": ("down", 1.0),
        "a_A": ("none", None),
    }
    assert [p["label"] for p in tiny["pairs"].values()] == ["a–e", ".–!", "a–.", "a–A"]
    assert small["incomplete_jobs"] == [3] and small["seeds"] == [1]
    assert small["loss_val"] == {"mean": pytest.approx(1.8), "sd": None, "n": 1}  # the failed 0.1 is left out
    assert small["pairs"]["a_period"]["direction"] == 0.0
    failed = summary["jobs"][3]
    assert (failed["status"], failed["step"], failed["loss_val"]) == ("failed", 8, 0.1)


def test_summary_files_hold_the_same_numbers(toy_sweep):
    summary = summarize_sweep(toy_sweep, to_wandb=False)

    assert json.loads((toy_sweep / "summary.json").read_text(encoding="utf-8")) == summary
    markdown = (toy_sweep / "summary.md").read_text(encoding="utf-8")
    assert f"| model=tiny | {summary['configurations'][0]['n_params']:,} | 1, 2 | 2.100 ± 0.141 |" in markdown
    assert "| model=small | " in markdown and "1 (not complete: job 3) | 1.800 |" in markdown
    assert "| a–e | up | 0.05 ± 0.14 | 1.50 ± 1.41 | 0.50 ± 1.41 | 1/2 |" in markdown  # pairs by their label
    assert "| 3 | model=small | 2 | failed |" in markdown
    for plot in ("val_loss.png", "pair_z.png", "pair_zf_steps.png"):
        assert (toy_sweep / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "## By model" in markdown and "| model=tiny | 2.100 ± 0.141 | 0.50 ± 1.41 |" in markdown
    curve = summary["configurations"][0]["pairs"]["a_e"]["zf_curve"]  # zf against step, over seeds 1 and 2
    assert (curve["steps"], curve["mean"], curve["per_seed"]) == ([0, 16], [0.0, 0.5], [[0.0, 1.5], [0.0, -0.5]])


def means_drawn(ax) -> list[tuple[float, float]]:
    """The (x, mean) points of the first mean ± sd series a plot drew (its line with round markers)."""
    line = next(line for line in ax.get_lines() if line.get_marker() == "o")
    return [tuple(point) for point in line.get_xydata()]


def test_the_plots_put_the_swept_key_on_the_x_axis_as_categories(toy_sweep):
    summary = summarize_sweep(toy_sweep, to_wandb=False)
    assert summary["x_axis"] == {"key": "model", "values": ["tiny", "small"], "numeric": False}  # in sweep order
    labels = plot_labels(summary)
    for ax in (plot_val_loss(summary, labels).axes[0], *plot_pair_z(summary, labels).axes[:2]):
        assert ax.get_xlabel() == "model"
        assert [tick.get_text() for tick in ax.get_xticklabels()] == ["tiny", "small"]
    loss = plot_val_loss(summary, labels).axes[0]
    assert means_drawn(loss) == [(0.0, pytest.approx(2.1)), (1.0, pytest.approx(1.8))]  # a variant per category


def test_a_numeric_swept_key_is_a_number_line_and_a_seed_only_sweep_puts_the_seeds_there(tmp_path):
    numeric = tmp_path / "numeric"
    for num, (width, seed, loss) in enumerate([(16, 1, 1.8), (8, 1, 2.0), (8, 2, 2.2), (16, 2, 1.6)]):
        fake_job(
            numeric,
            num,
            ["experiment=toy", f"model.n_embd={width}", f"seed={seed}"],
            seed,
            "complete",
            {**TINY, "n_embd": width},
            final_row(loss, [1.0, 1.0, -1.0, 0.0]),
        )
    summary = summarize_sweep(numeric, to_wandb=False)
    assert summary["x_axis"] == {"key": "model.n_embd", "values": ["8", "16"], "numeric": True}
    ax = plot_val_loss(summary, plot_labels(summary)).axes[0]
    assert means_drawn(ax) == [(8.0, pytest.approx(2.1)), (16.0, pytest.approx(1.7))]

    seeds_only = tmp_path / "seeds"
    for num, seed in enumerate((3, 1, 2)):
        fake_job(
            seeds_only,
            num,
            ["experiment=toy", f"seed={seed}"],
            seed,
            "complete",
            TINY,
            final_row(2.0 + seed / 10, [1.0, 1.0, -1.0, 0.0]),
        )
    summary = summarize_sweep(seeds_only, to_wandb=False)
    assert summary["x_axis"] == {"key": "seed", "values": ["1", "2", "3"], "numeric": True}
    ax = plot_val_loss(summary, plot_labels(summary)).axes[0]
    (dots,) = ax.collections[1:]  # after the mean ± sd band: one dot per seed, at its seed
    assert sorted(map(tuple, dots.get_offsets().tolist())) == [(1.0, 2.1), (2.0, 2.2), (3.0, 2.3)]
    assert ax.get_xlabel() == "seed" and ax.get_lines()[0].get_ydata().tolist() == pytest.approx([2.2, 2.2])


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


@pytest.mark.slow
def test_a_sweep_with_one_bad_job_stops_before_any_directory_naming_that_job(workdir):
    done = run_stage("train", ["hydra.mode=MULTIRUN", "experiment=tiny", "seed=1,x", "model.n_layer=1,2"], workdir)
    assert done.returncode == 2
    assert "job 2 of 4 (" in done.stderr and "seed=x model.n_layer=1): the config is not valid" in done.stderr
    assert "seed='x': Input should be a valid integer" in done.stderr
    assert not (workdir / "outputs").exists()


@pytest.mark.e2e
def test_a_two_seed_multirun_gives_two_runs_in_one_wandb_group_and_a_summary(two_seed_replicate, make_cfg):
    project, printed = two_seed_replicate  # `make replicate SEEDS=1,2`: a sweep over seeds, summarised as any sweep
    [sweep_dir] = (project / "outputs" / "tiny" / "sweeps").iterdir()
    run_dirs = [sweep_dir / "0", sweep_dir / "1"]
    assert printed.splitlines()[-1].startswith(f"2/2 jobs complete; sweep summary: {sweep_dir / 'summary.md'}")
    group = f"tiny-sweep-{sweep_dir.name}"
    for job, (run_dir, seed) in enumerate(zip(run_dirs, (1, 2))):
        state = read_run_state(run_dir)
        assert state["status"] == "complete"
        # its own run, only one (test_replicate may be analysing the job: its W&B runs are in analysis/)
        [run] = [r["run"] for r in wandb_records(run_dir / "wandb") if r["type"] == "run"]
        assert (run["run_id"], run["run_group"], run["job_type"]) == (state["wandb_run_id"], group, "train")
        assert run["config"]["update"]["seed"] == seed
        assert run["display_name"] == state["wandb_run_name"] == f"tiny-tiny-s{seed}-job{job}"  # told apart by name
        # a sweep's jobs leave `latest` alone, and say so rather than that it points at them
        assert "a job of a sweep: `latest` is not moved" in (run_dir / "train.log").read_text(encoding="utf-8")
    assert not (project / "outputs" / "tiny" / "latest").exists()
    records = wandb_records(sweep_dir / "wandb")
    [summary_run] = [r["run"] for r in records if r["type"] == "run" and r["run"]["job_type"] == "sweep-summary"]
    assert summary_run["run_group"] == group
    logged = {key for r in records if r["type"] == "history" for key in r["history"]["item"]}
    assert {"sweep/val_loss._type", "sweep/pair_z._type", "sweep/pairs._type"} <= logged

    summary = json.loads((sweep_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["wandb_group"] == group
    [configuration] = summary["configurations"]
    losses = final_losses(run_dirs)
    assert configuration["seeds"] == [1, 2]
    assert configuration["loss_val"] == {
        "mean": pytest.approx(statistics.fmean(losses)),
        "sd": pytest.approx(statistics.stdev(losses)),
        "n": 2,
    }
    probe_pairs = make_cfg("train", ["experiment=tiny"]).corpus.probes.pairs
    assert set(configuration["pairs"]) == {pair.id for pair in probe_pairs}
    assert all((sweep_dir / name).stat().st_size > 0 for name in ("summary.md", "val_loss.png", "pair_z.png"))
