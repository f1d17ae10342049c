"""The analysis suites: what `make analyze` asks of every snapshot of a run.

Each suite is a function (model, SuiteInputs) -> plain data (dicts, lists, numbers, strings)
composed from the pure probe functions in glassbox.probes. None re-implements the forward pass:
activations come from the model's run_with_cache hook points, samples from `generation.generate`, and
the embeddings suite starts from `Measurements.of`, the very function training calls at each
snapshot, so analysis and training agree on every number they share. A suite's "scalars"
({key: number}) are what gets plotted against the training step; everything else describes
that one snapshot.

Suites expect a model in eval mode, as `model_from_snapshot` returns it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn

from glassbox import hooks
from glassbox import metric_keys as keys
from glassbox.analysis.measurements import Measurements
from glassbox.config.groups import Analysis, Corpus, LayerProbes
from glassbox.errors import GlassboxError
from glassbox.generation import generate
from glassbox.probes import lens
from glassbox.probes.activations import attention_entropy, capture_activations, residual_table
from glassbox.probes.context import collect_target_residuals, sense_similarity
from glassbox.probes.embeddings import nearest_neighbours, pca_2d, with_most_frequent
from glassbox.probes.linear_probe import control_labels, probe_scores
from glassbox.probes.predictions import top_k_next
from glassbox.probes.similarity import linear_cka
from glassbox.probes.text_property import UNDECIDED, window_labels
from glassbox.text.tokens import TokenData

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prompt:
    text: str
    ids: list[int]


@dataclass(frozen=True)
class ContextProbe:
    """One character in prompts of different senses (道 as "said" and as "the Way")."""

    char: str
    char_id: int
    prompts: list[Prompt]
    senses: list[str]  # the sense of each prompt


@dataclass(frozen=True)
class Sampling:
    temperature: float
    top_k: int
    gen_tokens: int
    seed: int


MIN_PER_CLASS = 20  # positions of each class a probe needs on each side of the fit/score split
WINDOW_CHUNK = 16  # windows per forward pass: the cache holds logits for every position


@dataclass(frozen=True)
class LayerWindows:
    """The fixed validation windows the linear_probes and layer_settling suites measure every snapshot on.

    labels [n, T]: the corpus's position property (text_property.UNDECIDED where the window cannot tell),
    control [n, T]: the control task's labels of the same positions (None without a property, as labels);
    is_train [n]: whether the probes are fit on the window's positions (else scored on them), one draw per run.
    final: every layer's residual stream on these windows at the run's last snapshot (final_step), what
    layer_settling compares each snapshot with; `with_final_snapshot` sets it.
    """

    ids: Tensor
    property_name: str | None
    labels: Tensor | None
    control: Tensor | None
    is_train: Tensor
    l2: float
    max_iter: int
    final_step: int | None = None
    final: dict[str, Tensor] | None = None

    @classmethod
    def from_config(cls, corpus: Corpus, settings: LayerProbes, data: TokenData, block_size: int) -> LayerWindows:
        n = settings.n_sequences
        generator = torch.Generator().manual_seed(settings.seed)  # its own draws: no other number moves
        fit = torch.randperm(n, generator=generator)[: min(max(round(settings.train_share * n), 1), n - 1)]
        is_train = torch.zeros(n, dtype=torch.bool)
        is_train[fit] = True
        ids = data.probe_batch(n, block_size)
        position = corpus.probes.position
        labels = control = None
        if position is not None:
            text = data.vocab.decode(data.splits["val"])
            starts = data.probe_starts(n, block_size)
            labels = window_labels(text, position.pattern, starts, block_size, position.decided_after)
            decided = labels != UNDECIDED
            control = torch.full_like(labels, UNDECIDED)
            if decided.any():
                share = labels[decided].double().mean().item()
                control[decided] = control_labels(ids[decided], share, generator)
        return cls(
            ids=ids,
            property_name=position.name if position else None,
            labels=labels,
            control=control,
            is_train=is_train,
            l2=settings.l2,
            max_iter=settings.max_iter,
        )

    def too_few(self) -> str | None:
        """Why the windows cannot fit and score a probe (a class too rare on one side), or None when they can."""
        split = self.is_train[:, None].expand_as(self.labels)
        for side, where in (("fit", split), ("scored", ~split)):
            counts = [int(((self.labels == c) & where).sum()) for c in (0, 1)]
            if min(counts) < MIN_PER_CLASS:
                return (
                    f"the {side} windows hold {counts[1]} positions with the property {self.property_name!r} and "
                    f"{counts[0]} without (at least {MIN_PER_CLASS} of each needed): raise "
                    "analysis.layer_probes.n_sequences or check corpus.probes.position.pattern"
                )
        return None


@dataclass(frozen=True)
class SuiteInputs:
    """Everything the suites need besides the model, fixed once per analysis."""

    measurements: Measurements
    itos: list[str]
    probe_chars: list[str]  # every group character, then the other characters of the pairs
    probe_groups: list[str]  # the (first) group of each probe character, "" for none
    probe_ids: Tensor
    prompts: list[Prompt]
    context: ContextProbe | None
    sampling: Sampling
    neighbours_k: int
    lens_k: int
    map_n_frequent: int  # the embedding map shows the probe characters and this many most frequent others
    initial_embedding: Tensor | None = None  # the run's step-0 embedding, for the dcos/ keys
    layer_windows: LayerWindows | None = None  # the linear_probes and layer_settling suites' windows

    @classmethod
    def from_config(
        cls, corpus: Corpus, settings: Analysis, data: TokenData, block_size: int, initial_embedding: Tensor | None
    ) -> SuiteInputs:
        measurements = Measurements.from_config(corpus, settings, data, block_size)
        probes = measurements.probes
        group_of = probes.char_groups()

        spec = corpus.probes
        where = f"corpus.probes of '{corpus.name}' (conf/corpus/{corpus.name}.yaml)"

        def prompt(text: str) -> Prompt:
            if len(text) > block_size:
                raise GlassboxError(f"{where}: prompt {text!r} is longer than the model's block_size {block_size}")
            try:
                return Prompt(text, data.vocab.encode(text))
            except GlassboxError as err:
                raise GlassboxError(f"{where}: prompt {text!r}: {err}") from err

        context = None
        if spec.context:
            char = spec.context.char
            prompts, senses = [], []
            for sense, texts in spec.context.senses.items():
                for text in texts:
                    if char not in text:
                        raise GlassboxError(f"{where}: context prompt {text!r} of sense {sense} lacks {char!r}")
                    prompts.append(prompt(text))
                    senses.append(sense)
            context = ContextProbe(char, prompt(char).ids[0], prompts, senses)

        return cls(
            measurements=measurements,
            itos=data.vocab.itos,
            probe_chars=list(group_of),
            probe_groups=list(group_of.values()),
            probe_ids=torch.tensor([data.vocab.stoi[c] for c in group_of], dtype=torch.long),
            prompts=[prompt(text) for text in spec.prompts],
            context=context,
            sampling=Sampling(
                **settings.predictions.model_dump(include={"temperature", "top_k", "gen_tokens", "seed"})
            ),
            neighbours_k=settings.neighbours_k,
            lens_k=settings.logit_lens_k,
            map_n_frequent=settings.explorer.n_frequent,
            initial_embedding=initial_embedding,
            layer_windows=LayerWindows.from_config(corpus, settings.layer_probes, data, block_size),
        )


def _batch(prompt: Prompt, model: nn.Module) -> Tensor:
    return torch.tensor([prompt.ids], device=next(model.parameters()).device)


def _chars_with(itos: list[str], ids: Tensor, values: Tensor) -> list[list]:
    """[[char, value], ...]: a ranking (probabilities, cosines) as plain data, best first."""
    return [[itos[i], v] for i, v in zip(ids.tolist(), values.tolist())]


def embeddings(model: nn.Module, inputs: SuiteInputs) -> dict[str, Any]:
    """The training-time metrics, plus each probe character's nearest neighbours, a 2-D PCA of
    the probe characters (when the corpus config names any), the embedding map (a 2-D PCA of the
    probe and the most frequent characters, with counts and row norms) and each pair's
    frequency-matched null (mean, std).

    The map's groups are the probe groups ("" = in pairs only), null for the frequent others.
    """
    measurements = inputs.measurements
    W = model.wte.weight.detach()
    scalars = measurements.of(model, inputs.initial_embedding)

    ids = inputs.probe_ids.to(W.device)
    neighbour_ids, cosines = nearest_neighbours(W, ids, inputs.neighbours_k)
    map_ids = with_most_frequent(inputs.probe_ids, measurements.counts, inputs.map_n_frequent)
    map_rows = W[map_ids.to(W.device)].float()
    map_coords, map_explained = pca_2d(map_rows)
    matched_null = measurements.chance.matched_null(W)
    result = {
        "scalars": scalars,
        "neighbours": [
            {"char": char, "neighbours": _chars_with(inputs.itos, row_ids, row_cos)}
            for char, row_ids, row_cos in zip(inputs.probe_chars, neighbour_ids, cosines)
        ],
        "map": {
            "chars": [inputs.itos[i] for i in map_ids.tolist()],
            "counts": measurements.counts[map_ids].tolist(),
            "groups": inputs.probe_groups + [None] * (len(map_ids) - len(inputs.probe_groups)),
            "coords": map_coords.tolist(),
            "norms": map_rows.norm(dim=-1).tolist(),
            "explained": map_explained.tolist(),
        },
        "matched_null": [
            {"pair": pair.name, "mean": null.mean().item(), "std": null.std().item()}
            for pair, null in zip(measurements.probes.pairs, matched_null)
        ],
    }
    if inputs.probe_chars:  # a corpus of your own may name no probe characters yet
        coords, explained = pca_2d(W[ids])
        result["pca"] = {
            "chars": inputs.probe_chars,
            "groups": inputs.probe_groups,
            "coords": coords.tolist(),
            "explained": explained.tolist(),
        }
    return result


def activations(model: nn.Module, inputs: SuiteInputs) -> dict[str, Any]:
    """The article's per-layer table (shape, mean, std, max |x|) for each prompt, and the
    attention entropy of every layer and head.

    Entropy is measured on the fixed validation windows, not on the prompts: over three
    characters no head can spread its attention far enough to tell heads apart.
    """
    n_layer = model.config.n_layer
    device = next(model.parameters()).device
    _, cache = capture_activations(model, inputs.measurements.probe_batch.to(device))
    entropy = {
        hooks.layer_label(i): attention_entropy(cache[hooks.act_name("pattern", i)]).tolist() for i in range(n_layer)
    }

    tables = []
    for prompt in inputs.prompts:
        _, cache = capture_activations(model, _batch(prompt, model))
        rows = [{"layer": name, **row} for name, row in residual_table(cache, n_layer).items()]
        tables.append({"prompt": prompt.text, "layers": rows})
    return {
        "scalars": {
            keys.attn_entropy(layer, h): value for layer, heads in entropy.items() for h, value in enumerate(heads)
        },
        "residual": tables,
        "entropy": entropy,
    }


def attention(model: nn.Module, inputs: SuiteInputs) -> dict[str, Any]:
    """Every attention pattern [layer][head][query][key] for each prompt; the future is exactly 0."""
    n_layer = model.config.n_layer
    prompts = []
    for prompt in inputs.prompts:
        _, cache = capture_activations(model, _batch(prompt, model))
        pattern = torch.stack([cache[hooks.act_name("pattern", i)][0] for i in range(n_layer)])
        prompts.append(
            {"prompt": prompt.text, "tokens": [inputs.itos[i] for i in prompt.ids], "pattern": pattern.tolist()}
        )
    return {"prompts": prompts}


def predictions(model: nn.Module, inputs: SuiteInputs) -> dict[str, Any]:
    """For each prompt, the top-k next characters with their probabilities at the sampling
    temperature, and a seeded sample drawn with that temperature and top-k."""
    sampling = inputs.sampling
    prompts = []
    for prompt in inputs.prompts:
        idx = _batch(prompt, model)
        logits, _ = capture_activations(model, idx)
        ids, probs = top_k_next(logits[0, -1], sampling.temperature, sampling.top_k)
        generator = torch.Generator(device=idx.device).manual_seed(sampling.seed)
        sample = generate(model, idx, sampling.gen_tokens, sampling.temperature, sampling.top_k, generator)
        prompts.append(
            {
                "prompt": prompt.text,
                "next": _chars_with(inputs.itos, ids, probs),
                "sample": "".join(inputs.itos[i] for i in sample[0].tolist()),
            }
        )
    return {"prompts": prompts}


def logit_lens(model: nn.Module, inputs: SuiteInputs) -> dict[str, Any]:
    """For each prompt and layer, the top-k next characters read off that layer's residual
    through the final norm and lm_head, at the sampling temperature (so the last block's
    row is exactly the predictions suite's)."""
    prompts = []
    for prompt in inputs.prompts:
        _, cache = capture_activations(model, _batch(prompt, model))
        per_layer = lens.logit_lens(model, cache, -1, inputs.lens_k, inputs.sampling.temperature)
        layers = [
            {"layer": name, "top": _chars_with(inputs.itos, ids[0], probs[0])}
            for name, (ids, probs) in per_layer.items()
        ]
        prompts.append({"prompt": prompt.text, "layers": layers})
    return {"prompts": prompts}


def context(model: nn.Module, inputs: SuiteInputs) -> dict[str, Any]:
    """Per layer, how much more alike the context character's vectors are within a sense than
    across senses (the lecture's "apple" experiment)."""
    probe = inputs.context
    vectors = collect_target_residuals(model, [p.ids for p in probe.prompts], probe.char_id)
    similarity = sense_similarity(vectors, probe.senses)
    senses: dict[str, list[str]] = {}
    for prompt, sense in zip(probe.prompts, probe.senses):
        senses.setdefault(sense, []).append(prompt.text)
    return {
        "scalars": {keys.context_gap(layer): values["gap"] for layer, values in similarity.items()},
        "char": probe.char,
        "senses": senses,
        "layers": [{"layer": layer, **values} for layer, values in similarity.items()],
    }


def _window_residuals(model: nn.Module, ids: Tensor) -> dict[str, Tensor]:
    """Every layer's residual stream on the windows ids [n, T], as [n·T, d] float32 on the CPU."""
    device = next(model.parameters()).device
    chunks: dict[str, list[Tensor]] = {}
    for start in range(0, len(ids), WINDOW_CHUNK):
        _, cache = capture_activations(model, ids[start : start + WINDOW_CHUNK].to(device))
        for layer, hook in hooks.residual_stream(model.config.n_layer).items():
            chunks.setdefault(layer, []).append(cache[hook].flatten(0, 1).float().cpu())
    return {layer: torch.cat(parts) for layer, parts in chunks.items()}


def linear_probes(model: nn.Module, inputs: SuiteInputs) -> dict[str, Any]:
    """Per layer, a logistic probe's held-out accuracy for the corpus's position property, the majority-class
    baseline, the control task's accuracy and the selectivity (accuracy − control)."""
    windows = inputs.layer_windows
    decided = (windows.labels != UNDECIDED).flatten()
    is_train = windows.is_train[:, None].expand_as(windows.labels).flatten()[decided]
    labels, control = windows.labels.flatten()[decided], windows.control.flatten()[decided]
    layers = [
        {"layer": layer, **probe_scores(x[decided], labels, control, is_train, windows.l2, windows.max_iter)}
        for layer, x in _window_residuals(model, windows.ids).items()
    ]
    scalars = {keys.PROBE_MAJORITY: layers[0]["baseline"]}
    for row in layers:
        scalars[keys.probe_accuracy(row["layer"])] = row["accuracy"]
        scalars[keys.probe_control(row["layer"])] = row["control"]
        scalars[keys.probe_selectivity(row["layer"])] = row["selectivity"]
    return {
        "scalars": scalars,
        "property": windows.property_name,
        "positions": {
            "fit": int(is_train.sum()),
            "scored": int((~is_train).sum()),
            "share": labels.double().mean().item(),
        },
        "layers": layers,
    }


def with_final_snapshot(inputs: SuiteInputs, model: nn.Module, step: int) -> SuiteInputs:
    """The inputs with every layer's residual stream of the run's last snapshot (`model`, at `step`) on the
    fixed windows: what layer_settling compares each snapshot with."""
    windows = inputs.layer_windows
    final = replace(windows, final=_window_residuals(model, windows.ids), final_step=step)
    return replace(inputs, layer_windows=final)


def layer_settling(model: nn.Module, inputs: SuiteInputs) -> dict[str, Any]:
    """Per layer, the linear CKA of its residual stream with the same layer's at the run's last snapshot,
    on the fixed windows: 1 once a layer computes what it will end up computing (up to rotation and scale)."""
    windows = inputs.layer_windows
    if windows.final is None:
        raise ValueError("layer_settling needs the last snapshot's residual stream: call with_final_snapshot first")
    cka = {layer: linear_cka(x, windows.final[layer]) for layer, x in _window_residuals(model, windows.ids).items()}
    return {
        "scalars": {keys.cka_to_final(layer): value for layer, value in cka.items()},
        "final_step": windows.final_step,
        "layers": [{"layer": layer, "cka": value} for layer, value in cka.items()],
    }


Suite = Callable[[nn.Module, SuiteInputs], dict[str, Any]]
SUITES: dict[str, Suite] = {
    "embeddings": embeddings,
    "activations": activations,
    "attention": attention,
    "predictions": predictions,
    "logit_lens": logit_lens,
    "context": context,
    "linear_probes": linear_probes,
    "layer_settling": layer_settling,
}


PROMPT_SUITES = ("attention", "predictions", "logit_lens")  # nothing to show without corpus.probes.prompts


def select_suites(names: list[str], inputs: SuiteInputs) -> dict[str, Suite]:
    """The suites named in analysis.suites, in that order. An unknown name fails; a suite whose probes
    the corpus config does not give (a corpus of your own starts with none) is skipped, saying which."""
    unknown = [name for name in names if name not in SUITES]
    if unknown:
        raise GlassboxError(f"unknown analysis suite(s) {unknown} in analysis.suites; choose from {list(SUITES)}")
    selected = {}
    for name in names:
        missing = _missing_probes(name, inputs)
        if missing:
            log.warning(f"skipping the {name} suite: {missing}")
        else:
            selected[name] = SUITES[name]
    return selected


def _missing_probes(suite: str, inputs: SuiteInputs) -> str | None:
    """Why `suite` has nothing to measure with these probes, or None when it has."""
    if suite == "context" and inputs.context is None:
        return (
            "corpus.probes.context is not set: give a character and prompts of its senses, as "
            "conf/corpus/xiyouji.yaml does (or drop context from analysis.suites)"
        )
    if suite in ("linear_probes", "layer_settling") and inputs.layer_windows is None:
        return "no fixed windows for the layer probes (analysis.layer_probes)"
    if suite == "linear_probes" and inputs.layer_windows.labels is None:
        return (
            "corpus.probes.position is not set: give a property of each position as a regular expression, "
            "as conf/corpus/xiyouji.yaml does (or drop linear_probes from analysis.suites)"
        )
    if suite == "linear_probes":
        return inputs.layer_windows.too_few()
    if suite in PROMPT_SUITES and not inputs.prompts:
        return (
            "corpus.probes.prompts is empty: give some, e.g. \"corpus.probes.prompts=['悟空道','师父']\" "
            "(quoted: Hydra reads only ASCII unquoted)"
        )
    return None


def run_suites(model: nn.Module, inputs: SuiteInputs, suites: dict[str, Suite]) -> dict[str, dict[str, Any]]:
    """{suite name: its plain-data result} for one model."""
    return {name: suite(model, inputs) for name, suite in suites.items()}
