"""Each stage's own keys (conf/<stage>.yaml), beside the groups every stage composes.

`STAGES` maps a stage's config name to its schema; `glassbox.config.validate` returns the schema's typed
config, which the stage hands on section by section. What needs the vocabulary or a snapshot (a prompt's
characters, a layer the model has, a position both prompts have) is checked where those are read.

Every stage composes every group of conf/common.yaml: the experiments (conf/experiment/*.yaml) override the
model and train groups and set their keys, and Hydra 1.3 refuses to override a group the config lacks. The
stages that read a model from a snapshot declare only the groups they read, so keys they never use (the
model's sizes, the training schedule) are not checked for them.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveInt,
    field_validator,
    model_validator,
)

from glassbox import hooks
from glassbox.config.groups import Analysis, Claims, Corpus, Group, Model, Paths, Train, Wandb

# The groups of conf/common.yaml: every stage composes them, whether or not its schema declares them.
COMMON_GROUPS = ("paths", "corpus", "model", "train", "analysis", "wandb")
TopP = Annotated[float, Field(gt=0, le=1)]  # the nucleus: a share of the probability, (0, 1]


def _as_list(value: Any) -> Any:
    """A single value given where a list is read becomes a list of one (None: an empty list)."""
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _residual_point(point: Any) -> Any:
    if point not in hooks.RESIDUAL_WIDTH:
        raise ValueError(
            f"not a hook point a vector can be added to or patched into; choose one of "
            f"{', '.join(hooks.RESIDUAL_WIDTH)} (each block's [batch, position, n_embd])"
        )
    return point


def _layers(value: Any) -> Any:
    """all, one block index or a list of them (whether the model has them is checked against the snapshot)."""
    if value == "all":
        return value
    layers = _as_list(value)
    if not layers or any(isinstance(layer, bool) or not isinstance(layer, int) for layer in layers):
        raise ValueError("give all, a block index or a list of them, e.g. layer=[0,1]")
    return layers


def _alphas(value: Any) -> list[float]:
    alphas = _as_list(value)
    bad = [a for a in alphas if isinstance(a, bool) or not isinstance(a, (int, float)) or not math.isfinite(a)]
    if bad or not alphas:
        raise ValueError(
            "every strength α must be a number (the multiple of the direction added), e.g. alphas=[-4,-2,2,4]"
        )
    return [float(a) for a in alphas]


def _characters(value: Any) -> list[str]:
    chars = [str(c) for c in _as_list(value)]
    if not chars or any(len(c) != 1 for c in chars):
        raise ValueError("give one or more single characters, e.g. ['：']")
    return chars


Text = Annotated[str, BeforeValidator(str)]  # a prompt is text, whatever Hydra parsed it as
Texts = Annotated[list[Text], BeforeValidator(_as_list)]
Point = Annotated[str, BeforeValidator(_residual_point)]
Layers = Annotated[Literal["all"] | list[int], BeforeValidator(_layers)]
Alphas = Annotated[list[float], BeforeValidator(_alphas)]
Characters = Annotated[list[str], BeforeValidator(_characters)]
Step = int | None  # which snapshot; None: the last one
Steps = int | Literal["all"] | None  # all: every snapshot of the run


class Stage(Group):
    """What every stage reads: the experiment's name and seed, where its files are, its corpus."""

    name: str
    seed: int
    paths: Paths
    corpus: Corpus


class RunStage(Stage):
    """The stages of a training run (prepare, train, analyze, explore) read every group of conf/common.yaml."""

    model: Model
    train: Train
    analysis: Analysis
    wandb: Wandb


class OneSnapshot(Stage):
    """A stage that reads one snapshot: its model comes from there, so the model, train, analysis and wandb
    groups are composed (the experiments override them) but neither declared nor checked."""

    step: Step
    run: str | None
    checkpoint: str | None


class Snapshots(Stage):
    """A stage that reads one or more snapshots (see OneSnapshot)."""

    step: Steps
    run: str | None
    checkpoint: str | None


class Prepare(RunStage):
    pass


class TrainStage(RunStage):
    pass


class AnalysisWithClaims(Analysis):
    claims: Claims


class Analyze(RunStage):
    run: str | None
    analysis: AnalysisWithClaims


class Explore(RunStage):
    run: str | None
    sweep: str | None


class InspectModel(OneSnapshot):
    pass


class Export(Snapshots):
    pass


class HfModel(Group):
    path: str | None  # None: the stage says a folder is needed
    device: str
    add_special_tokens: bool


class InspectHf(Stage):
    """A Hugging Face model's folder: the analysis suites' settings, and no model, train or wandb groups."""

    hf: HfModel
    analysis: Analysis


