"""A text of your own (corpus=local): named after its file, its sha256 trusted on first use, bad paths
refused clearly, and prepare → train → analyze → trace end to end with no probes, then with probes
given on the command line; on the way, what the console and train.log show of the run."""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

import pytest

from glassbox import fileio
from glassbox.analyze import analyze
from glassbox.command_line import quote_literal
from glassbox.config import validate
from glassbox.errors import GlassboxError
from glassbox.paths import corpus_name
from glassbox.prepare import prepare
from glassbox.text.corpus import decode
from glassbox.trace import trace
from helpers import find_corpus, run_stage

FILE = "西游记 excerpt.txt"  # a space and CJK: passed to Hydra as typed
NAME = "excerpt"
# The tiny model for 8 steps, snapshots at 0, 1, 2, 4, 8; the file's path as a user types it.
OWN = [
    "experiment=local",
    f"corpus.path=texts/{FILE}",
    "wandb.mode=disabled",
    "model=tiny",
    "train.dtype=float32",  # as the tiny experiment trains the tiny model: bf16's casts outweigh its matmuls there
    "train.max_iters=8",
    "train.batch_size=4",
    "train.eval_iters=1",
    "train.snapshots.log_spaced_until=4",
    "train.snapshots.every=8",
    "analysis.chance.n_permutations=50",
    "analysis.chance.n_pairs=200",
]
SNAPSHOTS = [0, 1, 2, 4, 8]


def write_own_text(root: Path) -> Path:
    """6,000 characters of 西游记 as a UTF-8 file in root/texts/, outside the project's data folder."""
    text = decode(find_corpus("xiyouji.txt").read_bytes())[0][5000:11000]
    path = root / "texts" / FILE
    path.parent.mkdir()
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def own_text(workdir: Path) -> Path:
    return write_own_text(workdir)


@pytest.fixture(scope="module")
def own_run(tmp_path_factory) -> dict:
    """`make prepare train CORPUS=local ARGS="corpus.path=texts/西游记 excerpt.txt ..."` in a fresh project."""
    root = tmp_path_factory.mktemp("own")
    write_own_text(root)
    stages = {stage: run_stage(stage, OWN, root) for stage in ("prepare", "train")}
    for done in stages.values():
        assert done.returncode == 0, done.stderr[-3000:]
    return {"root": root, "run_dir": (root / "outputs" / NAME / "latest").resolve(), **stages}


@pytest.mark.parametrize(
    "path, name",
    [
        ("texts/Hong Lou Meng.txt", "hong-lou-meng"),
        ("my notes (v2).TXT", "my-notes-v2"),
        ("红楼梦.txt", f"local-{hashlib.sha256('红楼梦'.encode()).hexdigest()[:8]}"),  # no ASCII: stable, W&B-safe
        (None, "local"),
    ],
)
def test_the_corpus_is_named_after_its_file(path, name):
    assert corpus_name(path) == name


def test_prepare_records_the_files_sha256_and_checks_a_pinned_one(own_text, make_cfg, caplog):
    caplog.set_level(logging.INFO)
    overrides = ["experiment=local", quote_literal(f"corpus.path={own_text}"), "wandb.mode=disabled"]
    out_dir = prepare(make_cfg("prepare", overrides))
    meta = fileio.read_json(out_dir / "meta.json")
    assert out_dir.name == NAME and meta["raw_file"] == str(own_text)
    assert meta["inputs"]["sha256"] == hashlib.sha256(own_text.read_bytes()).hexdigest()

    with pytest.raises(GlassboxError, match="has sha256 .* but corpus.sha256 is 0000"):
        prepare(make_cfg("prepare", [*overrides, "corpus.sha256=0000"]))

    own_text.write_text(own_text.read_text(encoding="utf-8")[:-100], encoding="utf-8")
    prepare(make_cfg("prepare", overrides))
    assert "changed since it was prepared" in caplog.text  # trusted on first use, so a change is news
    assert fileio.read_json(out_dir / "meta.json")["n_chars"] == 5900


@pytest.mark.parametrize(
    "path, message",
    [
        (None, "has neither a file nor a URL: give your text file with corpus.path=<file>"),
        ("nope.txt", "corpus.path=.*nope.txt does not exist"),
        ("texts", "corpus.path=.*texts is a folder"),
    ],
)
def test_a_missing_file_is_a_clear_error_before_anything_is_written(own_text, workdir, make_cfg, path, message):
    overrides = ["experiment=local", "wandb.mode=disabled", *([f"corpus.path={workdir / path}"] if path else [])]
    with pytest.raises(GlassboxError, match=message):
        prepare(make_cfg("prepare", overrides))
    assert not (workdir / "data" / "processed").exists()


