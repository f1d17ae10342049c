"""The analysis suites that need no training snapshots, on any local Hugging Face causal LM.

Suites: the nearest neighbours of the probe tokens in the input embedding, the emergence
metrics of probes/emergence.py (pair cosines against random-pair baselines), the logit lens,
the context suite (one token in two senses) and the attention patterns. The model is wrapped
in `HookedCausalLM`, so the logit lens, context and attention results come from glassbox's own
suite functions (glassbox.analysis.suites) and the rest from its probe functions: on a glassbox export
they give the numbers `make analyze` gives on the snapshot.

Probes are the experiment's `corpus.probes` (override them for another model's tokens), given
as strings: a probe token (groups, pairs, the context token) must be one token of the model's
tokenizer; prompts may be any text. The report shows how each one tokenizes.

A checkpoint series (hf.path holding step_N/ folders) adds the emergence metrics of every
checkpoint, in metrics.jsonl on the step axis like a glassbox run's; the suites describe the
last checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from glassbox import fileio
from glassbox.analysis import suites
from glassbox.analysis.modules import module_tree
from glassbox.analysis.suites import ContextProbe, Prompt, Sampling, SuiteInputs
from glassbox.errors import GlassboxError
from glassbox.interop.hf import (
    HookedCausalLM,
    check_model_folders,
    load_causal_lm,
    load_tokenizer,
    model_folders,
    token_counts,
    token_strings,
)
from glassbox.probes.activations import attention_entropy
from glassbox.probes.baselines import ChanceModel
from glassbox.probes.embeddings import nearest_neighbours
from glassbox.probes.emergence import embedding_metrics
from glassbox.probes.probe_set import ProbeSet, check_pairs
from glassbox.report.hf_report import render
from glassbox.run.tracking import JsonlFile


class Tokens:
    """The model's tokenizer as the suites use it: text → ids, checked, and ids → token strings."""

    def __init__(self, tokenizer: Any, itos: list[str], add_special_tokens: bool) -> None:
        self.tokenizer = tokenizer
        self.itos = itos
        self.add_special_tokens = add_special_tokens
        self.seen: dict[str, list[int]] = {}  # every text encoded, for the report

    def encode(self, text: str) -> list[int]:
        try:
            ids = self.tokenizer(text, add_special_tokens=self.add_special_tokens)["input_ids"]
        except Exception as err:  # tokenizers raises a bare Exception, e.g. for a character it has no token for
            raise GlassboxError(
                f"the model's tokenizer cannot encode {text!r} ({err}); use text the "
                "tokenizer covers (corpus.probes.* overrides the probes)"
            ) from err
        self.seen[text] = ids
        return ids

    def single(self, text: str, role: str) -> int:
        """The one token id of a probe token; more than one is an error that shows the split."""
        ids = self.encode(text)
        if len(ids) != 1:
            raise GlassboxError(
                f"{role} {text!r} is {len(ids)} tokens for this tokenizer ({self.spell(ids)}), but must be one. "
                "Choose strings that are single tokens (BPE vocabularies often need a leading space, e.g. ' cat'), "
                "via corpus.probes.* overrides"
            )
        return ids[0]

    def spell(self, ids: list[int]) -> str:
        return " | ".join(self.itos[i] for i in ids)


def suite_inputs(cfg: DictConfig, tokens: Tokens, block_size: int | None) -> tuple[SuiteInputs, ProbeSet]:
    """The suites' inputs and the probe set, from corpus.probes and analysis.* through the model's tokenizer.

    The probe order (every group token, then the pairs' other tokens) is SuiteInputs.from_config's,
    so the neighbours come out in the same order as `make analyze`'s. There is no training corpus:
    `measurements` is None, and the suites that need it (embeddings, activations) are not run.
    """
    spec = {"groups": {}, "pairs": [], "prompts": [], **OmegaConf.to_container(cfg.corpus.probes)}
    spec["groups"] = spec["groups"] or {}  # null: none yet (conf/corpus/local.yaml)
    try:
        check_pairs(spec["pairs"])
    except ValueError as err:
        raise GlassboxError(f"corpus.probes: {err}") from err
    group_of: dict[str, str] = {}
    for group, texts in spec["groups"].items():
        for text in texts:
            group_of.setdefault(text, group)
    for pair in spec["pairs"]:
        group_of.setdefault(pair["a"], "")
        group_of.setdefault(pair["b"], "")
    stoi = {text: tokens.single(text, "probe token") for text in group_of}
    try:
        probes = ProbeSet.build(spec["groups"], spec["pairs"], stoi)
    except ValueError as err:
        raise GlassboxError(f"corpus.probes: {err}") from err

    def prompt(text: str) -> Prompt:
        ids = tokens.encode(text)
        if not ids:
            raise GlassboxError(f"prompt {text!r} has no tokens")
        if block_size is not None and len(ids) > block_size:
            raise GlassboxError(f"prompt {text!r} is {len(ids)} tokens, more than the model's {block_size} positions")
        return Prompt(text, ids)

    context = None
    if spec.get("context"):
        char_id = tokens.single(spec["context"]["char"], "context token")
        prompts, senses = [], []
        for sense, texts in spec["context"]["senses"].items():
            for text in texts:
                prompts.append(prompt(text))
                senses.append(sense)
                if char_id not in prompts[-1].ids:
                    raise GlassboxError(
                        f"context prompt {text!r} ({tokens.spell(prompts[-1].ids)}) does not contain "
                        f"the context token {spec['context']['char']!r} as a token of its own"
                    )
        context = ContextProbe(spec["context"]["char"], char_id, prompts, senses)

    settings = cfg.analysis
    inputs = SuiteInputs(
        measurements=None,
        itos=tokens.itos,
        probe_chars=list(group_of),
        probe_groups=list(group_of.values()),
        probe_ids=torch.tensor([stoi[text] for text in group_of], dtype=torch.long),
        prompts=[prompt(text) for text in spec["prompts"]],
        context=context,
        sampling=Sampling(**OmegaConf.to_container(settings.predictions)),
        neighbours_k=settings.neighbours_k,
        lens_k=settings.logit_lens_k,
        map_n_frequent=settings.explorer.n_frequent,
    )
    return inputs, probes


