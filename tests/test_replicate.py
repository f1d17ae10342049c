"""replicate.py: `make replicate` of the tiny experiment over two seeds, run as the Makefile runs it,
its per-claim counts checked against the seeds' own metrics.jsonl; the single-run report quoting
it; the replicate summary of made-up seeds (wording, means, curves); the errors of
`python -m glassbox.replicate`."""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from glassbox import fileio
from glassbox.analysis.replicates import SeedRun, seeds_phrase, summarize_replicate
from glassbox.paths import PROJECT_ROOT
from glassbox.replicate import main
from glassbox.report.replicate import replicate_markdown
from glassbox.run.tracking import JsonlFile
from helpers import (
    run_stage_with_ctrl_c,
    run_stages,
    wandb_records,
)

SETTINGS = {"z_min": 2.0, "p_max": 0.05, "early_drift": 0.25}


@pytest.fixture(scope="module")
def project(two_seed_replicate) -> Path:
    return two_seed_replicate[0]


@pytest.fixture(scope="module")
def sweep_dir(project) -> Path:
    (sweep,) = (project / "outputs" / "tiny" / "sweeps").iterdir()
    return sweep


@pytest.fixture(scope="module")
def data(sweep_dir) -> dict:
    return fileio.read_json(sweep_dir / "replicate.json")


@pytest.mark.e2e
def test_make_replicate_ends_with_the_report_beside_the_sweep_summary(project, sweep_dir, data):
    for name in (
        "replicate.md",
        "replicate.json",
        "replicate_zf.png",
        "replicate_final.png",
        "summary.md",
        "explorer.html",
    ):
        assert (sweep_dir / name).stat().st_size > 0, name
    assert (project / "outputs" / "tiny" / "replicate" / "latest").resolve() == sweep_dir.resolve()
    assert (data["experiment"], data["seeds"], data["step"], data["not_complete"]) == ("tiny", [1, 2], 32, [])
    markdown = (sweep_dir / "replicate.md").read_text(encoding="utf-8")
    assert markdown.startswith("# Replicate: tiny, 2 seeds") and "[explorer.html](explorer.html)" in markdown

    records = wandb_records(sweep_dir / "wandb")
    runs = {r["run"]["job_type"]: r["run"] for r in records if r["type"] == "run"}
    assert set(runs) == {"sweep-summary", "replicate"}
    assert runs["replicate"]["run_group"] == f"tiny-sweep-{sweep_dir.name}"  # the seeds' own group
    logged = {key for r in records if r["type"] == "history" for key in r["history"]["item"]}
    assert {"replicate/claims._type", "replicate/seeds._type", "replicate/zf._type"} <= logged


def held_at_the_end(rows: list[dict], claim: dict, groups: dict[str, list[str]], pairs: list[dict]) -> bool:
    """Whether a claim held in one seed, recomputed here from its metrics.jsonl rows and the rules alone."""
    name, final = ("within_minus_cross" if claim["kind"] == "groups" else claim["claim"]), rows[-1]
    if claim["test"] == "no association":  # every snapshot from a quarter of the steps on
        within = [
            p["name"]
            for p in pairs
            if p["kind"] == "within"
            and any(p["a"] in g and p["b"] in g for g in groups.values() if claim["a"] in g or claim["b"] in g)
        ]
        late = [r for r in rows if r["step"] >= 0.25 * final["step"]]
        return all(abs(r[f"zf/{name}"]) < 2 and all(r[f"cos/{name}"] < r[f"cos/{w}"] for w in within) for r in late)
    zf_key, p_key = {"level": ("zf/", "p/"), "moving apart": ("zf_dcos/", "p_dcos/")}[claim["test"]]
    zf, p = final[f"{zf_key}{name}"], final[f"{p_key}{name}"]
    return (zf if claim["expect"] == "up" else -zf) >= 2 and p <= 0.05