class Sample(OneSnapshot):
    prompt: Text | None
    prompts: list[Text] | str | None  # a single value is a mistake the stage explains
    prompt_file: str | None
    num_samples: PositiveInt
    max_new_tokens: NonNegativeInt
    sampler: Literal["sample", "greedy"]  # greedy: the most likely character, as temperature=0
    temperature: NonNegativeFloat  # 0: greedy
    top_k: PositiveInt | None
    top_p: TopP | None
    use_cache: bool
    device: Literal["auto", "cpu", "cuda", "mps"]

    @model_validator(mode="after")
    def has_a_prompt(self) -> Sample:
        """No prompt given: the corpus's first probe prompt, which a corpus of one's own may not have."""
        if self.prompt is None and self.prompts is None and self.prompt_file is None and not self.corpus.probes.prompts:
            raise ValueError(
                f"no prompt to continue: give prompt=<text> (or prompts=[...], prompt_file=<file>); the default, "
                f"corpus.probes.prompts, is empty for corpus '{self.corpus.name}'"
            )
        return self


class Trace(OneSnapshot):
    prompt: Text | None
    gen_tokens: NonNegativeInt
    temperature: NonNegativeFloat
    top_k: PositiveInt | None
    top_p: TopP | None
    auto: bool
    layer: int  # whether the model has this layer and head is checked against the snapshot
    head: int
    sample_seed: int


class Steering(Group):
    """corpus.steering: the prompts with and without the property, those it is measured on, its characters."""

    positive: Texts
    negative: Texts
    held_out: Texts
    targets: Characters


class SteeringCorpus(Corpus):
    steering: Steering

    @model_validator(mode="before")
    @classmethod
    def has_a_steering_block(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("steering") is None:
            raise ValueError(
                f"corpus '{data.get('name')}' has no steering block (the prompts with and without the property, "
                "the held-out ones, the target characters): add one to its config, as conf/corpus/xiyouji.yaml "
                "has, or give it: '+corpus.steering={positive:[...],negative:[...],held_out:[...],targets:[...]}'"
            )
        return data


class Intervention(Snapshots):
    """An intervention experiment logs a W&B run, which the wandb group configures."""

    wandb: Wandb


class Steer(Intervention):
    corpus: SteeringCorpus
    point: Point
    layer: Layers
    alphas: Alphas
    n_random: Annotated[int, Field(ge=2)]
    seed: NonNegativeInt
    gen_tokens: NonNegativeInt
    temperature: NonNegativeFloat  # of the continuations; 0: greedy
    z_min: float


class Patch(Intervention):
    source: Text
    target: Text
    point: Point
    layer: Layers
    position: int  # whether both prompts have it is checked once they are encoded


class Identity(Group):
    """How `make scope` builds its identity template from the corpus's most frequent letters."""

    examples: PositiveInt  # "XX" lines, one per frequent character
    separator: Text  # between a character and its copy ("" in 西游记, " " in tiny-shakespeare)
    placeholder: Text | None  # the character whose state is overwritten; None: the next frequent letter


class Scope(Intervention):
    prompts: Texts  # sources whose continuation is shown (at their last position)
    n_sequences: PositiveInt  # validation windows, every position a source of Precision@1
    length: PositiveInt  # characters per window
    seed: NonNegativeInt  # which windows, and the shuffles of the chance baseline
    point: Point
    layer: Layers
    target_layer: NonNegativeInt | None  # None: each source layer's own (ℓ* = ℓ)
    targets: Annotated[list[Literal["neutral", "identity"]], BeforeValidator(_as_list), Field(min_length=1)]
    neutral: Text  # the neutral target: a newline, or any fixed context
    identity: Identity
    gen_tokens: PositiveInt  # greedy continuation; its first character is the one Precision@1 scores
    n_shuffles: Annotated[int, Field(ge=2)]
    z_min: float


class Ablate(Intervention):
    mode: Literal["mean", "zero"]  # mean: a head's output replaced by its mean over the validation windows
    n_sequences: PositiveInt
    seed: NonNegativeInt
    prompts: Texts

    @field_validator("prompts")
    @classmethod
    def has_prompts(cls, prompts: list[str]) -> list[str]:
        if not prompts:
            raise ValueError(
                "no prompts to watch: give prompts=[...]; the default, corpus.probes.prompts, is empty for this corpus"
            )
        return prompts


STAGES: dict[str, type[Stage]] = {
    "prepare": Prepare,
    "train": TrainStage,
    "analyze": Analyze,
    "explore": Explore,
    "export": Export,
    "inspect_hf": InspectHf,
    "inspect_model": InspectModel,
    "sample": Sample,
    "trace": Trace,
    "steer": Steer,
    "patch": Patch,
    "ablate": Ablate,
    "scope": Scope,
}