def chance_model(cfg: DictConfig, counts: torch.Tensor, probes: ProbeSet, uniform: bool) -> ChanceModel:
    """The random-pair baselines of analysis.chance; with uniform counts every token is eligible
    (min_count 0), so the frequency bands become bands of token ids."""
    settings = OmegaConf.to_container(cfg.analysis.chance)
    if uniform:
        settings["min_count"] = 0
    try:
        return ChanceModel.build(counts, probes, **settings)
    except ValueError as err:
        raise GlassboxError(f"analysis.chance with these probes: {err}") from err


def neighbours(model: HookedCausalLM, inputs: SuiteInputs) -> list[dict[str, Any]]:
    """Each probe token's nearest tokens by cosine in the input embedding (as the embeddings suite)."""
    ids, cosines = nearest_neighbours(model.embedding.detach(), inputs.probe_ids, inputs.neighbours_k)
    return [
        {"char": text, "neighbours": [[inputs.itos[i], c] for i, c in zip(row_ids.tolist(), row_cos.tolist())]}
        for text, row_ids, row_cos in zip(inputs.probe_chars, ids, cosines)
    ]


def attention_with_entropy(model: HookedCausalLM, inputs: SuiteInputs) -> list[dict[str, Any]]:
    """The attention suite's patterns per prompt, plus each layer's per-head entropy (nats)."""
    prompts = suites.attention(model, inputs)["prompts"]
    for prompt in prompts:
        pattern = torch.tensor(prompt["pattern"])  # [layer, head, query, key]
        prompt["entropy"] = [attention_entropy(layer[None]).tolist() for layer in pattern]
    return prompts


def run_suites(
    model: HookedCausalLM,
    inputs: SuiteInputs,
    probes: ProbeSet,
    chance: ChanceModel,
    counts: torch.Tensor,
    n_frequent: int,
) -> dict[str, Any]:
    result = {
        "emergence": embedding_metrics(model.embedding, probes, counts, chance, n_frequent),
        "neighbours": neighbours(model, inputs),
        "logit_lens": suites.logit_lens(model, inputs)["prompts"],
        "attention": attention_with_entropy(model, inputs),
    }
    if inputs.context is not None:
        try:
            result["context"] = suites.context(model, inputs)
        except ValueError as err:  # e.g. every context prompt of one sense
            raise GlassboxError(f"corpus.probes.context: {err}") from err
        result["context"].pop("scalars")
    return result


def inspect_hf(cfg: DictConfig, out_dir: Path) -> dict[str, Any]:
    """Run the suites on hf.path (its last checkpoint, for a series) and write report.md and
    analysis.json (and metrics.jsonl for a series) to out_dir; return the analysis."""
    hf = cfg.hf
    folders = model_folders(hf.path)
    check_model_folders(folders)
    last = folders[-1][1]
    model = load_causal_lm(last, hf.device)
    size = model.embedding.shape[0]
    tokenizer = load_tokenizer(last)
    tokens = Tokens(tokenizer, token_strings(tokenizer, size), hf.add_special_tokens)
    counts, counts_source = token_counts(last, tokens.tokenizer, size)
    inputs, probes = suite_inputs(cfg, tokens, model.config.block_size)
    chance = chance_model(cfg, counts, probes, uniform=counts_source == "uniform")
    n_frequent = cfg.analysis.embedding.n_frequent

    series = []
    if folders[0][0] is not None:
        metrics = JsonlFile(out_dir / "metrics.jsonl")
        for step, folder in tqdm(folders, desc="checkpoints", unit="checkpoint", dynamic_ncols=True):
            checkpoint = model if folder == last else load_causal_lm(folder, hf.device)
            row = {"step": step, **embedding_metrics(checkpoint.embedding, probes, counts, chance, n_frequent)}
            metrics.append(row)
            series.append(row)

    hf_config = model.hf.config
    analysis = {
        "path": str(Path(hf.path).resolve()),
        "checkpoint": str(last.resolve()),
        "steps": [step for step, _ in folders if step is not None],
        "model": {
            "class": type(model.hf).__name__,
            "model_type": hf_config.model_type,
            "n_layer": model.config.n_layer,
            "n_head": model.config.n_head,
            "d_model": model.embedding.shape[1],
            "vocab_size": size,
            "max_positions": model.config.block_size,
            "n_params": sum(p.numel() for p in model.hf.parameters()),
            "final_norm": model.final_norm_path,
            "tied_embeddings": model.hf.get_output_embeddings().weight is model.embedding,
        },
        "modules": module_tree(model.hf),
        "counts": counts_source,
        "sampling": OmegaConf.to_container(cfg.analysis.predictions),
        "probes": {
            "groups": probes.groups,
            "pairs": [{"name": p.name, "label": p.label, "expect": p.expect} for p in probes.pairs],
        },
        **run_suites(model, inputs, probes, chance, counts, n_frequent),
        "tokenization": [
            {"text": text, "ids": ids, "tokens": [tokens.itos[i] for i in ids]} for text, ids in tokens.seen.items()
        ],
        "series": series,
    }
    fileio.write_json(out_dir / "analysis.json", analysis)
    fileio.write_text(out_dir / "report.md", render(analysis))
    return analysis