@pytest.mark.e2e
def test_every_claims_count_of_seeds_is_what_the_seeds_metrics_say(project, sweep_dir, data, make_cfg):
    rows = [JsonlFile(sweep_dir / job / "metrics.jsonl").read() for job in ("0", "1")]
    pairs = fileio.read_json(sweep_dir / "0" / "run.json")["probe_pairs"]
    groups = {name: list(chars) for name, chars in make_cfg("train", ["experiment=tiny"]).corpus.probes.groups.items()}
    by_test = {(c["claim"], c["test"]): c for c in data["claims"]}
    cross = [p["name"] for p in pairs if p["kind"] == "cross"]
    assert set(by_test) == (
        {(p["name"], "level") for p in pairs if p["kind"] != "cross"}
        | {(name, test) for name in cross for test in ("no association", "moving apart")}
        | {("within_minus_cross", "level")}
    )
    markdown = (sweep_dir / "replicate.md").read_text(encoding="utf-8")
    per_seed = [0, 0]
    for c in data["claims"]:
        if c["expect"] == "none":
            continue
        held = [held_at_the_end(seed_rows, c, groups, pairs) for seed_rows in rows]
        per_seed = [n + h for n, h in zip(per_seed, held)]
        n_held = sum(held)
        assert c["n_held"] == n_held, c["claim"]
        words = f"held in {n_held} of 2" + (": not robust" if n_held == 1 else " seeds")
        assert c["over_seeds"] == words
        label = "within − cross" if c["a"] is None else f"{c['a']} – {c['b']}"
        (line,) = [
            line
            for line in markdown.splitlines()
            if line.startswith(f"- {label} (") and (c["test"] == "level" or f"(cross, {c['test']})" in line)
        ]
        assert f"**{words}**" in line
    directional = sum(c["expect"] != "none" for c in data["claims"])
    counts = " | ".join(f"{n} of {directional}" for n in per_seed)
    assert f"| **directional claims held** |  | {counts} |" in markdown
    seconds = [fileio.read_json(sweep_dir / job / "run.json")["train_seconds"] for job in ("0", "1")]
    assert all(s > 0 for s in seconds) and data["seed_minutes"] == pytest.approx([s / 60 for s in seconds])
    group = by_test["within_minus_cross", "level"]  # the group claim is judged from training's own zf now
    finals = [seed_rows[-1]["zf/within_minus_cross"] for seed_rows in rows]
    assert group["zf"]["mean"] == pytest.approx(statistics.fmean(finals))
    assert group["zf"]["sd"] == pytest.approx(statistics.stdev(finals))
    assert group["curve"]["per_seed"][1][-1] == pytest.approx(finals[1])


@pytest.mark.e2e
def test_the_single_run_report_says_what_the_replicate_found(project, sweep_dir, data):
    run_stages(project, ["analyze"], ["experiment=tiny", f"run={sweep_dir / '0'}", "analysis.suites=[embeddings]"])
    markdown = (sweep_dir / "0" / "report" / "report.md").read_text(encoding="utf-8")
    claim_lines = [line for line in markdown.splitlines() if line.startswith("- ") and "Over seeds:" in line]
    assert len(claim_lines) == len(data["claims"])
    for line, claim in zip(claim_lines, data["claims"]):
        assert line.endswith(f"Over seeds: {claim['over_seeds']}.")
    assert (
        f"the replicate of experiment tiny in `{sweep_dir.resolve()}` (2 seeds: 1, 2; 32 steps each; "
        "`experiment=tiny train.max_iters=32`)"
    ) in markdown


def seed_rows(zf_by_step: dict[int, float], loss: float) -> list[dict]:
    """metrics.jsonl rows of one seed with one within pair a-b: zf as given, p 0.001 where zf ≥ 2."""
    return [
        {
            "step": step,
            "loss/val": loss,
            "cos/a-b": zf / 10,
            "z/a-b": zf,
            "zf/a-b": zf,
            "p/a-b": 0.001 if zf >= 2 else 0.3,
        }
        for step, zf in zf_by_step.items()
    ]


