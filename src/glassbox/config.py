"""What a valid configuration is: every key the stages read, its type and its range, checked before anything runs.

Hydra composes the config from conf/; the pydantic models here (one per config group) say which composed
configs make sense. A bad override (`train.batch_size=0`, `train.max_iters=abc`, `model.n_embd=33` with two
heads) then stops the command with one message that lists every problem, before any run directory, `latest`
link or W&B run exists, instead of a traceback from deep inside training.

Types are strict: `train.max_iters=abc` or `=1e3` is refused, not guessed at. Groups whose keys other parts own
(the corpus's probes and reference figures, the analysis settings) are checked for the keys the code relies on
and may hold more; which keys `model` may hold is for `GPTConfig` to say.

Two ways in:
- `CheckConfig`, a Hydra callback (conf/hydra/default.yaml), validates a command's config before Hydra creates
  the command's directory, and checks that directory can be created (e.g. not under /proc).
- `validate(cfg, training=True)`, called by the train stage for every run (sweep jobs included), adds what
  only training needs: the device asked for exists on this machine.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from glassbox.errors import EXIT_USER_ERROR, GlassboxError
from glassbox.fileio import explain_write_errors
from glassbox.model import GPTConfig

Fraction = Annotated[float, Field(ge=0, lt=1)]  # dropout, Adam's betas
OpenFraction = Annotated[float, Field(gt=0, lt=1)]  # a share of the text that cannot be all or nothing


class Group(BaseModel):
    """A config group: strict types, and keys beyond the declared ones allowed (owned elsewhere)."""

    model_config = ConfigDict(strict=True, extra="allow")


class Paths(Group):
    root_dir: str
    data_dir: str
    raw_dir: str
    processed_dir: str
    output_dir: str


class Normalize(Group):
    newlines: bool
    strip_indent: bool
    nfkc: bool


class Corpus(Group):
    """A shipped corpus names its cache `file` (and a url and sha256); a text of your own names its `path`."""

    name: str
    file: str | None = None
    path: str | None = None
    encoding: str
    normalize: Normalize
    val_fraction: OpenFraction


class Model(Group):
    """The sizes must be positive; the rest GPTConfig checks itself (which keys exist, n_embd divisible by
    n_head, the variants), so those rules keep one owner."""

    n_layer: PositiveInt
    n_head: PositiveInt
    n_embd: PositiveInt
    block_size: PositiveInt
    dropout: Fraction
    bias: bool

    @model_validator(mode="after")
    def builds_a_gpt(self) -> Model:
        try:
            GPTConfig(vocab_size=1, **self.model_dump())
        except TypeError as err:  # a key GPTConfig does not have
            raise ValueError(str(err).replace("GPTConfig.__init__()", "the model")) from None
        return self  # GPTConfig's ValueError becomes this group's message as it is


class Snapshots(Group):
    log_spaced_until: NonNegativeInt
    every: NonNegativeInt  # 0: only the log-spaced steps and the last


class Train(Group):
    max_iters: NonNegativeInt
    batch_size: PositiveInt
    grad_accum_steps: PositiveInt
    learning_rate: PositiveFloat
    min_lr: NonNegativeFloat
    warmup_iters: NonNegativeInt
    lr_decay_iters: NonNegativeInt
    weight_decay: NonNegativeFloat
    beta1: Fraction
    beta2: Fraction
    grad_clip: NonNegativeFloat  # 0 disables clipping
    eval_iters: PositiveInt
    device: str
    dtype: Literal["auto", "float32", "bfloat16", "float16"]
    compile: bool
    log_every: PositiveInt
    snapshots: Snapshots
    resume: str

    @field_validator("device")
    @classmethod
    def device_exists(cls, device: str, info: ValidationInfo) -> str:
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", device):
            raise ValueError("expected auto, cpu, cuda, cuda:<index> or mps")
        if not (info.context or {}).get("training"):
            return device  # other stages do not train: a config for a GPU machine is fine to analyse anywhere
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(
                f"this machine has no CUDA GPU that torch {torch.__version__} can use: use train.device=auto (or cpu)"
            )
        if device.startswith("cuda:") and int(device[5:]) >= torch.cuda.device_count():
            raise ValueError(f"this machine has {torch.cuda.device_count()} CUDA GPU(s), numbered from 0")
        if device == "mps" and not torch.backends.mps.is_available():
            raise ValueError("this machine has no Apple GPU (MPS) that torch can use: use train.device=auto (or cpu)")
        return device

    @field_validator("dtype")
    @classmethod
    def dtype_trains(cls, dtype: str) -> str:
        # float16 would need loss scaling (a GradScaler) not to underflow; bfloat16 has float32's range and
        # needs none. Refused rather than silently trained in float32.
        if dtype == "float16":
            raise ValueError(
                "float16 is not supported (it needs loss scaling, which glassbox does not do): use "
                "bfloat16 on a GPU that has it (train.dtype=auto picks it on CUDA) or float32"
            )
        return dtype


class Chance(Group):
    n_pairs: PositiveInt
    top_k_frequent: PositiveInt
    n_bands: PositiveInt
    min_count: NonNegativeInt
    n_permutations: PositiveInt
    seed: int


class Predictions(Group):
    temperature: NonNegativeFloat  # 0: greedy
    top_k: PositiveInt | None
    gen_tokens: NonNegativeInt
    seed: int


class ProbeBatch(Group):
    n_sequences: PositiveInt


class Analysis(Group):
    at_snapshots: bool
    chance: Chance
    probe_batch: ProbeBatch
    suites: list[str]
    neighbours_k: PositiveInt
    predictions: Predictions
    logit_lens_k: PositiveInt


class Wandb(Group):
    mode: Literal["online", "offline", "disabled"] | None  # None: WANDB_MODE, W&B's settings, else offline
    project: str
    entity: str | None
    group: str
    tags: list[str]
    init_timeout: PositiveFloat  # seconds an online run waits for the server before it logs offline


class Config(Group):
    """The composed config of any stage (each stage adds its own keys beside these)."""

    name: str
    seed: int
    paths: Paths
    corpus: Corpus
    model: Model
    train: Train
    analysis: Analysis
    wandb: Wandb


def validate(cfg: DictConfig, *, training: bool = False) -> None:
    """Raise a GlassboxError listing every key of `cfg` that is missing, of the wrong type or out of range.

    `training` adds the checks of the machine: the device asked for must exist.
    """
    try:  # Hydra's own node is Hydra's to check, and resolves only inside a running job
        data = OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), resolve=True)
    except OmegaConfBaseException as err:
        raise GlassboxError(f"the config does not resolve: {err}") from None
    try:
        Config.model_validate(data, context={"training": training})
    except ValidationError as err:
        problems = "\n".join(f"  {_problem(e)}" for e in err.errors())
        raise GlassboxError(
            f"the config is not valid, so nothing was run:\n{problems}\n"
            "Fix these overrides (or the config files they come from)."
        ) from None


def _problem(error: dict[str, Any]) -> str:
    """One line of the message: `train.batch_size=0: Input should be greater than 0`."""
    key = ".".join(str(part) for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "missing":
        return f"{key}: missing"
    if isinstance(error["input"], dict):  # a whole group's rule (e.g. model: n_embd divisible by n_head)
        return f"{key}: {message}"
    return f"{key}={error['input']!r}: {message}"


def check_writable(directory: Path) -> None:
    """Raise a GlassboxError unless a folder can be created in `directory` (made first if need be)."""
    with explain_write_errors(directory):
        directory.mkdir(parents=True, exist_ok=True)
        Path(tempfile.mkdtemp(dir=directory, prefix=".write-test-")).rmdir()


class CheckConfig(Callback):
    """Hydra callback: a run's config, or every job's config of a sweep, is valid and the directory's parent
    writable, before Hydra makes the directory."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            validate(config)
            check_writable(Path(config.hydra.run.dir).parent)
        except GlassboxError as err:
            print(f"\nerror: {err}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """`seed=1,x` stops here with the bad job named, instead of a sweep directory of failed jobs."""
        jobs = sweep_jobs(config)
        loader = GlobalHydra.instance().config_loader()
        try:
            for number, overrides in enumerate(jobs):
                try:
                    validate(loader.load_sweep_config(config, overrides))
                except GlassboxError as err:
                    raise GlassboxError(f"job {number} of {len(jobs)} ({' '.join(overrides)}): {err}") from None
            check_writable(Path(config.hydra.sweep.dir).parent)
        except GlassboxError as err:
            print(f"\nerror: {err}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)


def sweep_jobs(config: DictConfig) -> list[list[str]]:
    """Each job's overrides, as Hydra's basic sweeper will expand them (none for another sweeper, e.g. Optuna's:
    its jobs are known only while it runs)."""
    if not str(config.hydra.sweeper.get("_target_", "")).endswith("BasicSweeper"):
        return []
    params = config.hydra.sweeper.get("params") or {}
    arguments = [f"{key}={value}" for key, value in params.items()] + list(config.hydra.overrides.task)
    parsed = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader()).parse_overrides(arguments)
    (jobs,) = BasicSweeper.split_arguments(parsed, max_batch_size=None)
    return jobs
