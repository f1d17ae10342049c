"""What a run measures at each snapshot, built once from its config sections and the prepared corpus.

Training (at every snapshot step) and analysis (replaying saved snapshots) both call
`Measurements.of(model)`, so the same probe pair reaches the same metric key through the
same function, with the same random-pair baselines drawn once per run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from glassbox.config.groups import Analysis, Corpus
from glassbox.errors import GlassboxError
from glassbox.probes.activations import capture_activations
from glassbox.probes.arithmetic import OffsetSet, offset_metrics, offset_sets
from glassbox.probes.baselines import ChanceModel, frequency_bands
from glassbox.probes.emergence import snapshot_metrics
from glassbox.probes.mechanisms import MechanismProbe
from glassbox.probes.probe_set import ProbeSet
from glassbox.text.tokens import TokenData

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Measurements:
    probes: ProbeSet
    chance: ChanceModel
    counts: torch.Tensor
    probe_batch: torch.Tensor  # fixed validation windows [n_sequences, block_size]
    n_frequent: int
    mechanisms: MechanismProbe | None = None  # the head-role and ICL metrics (none: not measured)
    offsets: tuple[OffsetSet, ...] = ()  # the corpus's offset sets with their random sets

    @classmethod
    def from_config(cls, corpus: Corpus, analysis: Analysis, data: TokenData, block_size: int) -> Measurements:
        """From the corpus's probes and the analysis settings (their config sections)."""
        counts = torch.tensor(data.vocab.counts)
        settings = analysis.mechanisms
        try:
            probes = ProbeSet.build(corpus.probes.groups or {}, corpus.probes.pairs, data.vocab.stoi)
            chance = ChanceModel.build(counts, probes, **analysis.chance.model_dump())
            offsets = offset_sets(
                corpus.probes.offsets or {},
                data.vocab.stoi,
                frequency_bands(counts, analysis.chance.n_bands, analysis.chance.min_count),
                **analysis.arithmetic.model_dump(),
            )
        except ValueError as err:
            raise GlassboxError(
                f"corpus.probes of '{corpus.name}': {err}. "
                f"Edit conf/corpus/{corpus.name}.yaml or override corpus.probes."
            ) from err
        if not (probes.pairs or probes.groups):
            log.warning(
                f"corpus.probes of '{corpus.name}' names no probe pairs or groups: no pair cosines, "
                "z-scores or claims are measured (the losses, embedding and per-layer statistics are). "
                "Give some with corpus.probes.pairs=... and corpus.probes.groups=..."
            )
        return cls(
            probes=probes,
            chance=chance,
            counts=counts,
            probe_batch=data.probe_batch(analysis.probe_batch.n_sequences, block_size),
            n_frequent=analysis.embedding.n_frequent,
            mechanisms=MechanismProbe.build(
                counts,
                data.probe_windows(settings.n_windows, block_size),
                **settings.model_dump(include={"seq_len", "n_sequences", "band", "seed", "icl_early", "icl_late"}),
            ),
            offsets=offsets,
        )

    def of(self, model: torch.nn.Module, initial: torch.Tensor | None = None) -> dict[str, float]:
        """Every emergence metric of `model` now, as {key: value} (keys: probes/emergence.py), then the
        mechanism metrics (probes/mechanisms.py) and each offset set's (probes/arithmetic.py); with the run's
        step-0 embedding `initial`, also each pair's change since then (dcos/)."""
        device = next(model.parameters()).device
        _, cache = capture_activations(model, self.probe_batch.to(device))
        metrics = snapshot_metrics(model, self.probes, self.counts, cache, self.chance, self.n_frequent, initial)
        if self.mechanisms is not None:
            metrics |= self.mechanisms.metrics(model, cache)
        for offset_set in self.offsets:
            metrics |= offset_metrics(model.wte.weight, offset_set)
        return metrics