def test_the_summary_of_three_made_up_seeds_counts_words_and_bands_them():
    pairs = [{"name": "a-b", "a": "a", "b": "b", "kind": "within", "expect": "up"}]
    runs = [
        SeedRun(1, 0, "complete", seed_rows({0: 0.0, 8: 2.5, 16: 3.0}, 2.0), 60.0),
        SeedRun(2, 1, "complete", seed_rows({0: 0.0, 8: 2.2, 16: 1.0}, 2.2), 120.0),  # held, then faded
        SeedRun(3, 2, "complete", seed_rows({0: 0.0, 8: 1.0, 16: 1.5}, 2.4), 180.0),
        SeedRun(4, 3, "failed", seed_rows({0: 0.0, 8: 9.0}, 0.1)),
    ]  # left out
    data = summarize_replicate(
        runs,
        [1, 2, 3, 4],
        pairs,
        {"g": ["a", "b"]},
        SETTINGS,
        {"n_pairs": 100, "n_permutations": 10},
        {"cosine": {"a-b": {"init": 0.0, "trained": 0.3}}},
    )
    (claim,) = data["claims"]
    assert (claim["n_held"], claim["n_seeds"], claim["over_seeds"]) == (1, 3, "held in 1 of 3: not robust")
    assert [(s["seed"], s["first_held"], s["stayed"]) for s in claim["seeds"]] == [
        (1, 8, True),
        (2, 8, False),
        (3, None, False),
    ]
    assert claim["zf"]["mean"] == pytest.approx(5.5 / 3) and claim["zf"]["sd"] == pytest.approx(
        statistics.stdev([3.0, 1.0, 1.5])
    )
    assert claim["curve"]["steps"] == [0, 8, 16] and claim["curve"]["mean"][1] == pytest.approx(5.7 / 3)
    assert claim["article"] == {"init": 0.0, "trained": 0.3}
    assert data["not_complete"] == [{"job": 3, "seed": 4, "status": "failed"}]
    assert (data["seeds_asked"], data["finished"], data["not_started"]) == ([1, 2, 3, 4], False, [])
    assert data["loss_val"]["mean"] == pytest.approx(2.2) and data["train_minutes"]["mean"] == pytest.approx(2.0)


def test_a_replicate_stopped_part_way_says_which_seeds_finished_stopped_and_never_started():
    pairs = [{"name": "a-b", "a": "a", "b": "b", "kind": "within", "expect": "up"}]
    runs = [
        SeedRun(1, 0, "complete", seed_rows({0: 0.0, 16: 3.0}, 2.0), 60.0, 16),
        SeedRun(2, 1, "interrupted", seed_rows({0: 0.0}, 4.0), None, 6),
    ]
    data = summarize_replicate(runs, [1, 2, 3], pairs, {"g": ["a", "b"]}, SETTINGS, None, {})
    assert (data["seeds"], data["seeds_asked"], data["finished"]) == ([1], [1, 2, 3], False)
    assert data["not_complete"] == [{"job": 1, "seed": 2, "status": "interrupted", "step": 6}]
    assert data["not_started"] == [3]
    markdown = replicate_markdown({"experiment": "toy", "overrides": [], "wandb_group": "g", **data}, None)
    assert markdown.startswith("# Replicate: toy, 1 of 3 seeds, unfinished\n")
    assert (
        "**Unfinished: 1 of the 3 seeds asked for (1, 2, 3) finished; seed 2 (job 1) stopped at step 6; "
        "seed 3 never started.**"
    ) in markdown

    every_seed = summarize_replicate([runs[0]], [1], pairs, {"g": ["a", "b"]}, SETTINGS, None, {})
    assert every_seed["finished"] and "Unfinished" not in replicate_markdown(
        {"experiment": "toy", "overrides": [], "wandb_group": "g", **every_seed}, None
    )


