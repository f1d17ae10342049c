"""What many tests share: a project directory with a real corpus, stages run as a user runs them,
offline W&B runs read back. Corpora come from the cache (CI copies ../shared/corpora into data/raw)."""

from __future__ import annotations

import json
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from glassbox.model import GPT, GPTConfig
from glassbox.paths import CONF_DIR, PROJECT_ROOT
from glassbox.probes.probe_set import ProbeSet
from glassbox.run.layout import point_latest, write_run_state
from glassbox.run.snapshots import load_payload, save_snapshot
from glassbox.run.tracking import JsonlFile
from glassbox.training.schedule import snapshot_steps

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


def copy_project(root: Path, to: Path) -> Path:
    """A copy of project `root` at `to`, for a test that changes it. Links stay links: `latest`, a run's
    `report` and data/raw's corpora are relative or point outside the project. Absolute paths inside
    the copy (the run's .hydra/config.yaml, the config in each snapshot) still name `root`, which only
    ever serves reads (a snapshot's vocabulary), so `root` must stay as it is."""
    shutil.copytree(root, to, symlinks=True, dirs_exist_ok=True)
    return to


# --- the tiny experiment cut to 40 steps (the `reference` fixture), and runs damaged or compared to it -----

# Snapshots at 0, 1, 2, 4, 8, 16, 32 and 40, about a second. Dropout draws from torch's global RNG, so
# exact equality after a resume needs its state too. (TINY, further down, is a hand-made sweep's model.)
TINY_RUN = ["experiment=tiny", "train.device=cpu", "train.max_iters=40", "model.dropout=0.1"]
SCHEDULE = snapshot_steps(40, 16, 32)
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_SILENT": "true", "PYTHONUNBUFFERED": "1"}


def tiny_cfg(root: Path, output_dir: Path, *overrides: str, config_name: str = "train"):
    """The tiny experiment's config as its stage composes it, W&B off, outputs in output_dir."""
    return stage_config(config_name, root, f"paths.output_dir={output_dir}", *TINY_RUN, *overrides)


def history(run_dir: Path) -> tuple[list[dict], list[dict]]:
    """metrics.jsonl and progress.jsonl, without the one wall-clock number (tokens/s)."""
    progress = [
        {k: v for k, v in row.items() if k != "tokens_per_sec"} for row in JsonlFile(run_dir / "progress.jsonl").read()
    ]
    return JsonlFile(run_dir / "metrics.jsonl").read(), progress


def leftovers(run_dir: Path) -> list[str]:
    return [p.name for p in (run_dir / "checkpoints").iterdir() if ".tmp-" in p.name]


def copy_run(reference: Path, outputs: Path, name: str = "run") -> Path:
    """A copy of the reference run as the latest run of the tiny experiment."""
    run_dir = outputs / "tiny" / name
    shutil.copytree(reference, run_dir)
    point_latest(run_dir, outputs, "tiny")
    return run_dir


def assert_equals_the_reference(run_dir: Path, reference: Path) -> None:
    metrics = JsonlFile(run_dir / "metrics.jsonl").read()
    assert [row["step"] for row in metrics] == SCHEDULE  # each step once, in order
    assert metrics == JsonlFile(reference / "metrics.jsonl").read()