@pytest.mark.e2e
def test_the_console_shows_each_snapshots_val_loss_and_the_log_keeps_the_runs_story(own_run):
    prepared, trained = own_run["prepare"].stdout.splitlines(), own_run["train"].stdout.splitlines()
    assert prepared[0].startswith(f"prepared {NAME}: 6,000 characters (utf-8)")
    assert prepared[-1].startswith(f"wrote {own_run['root'] / 'data' / 'processed' / NAME}/{{train.bin,")
    val_lines = [line for line in trained if re.fullmatch(r"step \d+: (train loss [\d.]+, )?val loss [\d.]+", line)]
    assert [int(line.split(":")[0][5:]) for line in val_lines] == SNAPSHOTS  # as nanoGPT prints its evals
    final = re.match(r"run complete, final val loss ([\d.]+): wrote ", trained[-1])
    # the same loss, to 3 decimals there and 4 in the step's line
    assert final and abs(float(final[1]) - float(val_lines[-1].rsplit(" ", 1)[1])) <= 0.0005 + 1e-9
    assert f"wrote {own_run['run_dir']}" in trained[-1]
    assert "8/8 [" in own_run["train"].stderr and "100%|" in own_run["train"].stderr  # the bar ends at 100 %
    log = (own_run["run_dir"] / "train.log").read_text(encoding="utf-8")
    assert all(line.removeprefix("warning: ") in log for line in trained)  # the same lines, with time and level
    assert "][WARNING] corpus.probes of 'excerpt' names no probe pairs" in log


@pytest.mark.e2e
def test_own_text_analyzes_without_probes_then_with_probes_from_the_command_line(own_run, make_cfg):
    root, run_dir = own_run["root"], own_run["run_dir"]
    done = run_stage("analyze", OWN, root)
    assert done.returncode == 0, done.stderr[-3000:]
    analysis = fileio.read_json(run_dir / "report" / "analysis.json")
    # without probes only the suites that need none: a probe-free corpus has no position property to probe either,
    # while its layers still settle
    assert analysis["suites"] == ["embeddings", "activations", "layer_settling"] and analysis["claims"] == []
    assert "warning: corpus.probes of 'excerpt' names no probe pairs or groups" in done.stdout  # said on the console
    assert "warning: skipping the predictions suite: corpus.probes.prompts is empty" in done.stdout
    (analysis_log,) = run_dir.glob("analysis/*/analyze.log")
    assert "skipping the context suite" in analysis_log.read_text(encoding="utf-8")  # ... and in the log
    report = (run_dir / "report" / "report.md").read_text(encoding="utf-8")
    assert "no claim to judge" in report and "![embedding_scale.png]" in report

    # The same snapshots measured again, with probes given on the command line (in-process: faster).
    own = [quote_literal(arg) for arg in OWN] + [f"paths.root_dir={root}"]  # as the command line quotes them
    probes = ["corpus.probes.groups={say:['道','说'],master:['师','父']}", "corpus.probes.prompts=['师父道']"]
    report_dir = analyze(make_cfg("analyze", [*own, *probes]), run_dir / "analysis" / "with-probes")
    analysis = fileio.read_json(report_dir / "analysis.json")
    assert [c["claim"] for c in analysis["claims"]] == ["within_minus_cross"]
    assert analysis["suites"] == [
        "embeddings",
        "activations",
        "attention",
        "predictions",
        "logit_lens",
        "layer_settling",
    ]
    assert analysis["plot_labels"] == {"font": "Noto Sans CJK SC", "as_code_points": []}  # 说 道 drawn as such
    assert (report_dir / "pca.png").exists() and (report_dir / "attention_final.png").exists()

    with pytest.raises(GlassboxError, match="no prompt to trace: corpus.probes.prompts of 'excerpt' is empty"):
        trace(make_cfg("trace", [*own, "auto=true"]))
    stages = trace(make_cfg("trace", [*own, "prompt='师父'", "auto=true"]))
    assert stages["generation"]["text"].startswith("师父")


@pytest.mark.parametrize(
    "stage, answer",
    [
        (
            "sample",
            r"no prompt to continue: give prompt=<text> \(or prompts=\[...\], prompt_file=<file>\); the default, "
            r"corpus.probes.prompts, is empty for corpus 'excerpt'",
        ),
        (
            "steer",
            r"corpus: corpus 'excerpt' has no steering block .* or give it: '\+corpus.steering=\{positive:\[...\]",
        ),
        (
            "patch",
            r"source: not set: its default, \$\{corpus.steering.patch.source\}, names a key that corpus 'excerpt' "
            r"does not have; give source=<value>\n  target: not set",
        ),
        (
            "ablate",
            r"prompts=\[\]: no prompts to watch: give prompts=\[...\]; the default, corpus.probes.prompts, is empty",
        ),
    ],
)
def test_a_stage_missing_what_a_corpus_of_ones_own_lacks_says_what_to_give(own_text, make_cfg, stage, answer):
    """No steering block, no probe prompts: once omegaconf tracebacks (sample, steer), an interpolation error
    (patch) and a pointer to the steering block (ablate, whose prompts are the probe prompts)."""
    with pytest.raises(GlassboxError, match=answer):
        validate(make_cfg(stage, ["experiment=local", quote_literal(f"corpus.path=texts/{FILE}")]), stage)


@pytest.mark.slow
def test_sample_without_a_prompt_on_a_corpus_of_ones_own_exits_2_before_making_a_folder(own_text, workdir):
    done = run_stage("sample", ["experiment=local", f"corpus.path=texts/{FILE}"], workdir)
    assert done.returncode == 2 and "no prompt to continue: give prompt=<text>" in done.stderr
    assert "Traceback" not in done.stderr and not (workdir / "outputs" / NAME / "samples").exists()
