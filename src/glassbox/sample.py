"""`make sample`: text from a trained snapshot, what nanoGPT's sample.py is to nanoGPT.

    python -m glassbox.sample                                   the latest run's last snapshot, its probe prompt
    python -m glassbox.sample prompt=悟空道 num_samples=5 top_p=0.9
    python -m glassbox.sample prompts=[悟空道,行者笑道] sampler=greedy max_new_tokens=100
    python -m glassbox.sample prompt_file=start.txt run=outputs/xiyouji/<run> step=512
    python -m glassbox.sample checkpoint=<run>/checkpoints/step_0000700.pt use_cache=false

Each prompt's num_samples samples are drawn together, as one batch, by `glassbox.generation`: a
prefill over the prompt, then one decode step per new character through the KV cache. Then it
prints the throughput the way LLM servers report it: prefill tokens/s (prompt tokens read per
second) and decode tokens/s (new tokens per second after the first). Seeded: the same command
draws the same text. The samples and the speeds are also written to samples.json in the
command's own folder, outputs/<experiment>/samples/<time>/; Ctrl-C stops it cleanly and keeps the
text drawn so far there ("stopped": true).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from glassbox import command_line, fileio, generation
from glassbox.command_line import exits_cleanly
from glassbox.config import validate
from glassbox.device import resolve_device
from glassbox.errors import Stopped
from glassbox.model import describe_heads
from glassbox.paths import CONF_DIR
from glassbox.run.layout import pick_snapshot
from glassbox.run.snapshots import load_snapshot

log = logging.getLogger(__name__)  # the terminal and sample.log alike

SEPARATOR = "-" * 40


def sample(cfg: DictConfig, out_dir: Path) -> dict[str, Any]:
    """Draw every prompt's samples, print them and the speeds, write samples.json; return what was written."""
    asked = validate(cfg, "sample")
    settings = generation.SampleSettings.for_sampler(
        **asked.model_dump(include={"sampler", "num_samples", "max_new_tokens", "temperature", "top_k", "top_p"}),
        seed=asked.seed,
        use_cache=asked.use_cache,
    )
    texts = generation.prompt_texts(asked.prompt, asked.prompts, asked.prompt_file, cfg.corpus.probes.prompts)
    device = resolve_device(asked.device)
    path, _ = pick_snapshot(asked.paths.output_dir, asked.name, asked.run, asked.step, asked.checkpoint)
    snapshot = load_snapshot(path)
    vocab = snapshot.vocab()
    encoded = generation.encode_prompts(texts, vocab)
    model = snapshot.model().to(device)
    c = model.config
    log.info(
        f"snapshot {path} (step {snapshot.step}): {c.n_layer} layers × {describe_heads(c.n_head, c.n_kv_head)}, "
        f"n_embd {c.n_embd}, "
        f"block_size {c.block_size}, pos_encoding={c.pos_encoding}, norm={c.norm}, mlp={c.mlp}, "
        f"{model.num_params() / 1e6:.2f}M parameters, on {device}"
    )
    # As parsed: a list the shell split at a comma through make shows here as one prompt more.
    log.info(f"{len(texts)} prompt(s): {', '.join(generation.prompt_preview(text) for text in texts)}")
    log.info(f"sampling: {settings.describe()}\n{SEPARATOR}")

    # One generator for the whole command, seeded once: each prompt continues the same random stream.
    generator = torch.Generator(device=device).manual_seed(settings.seed)
    speed, results = generation.Throughput(), []
    written = {
        "snapshot": str(path),
        "step": snapshot.step,
        "device": str(device),
        "settings": {**vars(settings), "sampler": asked.sampler},
        "prompts": results,
    }
    try:
        for text, ids in zip(texts, encoded):
            if len(ids) > c.block_size:
                log.info(f"(the prompt has {len(ids)} characters; the model reads its last {c.block_size})")
            samples = [vocab.decode(row) for row in generation.draw_samples(model, ids, settings, generator, speed)]
            for sample_text in samples:
                log.info(f"{sample_text}\n{SEPARATOR}")
            results.append({"prompt": text, "samples": samples})
    except KeyboardInterrupt as stop:  # keep what was drawn: the finished prompts, the current one so far
        finished = len(results)
        if isinstance(stop, generation.StoppedDrawing) and len(stop.rows[0]) > len(ids):
            results.append({"prompt": text, "samples": [vocab.decode(row) for row in stop.rows], "stopped": True})
        if not results:
            raise  # nothing drawn: exits_cleanly removes the folder
        written |= {"stopped": True, "speed": speed.as_dict()}
        fileio.write_json(out_dir / "samples.json", written)
        raise Stopped(
            f"stopped by Ctrl-C: kept the text drawn so far ({finished} of {len(texts)} prompts finished) "
            f"in {out_dir / 'samples.json'}"
        ) from None
    log.info(speed.describe(settings.num_samples, c.block_size))
    written["speed"] = speed.as_dict()
    fileio.write_json(out_dir / "samples.json", written)
    log.info(f"wrote {out_dir / 'samples.json'} (the samples and speeds) and {out_dir / 'sample.log'}")
    return written


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="sample")
@exits_cleanly
def main(cfg: DictConfig) -> None:
    sample(cfg, Path(HydraConfig.get().runtime.output_dir))


def cli() -> None:
    """The `glassbox-sample` command, as `python -m glassbox.sample` runs it."""
    command_line.run(main)


if __name__ == "__main__":
    cli()
