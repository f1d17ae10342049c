"""What many tests share: a project directory with a real corpus, stages run as a user runs them,
offline W&B runs read back. Corpora come from the cache (CI copies ../shared/corpora into data/raw)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from glassbox.paths import PROJECT_ROOT

CORPUS_SOURCES = (PROJECT_ROOT / "data" / "raw", PROJECT_ROOT.parent / "shared" / "corpora")
CORPUS_FILES = {"xiyouji": "xiyouji.txt", "shakespeare": "tinyshakespeare.txt"}


def find_corpus(file_name: str) -> Path:
    for folder in CORPUS_SOURCES:
        if (folder / file_name).exists():
            return folder / file_name
    pytest.skip(f"{file_name} is not cached in data/raw or ../shared/corpora")


def project_with_corpus(root: Path, corpus: str = "shakespeare") -> Path:
    """Make `root` a fresh project directory whose data/raw holds one real corpus (as a link)."""
    file_name = CORPUS_FILES[corpus]
    (root / "data" / "raw").mkdir(parents=True)
    (root / "data" / "raw" / file_name).symlink_to(find_corpus(file_name).resolve())
    return root


def run_stages(root: Path, stages: list[str], overrides: list[str]) -> None:
    """Run each stage in turn as `make <stage>` would, failing the test with its stderr if one fails."""
    for stage in stages:
        done = run_stage(stage, overrides, root)
        assert done.returncode == 0, done.stderr[-3000:]


def path_overrides(root: Path) -> list[str]:
    return [f"paths.root_dir={root}", "wandb.mode=offline"]


def run_stage(stage: str, overrides: list[str], root: Path, timeout: int = 600, **kwargs) -> subprocess.CompletedProcess:
    """Run `python -m glassbox.<stage>` as a user would, outputs under `root`."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "WANDB_SILENT": "true"}
    return subprocess.run(
        [sys.executable, "-m", f"glassbox.{stage}", *path_overrides(root), *overrides],
        cwd=root, env=env, capture_output=True, text=True, timeout=timeout, **kwargs,
    )


def wandb_records(run_dir: Path) -> list[dict]:
    """Every record of the offline W&B run(s) under run_dir, via `wandb leet inspect --json`."""
    import json

    records = []
    for run_file in sorted(run_dir.rglob("run-*.wandb")):
        out = subprocess.run(
            [shutil.which("wandb", path=os.path.dirname(sys.executable)) or "wandb", "leet", "inspect", "--json", str(run_file)],
            capture_output=True, text=True, check=True, timeout=120,
        )
        records += [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    return records
