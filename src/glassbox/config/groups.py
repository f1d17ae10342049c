"""The config groups (conf/<group>/): each one's keys, their types and ranges.

Types are strict: `train.max_iters=abc` or `=1e3` is refused, not guessed at. Groups whose keys other parts own
(the corpus's probes and reference figures, the analysis settings) are checked for the keys the code relies on
and may hold more; which keys `model` may hold is for `GPTConfig` to say.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import torch
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from glassbox import metric_keys as keys
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


class ContextProbe(Group):
    """corpus.probes.context: one character in prompts of its different senses (the context suite)."""

    char: str
    senses: dict[str, list[str]]


class PositionProperty(Group):
    """corpus.probes.position: a property of each character position that the linear probes read from
    every layer (glassbox.probes.text_property): the positions a regular expression's matches cover."""

    name: str  # how the report names it
    pattern: str
    decided_after: list[str] = []  # single characters: positions of a window before the first one are left out

    @field_validator("pattern")
    @classmethod
    def compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as err:
            raise ValueError(
                f"not a Python regular expression ({err}): e.g. '(?<=“)[^”]*”' for inside quotes"
            ) from None
        return pattern

    @field_validator("decided_after")
    @classmethod
    def single_characters(cls, chars: list[str]) -> list[str]:
        longer = [c for c in chars if len(c) != 1]
        if longer:
            raise ValueError(f"expected single characters, got {longer}")
        return chars


OffsetPair = Annotated[list[str], Field(min_length=2, max_length=2)]  # [a, b]: b − a is the pair's offset


class Probes(Group):
    """corpus.probes: what the emergence metrics measure; ProbeSet.build checks them against the vocabulary,
    the analysis suites the prompts, the context and the position property; OffsetSet.build the offset sets."""

    groups: dict[str, Any] | None  # None: no groups yet (conf/corpus/local.yaml)
    pairs: list[Any]
    prompts: list[str] = []
    context: ContextProbe | None = None
    position: PositionProperty | None = None  # None: no linear probes (the layer_settling suite still runs)
    offsets: dict[str, list[OffsetPair]] | None = None  # None: no offset sets (probes/arithmetic.py)

    @field_validator("offsets")
    @classmethod
    def offsets_measurable(cls, offsets: dict[str, list[list[str]]] | None) -> dict[str, list[list[str]]] | None:
        """Each set: a name that can stand in a metric key, two or more pairs of single, distinct characters."""
        for name, pairs in (offsets or {}).items():
            if not keys.is_fragment(name):
                raise ValueError(
                    f"offset set {name!r}: its name must be ASCII letters, digits and _, not starting with a digit "
                    "(it names the set's metric keys, e.g. offset/antonyms/zf)"
                )
            chars = [char for pair in pairs for char in pair]
            if len(pairs) < 2 or any(len(char) != 1 for char in chars) or len(set(chars)) != len(chars):
                raise ValueError(
                    f"offset set {name}: give two or more pairs [a, b] of single characters, no character twice "
                    f"(e.g. [[大, 小], [多, 少]]), got {pairs}"
                )
        return offsets


class Corpus(Group):
    """A shipped corpus names its cache `file` (and a url and sha256); a text of your own names its `path`."""

    name: str
    file: str | None = None
    path: str | None = None
    encoding: str
    normalize: Normalize
    val_fraction: OpenFraction
    probes: Probes


class Model(Group):
    """The sizes must be positive; the rest GPTConfig checks itself (which keys exist, n_embd divisible by
    n_head, n_kv_head dividing n_head, the variants), so those rules keep one owner."""

    n_layer: PositiveInt
    n_head: PositiveInt
    n_kv_head: PositiveInt | None = None  # null: n_head (GPTConfig checks that it divides n_head)
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


class Arithmetic(Group):
    """analysis.arithmetic: the random frequency-matched sets the offset sets are judged against."""

    n_sets: Annotated[int, Field(ge=2)]
    seed: int


class Predictions(Group):
    temperature: NonNegativeFloat  # 0: greedy
    top_k: PositiveInt | None
    gen_tokens: NonNegativeInt
    seed: int


class ProbeBatch(Group):
    n_sequences: PositiveInt


class Embedding(Group):
    n_frequent: int  # emb/top<n>/* and emb/bottom<n>/*: the most and least frequent characters


class Explorer(Group):
    n_frequent: PositiveInt  # the embedding map: the probe characters and this many most frequent others


class LayerProbes(Group):
    """analysis.layer_probes: the fixed windows and the probe of the linear_probes and layer_settling suites."""

    n_sequences: Annotated[int, Field(ge=2)]  # validation windows of block_size (some fit, the others score)
    train_share: OpenFraction  # the share of the windows the probes are fit on
    l2: NonNegativeFloat  # the logistic regression's weight decay (on standardised features)
    max_iter: PositiveInt  # L-BFGS iterations
    seed: int  # the windows' fit/score split and the control task's labels


class Held(Group):
    """analysis.mechanisms.held: when a mechanism held at a snapshot (conf/analysis/default.yaml says how)."""

    ratio: Annotated[float, Field(gt=1)]
    margin: NonNegativeFloat
    icl_nats: NonNegativeFloat
    repeat_nats: NonNegativeFloat


Span = Annotated[list[Annotated[float, Field(ge=0, le=1)]], Field(min_length=2, max_length=2)]  # [a, b): shares


class Mechanisms(Group):
    """analysis.mechanisms: the head-role and in-context-learning metrics (probes/heads.py) and their verdicts."""

    seq_len: Annotated[int, Field(ge=2)]
    n_sequences: PositiveInt
    band: Span
    seed: int
    n_windows: PositiveInt
    icl_early: Span
    icl_late: Span
    held: Held

    @field_validator("band", "icl_early", "icl_late")
    @classmethod
    def ordered(cls, span: list[float]) -> list[float]:
        if not span[0] < span[1]:
            raise ValueError("expected [from, to) with from < to, both shares between 0 and 1")
        return span


class Analysis(Group):
    at_snapshots: bool
    embedding: Embedding
    explorer: Explorer
    chance: Chance
    arithmetic: Arithmetic
    probe_batch: ProbeBatch
    suites: list[str]
    neighbours_k: PositiveInt
    predictions: Predictions
    logit_lens_k: PositiveInt
    layer_probes: LayerProbes
    mechanisms: Mechanisms


class Claims(Group):
    """How the report words a claim (conf/analysis/default.yaml says what each means)."""

    z_min: PositiveFloat
    p_max: Annotated[float, Field(gt=0, le=1)]
    early_drift: Annotated[float, Field(ge=0, le=1)]  # a share of the run's steps


class Projector(Group):
    steps: list[int]  # the snapshot steps it is logged at (and the last)
    n_frequent: int  # its rows: the probe characters and this many most frequent others


class Wandb(Group):
    mode: Literal["online", "offline", "disabled"] | None  # None: WANDB_MODE, W&B's settings, else offline
    project: str
    entity: str | None
    group: str
    tags: list[str]
    projector: Projector
    init_timeout: PositiveFloat  # seconds an online run waits for the server before it logs offline
