"""The command line as a user meets it: `make help`, the glassbox-* commands pyproject.toml installs,
each stage's --help, Hydra's tab completion on them, and paths with spaces and CJK characters through make."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys

import pytest

from glassbox.paths import PROJECT_ROOT
from helpers import ENV, project_with_corpus

STAGES = [
    "prepare",
    "train",
    "analyze",
    "trace",
    "explore",
    "export",
    "inspect_hf",
    "inspect_model",
    "sample",
    "steer",
    "patch",
    "scope",
    "ablate",
]


def command(stage: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """What the installed `glassbox-<stage>` script does: import the stage's cli and call it, argv[0] its name."""
    name = "glassbox-" + stage.replace("_", "-")
    script = f"import sys; from glassbox.{stage} import cli; sys.argv[0] = {name!r}; sys.exit(cli())"
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
    )


def test_make_help_lists_every_target_with_what_it_does():
    makefile = (PROJECT_ROOT / "Makefile").read_text(encoding="utf-8")
    targets = re.search(r"^\.PHONY: (.*)$", makefile, re.M).group(1).split()
    done = subprocess.run(["make", "-s", "help"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    described = dict(re.findall(r"^  make (\S+) +(.+)$", done.stdout, re.M))
    assert sorted(described) == sorted(targets)
    assert "CORPUS=local" in described["prepare"] and "report.md" in described["analyze"]


def test_pyproject_installs_one_command_per_stage():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    scripts = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    expected = {f"glassbox-{stage.replace('_', '-')}": f"glassbox.{stage}:cli" for stage in STAGES}
    assert scripts == {
        **expected,
        "glassbox-sweep": "glassbox.sweep:main",
        "glassbox-replicate": "glassbox.replicate:main",
    }
    for target in scripts.values():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function))


@pytest.mark.slow
@pytest.mark.parametrize(
    "stage, says",
    [
        (
            "train",
            [
                "glassbox-train (make train; python -m glassbox.train): train the character-level GPT",
                "Main options:",
                "train.max_iters=N",
                "train.resume=auto",
                "glassbox-train -m experiment=tiny",
            ],
        ),
        (
            "analyze",
            [
                "glassbox-analyze (make analyze; python -m glassbox.analyze): replay the analysis suites",
                "Main options:",
                "run=DIR",
                "analysis.suites=[...]",
                "report.md",
            ],
        ),
    ],
)
def test_help_says_what_the_stage_does_and_names_its_main_options(stage, says):
    done = command(stage, "--help")
    assert done.returncode == 0, done.stderr
    assert all(text in done.stdout for text in says)
    assert "model: big, llama-style, seed, tiny" in done.stdout  # the config groups, listed by Hydra
    assert f'eval "$(glassbox-{stage} -sc install=bash)"' in done.stdout
    assert "powered by Hydra" not in done.stdout


@pytest.mark.slow
def test_tab_completion_offers_the_config_groups_options():
    line = "glassbox-train model="
    done = command("train", "-sc", "query=bash", env={"COMP_LINE": line, "COMP_POINT": str(len(line))})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["model=big", "model=llama-style", "model=seed", "model=tiny"]


# --- paths with spaces and CJK characters ---------------------------------------------------------


@pytest.mark.e2e
def test_paths_with_spaces_and_cjk_work_through_make_when_quoted_as_the_readme_says(tmp_path):
    project = project_with_corpus(tmp_path / "project")
    data_dir, output_dir = tmp_path / "my data" / "数据", tmp_path / "my runs" / "西游"
    args = (
        f"paths.raw_dir={project / 'data' / 'raw'} wandb.mode=disabled "
        f"paths.data_dir='\"{data_dir}\"' paths.output_dir='\"{output_dir}\"'"
    )  # the README's quoting
    make = ["make", "-f", str(PROJECT_ROOT / "Makefile"), "-o", "install", f"PY={sys.executable}"]  # no venv
    done = subprocess.run(
        [*make, "prepare", "EXPERIMENT=tiny", f"ARGS={args}"],
        cwd=project,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (data_dir / "processed" / "shakespeare" / "meta.json").exists()
    assert (output_dir / "prepare" / "shakespeare").is_dir()