def flip_a_byte_of_the_embedding(path: Path) -> None:
    """Damage the stored token embedding, well inside its tensor data, as a bad disk would."""
    with zipfile.ZipFile(path) as archive:
        entry = next(i for i in archive.infolist() if i.filename.endswith("/data/0"))
    data = bytearray(path.read_bytes())
    data[entry.header_offset + entry.file_size // 2] ^= 0xFF
    path.write_bytes(data)


def poison(path: Path) -> None:
    """Re-save a snapshot with nan in its embedding (and a valid checksum), as a diverged run once wrote."""
    payload = load_payload(path)
    payload["model"]["wte.weight"][0, 0] = float("nan")
    save_snapshot(path, payload)


def run_stages(root: Path, stages: list[str], overrides: list[str]) -> None:
    """Run each stage in turn as `make <stage>` would, failing the test with its stderr if one fails."""
    for stage in stages:
        done = run_stage(stage, overrides, root)
        assert done.returncode == 0, done.stderr[-3000:]


def compose_config(config_name: str, overrides: Iterable[str] = (), hydra_node: bool = False):
    """The config a stage composes from conf/ with these overrides (and Hydra's own node, if asked)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return compose(config_name, overrides=list(overrides), return_hydra_config=hydra_node)


def stage_config(config_name: str, root: Path, *overrides: str):
    """A stage's config for project `root` as its command line composes it, W&B off: the in-process
    twin of `run_stage`."""
    return compose_config(config_name, [f"paths.root_dir={root}", "wandb.mode=disabled", *overrides])


def path_overrides(root: Path) -> list[str]:
    return [f"paths.root_dir={root}", "wandb.mode=offline"]


def run_stage(stage: str, overrides: list[str], root: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run `python -m glassbox.<stage>` as a user would, outputs under `root`: a process of its own, forked
    by the stage server (`STAGES`), stdin /dev/null."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "WANDB_SILENT": "true"}
    return STAGES.run(stage, [*path_overrides(root), *overrides], root, env, timeout)


class StageServer:
    """The test side of tests/stage_server.py: one server per test process, started at its first stage run,
    which forks each stage from a process that has done the imports (about 3 s of every start) once."""

    SCRIPT = Path(__file__).with_name("stage_server.py")

    def __init__(self) -> None:
        self.server: subprocess.Popen | None = None

    def start(self) -> subprocess.Popen:
        if self.server is None or self.server.poll() is not None:
            # unbuffered bytes: readline then takes one reply and never reads the next one ahead into a buffer,
            # where select (which sees only the pipe) would miss it and wait out the timeout
            self.server = subprocess.Popen(
                [sys.executable, str(self.SCRIPT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=ENV, bufsize=0
            )
        return self.server

    def reply(self, timeout: float, pid: int | None = None) -> dict:
        server = self.server
        if not select.select([server.stdout], [], [], timeout)[0]:
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
            server.kill()  # its reply line would come late, into the next run: start afresh
            self.server = None
            raise subprocess.TimeoutExpired(server.args, timeout)
        line = server.stdout.readline()
        assert line, f"the stage server ended (exit {server.wait()}); its stderr is in the test's output"
        return json.loads(line)

    def run(
        self, stage: str, args: list[str], cwd: Path, env: dict, timeout: float, ctrl_c_at: tuple | None = None
    ) -> subprocess.CompletedProcess:
        """`python -m glassbox.<stage> args` in cwd with env, as a CompletedProcess (text stdout and stderr)."""
        server = self.start()
        with tempfile.TemporaryDirectory() as folder:
            stdout, stderr = Path(folder, "stdout"), Path(folder, "stderr")
            request = {"module": f"glassbox.{stage}", "args": args, "cwd": str(cwd), "env": env}
            request |= {"stdout": str(stdout), "stderr": str(stderr), "ctrl_c_at": ctrl_c_at}
            server.stdin.write(json.dumps(request).encode("utf-8") + b"\n")
            pid = self.reply(timeout)["pid"]
            returncode = self.reply(timeout, pid)["returncode"]
            read = [path.read_text(encoding="utf-8") if path.exists() else "" for path in (stdout, stderr)]
        return subprocess.CompletedProcess(["python", "-m", f"glassbox.{stage}", *args], returncode, *read)


STAGES = StageServer()


def make_replicate_overrides(*variables: str) -> list[str]:
    """The train overrides `make replicate` passes (read from `make -n`), so the test runs what users run."""
    if shutil.which("make") is None:
        pytest.skip("no make here")
    done = subprocess.run(
        ["make", "-n", "-C", str(PROJECT_ROOT), "replicate", f"PY={sys.executable}", *variables],
        capture_output=True,
        text=True,
        check=True,
    )
    (command,) = [line for line in done.stdout.splitlines() if "-m glassbox.train" in line]
    words = shlex.split(command)
    return words[words.index("glassbox.train") + 1 :]


def run_stage_with_ctrl_c(
    stage: str, at: str, nth: int, overrides: list[str], root: Path
) -> subprocess.CompletedProcess:
    """`run_stage`, with Ctrl-C pressed (SIGINT to the stage's process) as the nth call of `at`
    ("glassbox.generation:sample_next", "module:Attribute.path") begins: a point of the run chosen exactly."""
    return STAGES.run(stage, [*path_overrides(root), *overrides], root, ENV, 600, ctrl_c_at=(at, nth))


@contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """`folder` unwritable, as a read-only disk or another user's folder is, even for root (whom chmod does not
    stop): a read-only bind mount where this process may mount, else its write bits removed. Skips the test
    where neither stops a write."""
    mounted = os.geteuid() == 0 and subprocess.run(["mount", "--bind", "-o", "ro", folder, folder]).returncode == 0
    if not mounted:
        subprocess.run(["chmod", "-R", "a-w", folder], check=True)
    try:
        try:
            Path(tempfile.mkdtemp(dir=folder)).rmdir()
        except OSError:
            yield folder
        else:
            pytest.skip(f"{folder} cannot be made read-only here")
    finally:
        subprocess.run(["umount", folder] if mounted else ["chmod", "-R", "u+w", folder], check=True)


def without_wandb_mode() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key != "WANDB_MODE"}


def run_as_user(stage: str, overrides: list[str], root: Path, **env: str) -> subprocess.CompletedProcess:
    """`python -m glassbox.<stage>` with no wandb.mode on the command line: the mode comes from `env`."""
    environment = {**without_wandb_mode(), "OMP_NUM_THREADS": "1", "WANDB_SILENT": "true", **env}
    done = STAGES.run(stage, [f"paths.root_dir={root}", *overrides], root, environment, 600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


# --- the one 西游记 run of the session (test_explorer, test_wandb) ----------------------------------------

XIYOUJI_RUN = [
    "experiment=tiny",
    "corpus=xiyouji",
    "model.n_layer=4",
    "model.n_head=4",
    "train.snapshots.every=6",
    "wandb.projector.steps=[0,1]",
]  # the default run's shape (4 layers × 4 heads, 17 snapshots) on the tiny model's 64 steps
XIYOUJI_SNAPSHOTS = [
    0,
    1,
    2,
    4,
    6,
    8,
    12,
    16,
    18,
    24,
    30,
    36,
    42,
    48,
    54,
    60,
    64,
]  # log-spaced to 16, every 6, the last


def wandb_records(run_dir: Path) -> list[dict]:
    """Every record of the offline W&B run(s) under run_dir, via `wandb leet inspect --json`."""
    import json

    records = []
    for run_file in sorted(run_dir.rglob("run-*.wandb")):
        out = subprocess.run(
            [
                shutil.which("wandb", path=os.path.dirname(sys.executable)) or "wandb",
                "leet",
                "inspect",
                "--json",
                str(run_file),
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        records += [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    return records


# W&B's documented rule for a metric name, with `/` separating the sections of a workspace.
WANDB_KEY = re.compile(r"^[_a-zA-Z][_a-zA-Z0-9]*(/[_a-zA-Z][_a-zA-Z0-9]*)*$")


def logged_keys(records: list[dict]) -> set[str]:
    """Every key logged to history or summary in `records`; a table's or image's fields (`key._type`,
    `key.path`, ...) count as its one key, W&B's own (`_step`, `_runtime`, ...) not at all."""
    keys = set()
    for record in records:
        if record["type"] not in ("history", "summary"):
            continue
        item = record["history"]["item"] if record["type"] == "history" else record["summary"]["update"]
        media = {key.removesuffix("._type") for key in item if key.endswith("._type")}
        keys |= {key for key in item if not key.startswith("_") and key.split(".")[0] not in media} | media
    return keys


# --- a hand-made sweep (test_sweep, test_explorer) ------------------------------------------------------

PROBES = {
    "groups": {"vowels": ["a", "e"], "marks": [".", "!"]},
    "pairs": [
        {"id": "a_e", "a": "a", "b": "e"},
        {"id": "period_exclamation", "a": ".", "b": "!"},
        {"id": "a_period", "a": "a", "b": "."},
        {"id": "a_A", "a": "a", "b": "A", "expect": "none"},
    ],
}  # up, up, down, none
TINY = dict(vocab_size=65, n_layer=1, n_head=1, n_embd=8, block_size=8, dropout=0.0, bias=False)
SMALL = {**TINY, "n_embd": 16}


def fake_job(
    sweep_dir: Path,
    num: int,
    overrides: list[str],
    seed: int,
    status: str,
    model_args: dict,
    final: dict[str, float],
    step: int = 16,
) -> None:
    """A job directory as Hydra and train leave it, with `final` as the last metrics.jsonl row."""
    run_dir = sweep_dir / str(num)
    (run_dir / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(overrides), run_dir / ".hydra" / "overrides.yaml")
    OmegaConf.save(OmegaConf.create({"hydra": {"job": {"num": num}}}), run_dir / ".hydra" / "hydra.yaml")
    OmegaConf.save(
        OmegaConf.create(
            {
                "name": "toy",
                "seed": seed,
                "corpus": {"probes": PROBES},
                "wandb": {
                    "mode": "disabled",
                    "project": "glassbox",
                    "entity": None,
                    "group": "toy-sweep-x",
                    "tags": [],
                },
            }
        ),
        run_dir / ".hydra" / "config.yaml",
    )
    write_run_state(
        run_dir, status=status, n_params=GPT(GPTConfig(**model_args)).num_params(), probe_pairs=probe_pairs()
    )
    metrics = JsonlFile(run_dir / "metrics.jsonl")
    metrics.append({"step": 0, "loss/val": 4.2, **{f"{k}/{p}": 0.0 for k in ("cos", "z", "zf") for p in pair_names()}})
    metrics.append({"step": step, **final})


def probe_pairs() -> list[dict[str, str]]:
    """The pairs as train records them in run.json (kind and expected direction decided by ProbeSet)."""
    chars = sorted(
        {c for group in PROBES["groups"].values() for c in group}
        | {c for p in PROBES["pairs"] for c in (p["a"], p["b"])}
    )
    return ProbeSet.build(PROBES["groups"], PROBES["pairs"], {c: i for i, c in enumerate(chars)}).describe_pairs()


def pair_names() -> list[str]:
    return [p["id"] for p in PROBES["pairs"]]


def final_row(loss: float, zf: list[float]) -> dict[str, float]:
    """loss/val, and for each pair cos = zf / 10, z = zf + 1, zf as given."""
    row = {"loss/val": loss}
    for name, value in zip(pair_names(), zf):
        row |= {f"cos/{name}": value / 10, f"z/{name}": value + 1, f"zf/{name}": value}
    return row