@pytest.mark.slow
def test_ctrl_c_in_the_second_of_three_seeds_stops_the_replicate_and_says_it_is_unfinished(root, tmp_path):
    out = tmp_path / "outputs"
    overrides = ["hydra.mode=MULTIRUN", f"paths.output_dir={out}", "experiment=tiny", "train.max_iters=16"]
    # 16 optimisation steps in job 0, then steps 0 to 5 of job 1: Ctrl-C in its step 5
    at = "glassbox.training.loop:Trainer._optimisation_step"
    done = run_stage_with_ctrl_c("train", at, 16 + 6, [*overrides, "hydra/callbacks=replicate", "seed=1,2,3"], root)
    assert done.returncode == 130, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert "job 1: stopped by SIGINT at step 6" in done.stderr and "The sweep stops here." in done.stderr
    (sweep,) = (out / "tiny" / "sweeps").iterdir()
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir() and p.name.isdigit()) == ["0", "1"]
    data = fileio.read_json(sweep / "replicate.json")
    assert (data["seeds_asked"], data["seeds"], data["finished"], data["not_started"]) == ([1, 2, 3], [1], False, [3])
    assert data["not_complete"] == [{"job": 1, "seed": 2, "status": "interrupted", "step": 6}]
    markdown = (sweep / "replicate.md").read_text(encoding="utf-8")
    assert markdown.startswith("# Replicate: tiny, 1 of 3 seeds, unfinished")
    assert "seed 2 (job 1) stopped at step 6; seed 3 never started" in markdown
    assert not (out / "tiny" / "replicate" / "latest").exists()  # make analyze quotes no unfinished replicate
    jobs = {job["job"]: job["status"] for job in fileio.read_json(sweep / "summary.json")["jobs"]}
    assert jobs == {0: "complete", 1: "interrupted"}


@pytest.mark.parametrize(
    "held, seeds, words",
    [
        (3, 3, "held in 3 of 3 seeds"),
        (2, 3, "held in 2 of 3 seeds"),
        (1, 3, "held in 1 of 3: not robust"),
        (0, 3, "held in 0 of 3 seeds"),
        (1, 2, "held in 1 of 2: not robust"),
        (1, 1, "held in 1 of 1 seed"),
    ],
)
def test_the_wording_follows_the_numbers(held, seeds, words):
    assert seeds_phrase(held, seeds) == words


def test_a_sweep_over_more_than_the_seed_or_no_sweep_is_refused(toy_sweep, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(toy_sweep)])
    assert exit_info.value.code == 2
    assert "differ by model, not only by their seed" in capsys.readouterr().err
    assert not (toy_sweep / "replicate.json").exists()

    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "nowhere")])
    assert exit_info.value.code == 2
    assert "holds no sweep jobs" in capsys.readouterr().err


@pytest.mark.e2e
def test_schedule_study_trains_every_schedule_per_seed_and_tabulates_their_replicates(project):
    """scripts/schedule_study.py: each (schedule, seed) is a run with the schedule's overrides and no
    snapshots left; the table's per-seed counts are those of each schedule's replicate.json."""
    study = [sys.executable, str(PROJECT_ROOT / "scripts" / "schedule_study.py")]
    schedules = {"200x32-lr1e-3": 1e-3, "400x32-lr2e-3": 2e-3}  # the peak learning rate each one sets
    shrink = ["train.max_iters=16", "train.batch_size=4", "train.eval_iters=1"]
    selection = ["--experiments", "tiny", "--schedules", ",".join(schedules)]
    done = subprocess.run(
        [*study, "run", *shrink, *selection, "--seeds", "1,2", "--workers", "2"],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = project / "outputs" / "schedule-study"
    for schedule, learning_rate in schedules.items():
        for seed in (1, 2):
            run_dir = out / "tiny" / schedule / f"s{seed}"
            cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
            assert (cfg.train.learning_rate, cfg.train.max_iters, cfg.seed) == (learning_rate, 16, seed)
            assert fileio.read_json(run_dir / "run.json")["status"] == "complete"
            assert not (run_dir / "checkpoints").exists()
    done = subprocess.run([*study, "table", *selection], cwd=project, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line.split(" | ") for line in (out / "study.md").read_text(encoding="utf-8").splitlines()[2:]]
    assert [row[1] for row in rows] == [f"`{name}`" for name in schedules]
    for row, name in zip(rows, schedules):
        claims = fileio.read_json(out / "tiny" / name / "replicate.json")["claims"]
        within = [c for c in claims if c["kind"] == "within" and c["test"] == "level" and c["a"] is not None]
        held = [sum(c["seeds"][i]["verdict"] == "held" for c in within) for i in range(2)]
        assert row[4] == " ".join(f"{n}/{len(within)}" for n in held)
