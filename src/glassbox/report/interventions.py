"""What the intervention stages show: report.md, the short table printed at the end, and W&B tables.

Each works on the stage's results (plain data, as in results.json):

    {"kind": steer | patch | ablate, "run_dir": ..., "settings": the spec, as plain data,
     "steps": [{"step": N, ...what glassbox.analysis.steering, patching or ablation returned for that snapshot}]}

With one snapshot the report describes it; with several (step=all) it starts with a table over
training, then describes the last one.
"""

from __future__ import annotations

from typing import Any

from glassbox.report.markdown import escape, num, quoted, table, visible_char

Tables = dict[str, tuple[list[str], list[list]]]


def _chars(ranking: list[list]) -> str:
    return ", ".join(f"{visible_char(char)} {p:.3f}" for char, p in ranking)


def _header(results: dict[str, Any], title: str) -> str:
    steps = [s["step"] for s in results["steps"]]
    which = f"step {steps[0]}" if len(steps) == 1 else f"{len(steps)} snapshots, steps {steps[0]} to {steps[-1]}"
    return f"# {title}\n\nRun `{results['run_dir']}`, {which}.\n"


def render(results: dict[str, Any]) -> str:
    """report.md of any kind."""
    renderers = {"steer": render_steering, "patch": render_patching, "ablate": render_ablation, "scope": render_scope}
    return renderers[results["kind"]](results)


def summary(results: dict[str, Any]) -> str:
    """The few lines printed at the end of a command."""
    summaries = {
        "steer": steering_summary,
        "patch": patching_summary,
        "ablate": ablation_summary,
        "scope": scope_summary,
    }
    return summaries[results["kind"]](results)


def tables(results: dict[str, Any]) -> Tables:
    """W&B tables, every snapshot in one table with a step column."""
    makers = {"steer": steering_tables, "patch": patching_tables, "ablate": ablation_tables, "scope": scope_tables}
    return makers[results["kind"]](results)


# ---------------------------------------------------------------- steering


def _targets(settings: dict[str, Any]) -> str:
    return " or ".join(quoted(t) for t in settings["targets"])


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _best_row(step: dict[str, Any]) -> list:
    best = step["best"]
    verdict = "yes" if best["exceeds"] else "no"
    return [
        step["step"],
        best["layer"],
        num(best["alpha"], "+g"),
        num(best["dp"]),
        f"{num(best['random_dp_mean'])} ± {num(best['random_dp_sd'], '.3f')}",
        num(best["z"], "+.1f"),
        verdict,
    ]


BEST_HEADER = ["step", "layer", "α", "ΔP(targets)", "random directions ΔP (mean ± sd)", "z", "exceeds chance"]


def render_steering(results: dict[str, Any]) -> str:
    settings, last = results["settings"], results["steps"][-1]
    held = settings["held_out"]
    parts = [
        _header(results, "Steering"),
        f"The direction at a layer is the mean hidden state (`{settings['point']}`, last position) of "
        f"{len(settings['positive'])} prompts with the property minus that of {len(settings['negative'])} without "
        f"it; α · direction is added at every position while the model reads {len(held)} held-out prompts. "
        f"Measured: P(next character is {_targets(settings)}), averaged over the held-out prompts, its change ΔP "
        f"from the unsteered model, and the KL (nats) from the unsteered distribution. Chance: "
        f"{settings['n_random']} random directions of the same norm (seed {settings['seed']}), mean ± sd; "
        f"z = (ΔP − their mean) / their sd, and the effect exceeds chance at z ≥ {settings['z_min']:g} in α's "
        "direction.\n",
        table(
            ["prompts", "texts"],
            [
                ["with the property", ", ".join(map(quoted, settings["positive"]))],
                ["without", ", ".join(map(quoted, settings["negative"]))],
                ["held out", ", ".join(map(quoted, held))],
            ],
        ),
    ]
    if len(results["steps"]) > 1:
        parts += [
            "\n## Over training: the best layer and α at each step\n",
            table(BEST_HEADER, map(_best_row, results["steps"])),
        ]
    parts += [
        f"\n## Step {last['step']}\n",
        "Unsteered, each held-out prompt's P(targets) and top next characters:\n",
        table(
            ["prompt", "P(targets)", "top next characters"],
            [
                [quoted(text), num(p, ".3f"), _chars(top)]
                for text, p, top in zip(held, last["base"]["p_targets"], last["base"]["top"])
            ],
        ),
        "\nSteered (each row: α · the layer's direction added):\n",
        table(
            [
                "layer",
                "‖direction‖",
                "α",
                "P(targets)",
                "ΔP",
                "KL",
                "random ΔP (mean ± sd)",
                "random KL (mean ± sd)",
                "z",
                "exceeds chance",
            ],
            [
                [
                    layer["layer"],
                    num(layer["norm"], ".2f"),
                    num(row["alpha"], "+g"),
                    num(_mean(row["p_targets"]), ".3f"),
                    num(row["dp"]),
                    num(row["kl"], ".3f"),
                    f"{num(row['random']['dp_mean'])} ± {num(row['random']['dp_sd'], '.3f')}",
                    f"{num(row['random']['kl_mean'], '.3f')} ± {num(row['random']['kl_sd'], '.3f')}",
                    num(row["z"], "+.1f"),
                    "yes" if row["exceeds"] else "no",
                ]
                for layer in last["layers"]
                for row in layer["alphas"]
            ],
        ),
    ]
    best = last["best"]
    parts.append(
        f"\n**Best: layer {best['layer']}, α = {best['alpha']:+g}**: ΔP = {best['dp']:+.3f} against "
        f"{best['random_dp_mean']:+.3f} ± {best['random_dp_sd']:.3f} for random directions (z = "
        f"{best['z']:+.1f}): the steering direction "
        f"{'does' if best['exceeds'] else 'does not'} move P(targets) more than a random vector of its size."
    )
    alphas = [alpha for alpha, _ in last["continuations"][0]["texts"]]
    parts += [
        f"\n## Continuations at layer {best['layer']}, {settings['gen_tokens']} characters (temperature "
        f"{settings['temperature']:g}), α · direction added at every position\n",
        table(
            ["prompt", *(f"α = {alpha:+g}" if alpha else "unsteered" for alpha in alphas)],
            [[quoted(c["prompt"]), *(quoted(text) for _, text in c["texts"])] for c in last["continuations"]],
        ),
    ]
    return "\n".join(parts) + "\n"


def steering_summary(results: dict[str, Any]) -> str:
    settings, last = results["settings"], results["steps"][-1]
    lines = [
        f"steering toward {' or '.join(map(repr, settings['targets']))}, the best layer and α "
        f"(ΔP = change of P(targets) on the held-out prompts; random: {settings['n_random']} directions of the "
        "same norm)",
        table(BEST_HEADER, map(_best_row, results["steps"])),
    ]
    p_base = last["base"]["p_targets"]
    continuation = last["continuations"][p_base.index(min(p_base))]  # the prompt least likely to open a speech
    lines.append(f"\n{continuation['prompt']!r} continued with α · the direction of layer {last['best']['layer']}:")
    lines += [f"  {f'α = {alpha:+g}' if alpha else 'unsteered':>10}  {text!r}" for alpha, text in continuation["texts"]]
    return "\n".join(lines)


def steering_tables(results: dict[str, Any]) -> Tables:
    effects = (["step", "layer", "alpha", "p_targets", "dp", "kl", "random_dp_mean", "random_dp_sd", "z"], [])
    texts = (["step", "layer", "prompt", "alpha", "continuation"], [])
    for step in results["steps"]:
        for layer in step["layers"]:
            effects[1].extend(
                [
                    step["step"],
                    layer["layer"],
                    row["alpha"],
                    _mean(row["p_targets"]),
                    row["dp"],
                    row["kl"],
                    row["random"]["dp_mean"],
                    row["random"]["dp_sd"],
                    row["z"],
                ]
                for row in layer["alphas"]
            )
        layer = step["best"]["layer"]
        for c in step["continuations"]:
            texts[1].extend([step["step"], layer, c["prompt"], alpha, text] for alpha, text in c["texts"])
    return {"steer": effects, "steer_continuations": texts}


# ---------------------------------------------------------------- patching


def _moved(value: float | None) -> str:
    return "—" if value is None else f"{value:+.2f}"


def render_patching(results: dict[str, Any]) -> str:
    settings, last = results["settings"], results["steps"][-1]
    char = quoted(last["char"])
    parts = [
        _header(results, f"Patching {quoted(settings['source'])} into {quoted(settings['target'])}"),
        f"The target prompt {quoted(settings['target'])} runs with the source prompt {quoted(settings['source'])}'s "
        f"hidden state (`{settings['point']}`) at position {settings['position']}, one block at a time. Watched: the "
        f"source's most likely next character and how far its probability moves from the target's own value toward "
        "the source's (moved: 0 = not at all, 1 = all the way; — when the two agree within 0.01). KL in nats from the "
        "target's own distribution.\n",
    ]
    layers = settings["layers"]
    if len(results["steps"]) > 1:
        rows = [
            [s["step"], visible_char(s["char"])] + [_moved(row["moved"]) for row in s["layers"]]
            for s in results["steps"]
        ]
        parts += [
            "\n## Over training: moved, per block\n",
            table(["step", "source predicts"] + [f"block {i}" for i in layers], rows),
        ]
    parts += [
        f"\n## Step {last['step']}\n",
        f"Source next characters: {_chars(last['source_top'])}. Target, unpatched: {_chars(last['target_top'])}. "
        f"P({char}): {last['p_source']:.3f} after the source, {last['p_target']:.3f} after the target.\n",
        table(
            ["block", "hook point", f"P({char}) patched", "moved", "KL", "top next characters patched"],
            [
                [
                    row["layer"],
                    f"`{row['hook']}`",
                    num(row["p_char"], ".3f"),
                    _moved(row["moved"]),
                    num(row["kl"], ".3f"),
                    _chars(row["top"]),
                ]
                for row in last["layers"]
            ],
        ),
    ]
    return "\n".join(parts) + "\n"


def patching_summary(results: dict[str, Any]) -> str:
    settings, last = results["settings"], results["steps"][-1]
    rows = [
        [s["step"], row["layer"], f"{row['p_char']:.3f}", _moved(row["moved"]), escape(row["top"][0][0])]
        for s in results["steps"]
        for row in s["layers"]
    ]
    return (
        f"patching {settings['source']!r} into {settings['target']!r} at position {settings['position']}: "
        f"P({last['char']!r}) {last['p_target']:.3f} in the target, {last['p_source']:.3f} in the source\n"
        + table(["step", "block", "P patched", "moved", "top"], rows)
    )


def patching_tables(results: dict[str, Any]) -> Tables:
    rows = [
        [s["step"], row["layer"], s["char"], row["p_char"], row["moved"], row["kl"], row["top"][0][0]]
        for s in results["steps"]
        for row in s["layers"]
    ]
    return {"patch": (["step", "layer", "char", "p_char", "moved", "kl", "top"], rows)}


# ---------------------------------------------------------------- head ablation


def _top_heads(step: dict[str, Any], n: int = 3) -> str:
    by_head = {(h["layer"], h["head"]): h for h in step["heads"]}
    return ", ".join(f"{layer}.{head} ({by_head[layer, head]['dloss']:+.3f})" for layer, head in step["ranked"][:n])


def render_ablation(results: dict[str, Any]) -> str:
    settings, last = results["settings"], results["steps"][-1]
    n_windows, width = settings["validation_windows"]
    how = "its mean output over the validation windows" if settings["mode"] == "mean" else "zeros"
    parts = [
        _header(results, f"Head ablation ({settings['mode']})"),
        f"Each head's output (`blocks.{{i}}.attn.head_out`) is replaced by {how}, one head at a time. Measured: the "
        f"loss on {n_windows} validation windows of {width} characters (Δloss: ablated − intact) and, for each probe "
        "prompt, the probability of the character the intact model predicts next (ΔP: mean change). Heads are "
        "named layer.head.\n",
    ]
    if len(results["steps"]) > 1:
        parts += [
            "\n## Over training: the three heads whose ablation costs the most loss\n",
            table(
                ["step", "loss", "heads (Δloss)"],
                [[s["step"], num(s["base_loss"], ".3f"), _top_heads(s)] for s in results["steps"]],
            ),
        ]
    prompts = last["prompts"]
    watched = [f"P({visible_char(p['char'])} after {quoted(p['prompt'])})" for p in prompts]
    parts += [
        f"\n## Step {last['step']}\n",
        f"Intact: loss {last['base_loss']:.3f}; "
        + ", ".join(f"{quoted(p['prompt'])} → {visible_char(p['char'])} {p['p']:.3f}" for p in prompts)
        + ".\n",
        table(
            ["rank", "head", "loss", "Δloss", "ΔP", *watched],
            [
                [rank, f"{h['layer']}.{h['head']}", num(h["loss"], ".3f"), num(h["dloss"]), num(h["dp"])]
                + [num(p, ".3f") for p in h["p_chars"]]
                for rank, h in enumerate(sorted(last["heads"], key=lambda h: -h["dloss"]), start=1)
            ],
        ),
    ]
    return "\n".join(parts) + "\n"


def ablation_summary(results: dict[str, Any]) -> str:
    settings = results["settings"]
    return (
        f"head ablation ({settings['mode']}): the three heads whose ablation costs the most validation loss\n"
        + table(
            ["step", "loss intact", "heads layer.head (Δloss)"],
            [[s["step"], f"{s['base_loss']:.3f}", _top_heads(s)] for s in results["steps"]],
        )
    )


def ablation_tables(results: dict[str, Any]) -> Tables:
    rows = [
        [s["step"], h["layer"], h["head"], h["loss"], h["dloss"], h["dp"]] for s in results["steps"] for h in s["heads"]
    ]
    return {"ablate": (["step", "layer", "head", "loss", "dloss", "dp"], rows)}


# ---------------------------------------------------------------- Patch Scope


def _p1(row: dict[str, Any]) -> str:
    """Precision@1, starred where it beats chance."""
    return f"{row['p1']:.2f}{'*' if row['exceeds'] else ''}"


def _scope_columns(results: dict[str, Any]) -> tuple[list[str], list[tuple[str, int]]]:
    """The (target, block) pairs of every step's rows, and their column names."""
    settings = results["settings"]
    pairs = [(t["name"], layer) for t in settings["targets"] for layer in settings["layers"]]
    return [f"{name} {layer}" for name, layer in pairs], pairs


def _scope_row(step: dict[str, Any], pair: tuple[str, int]) -> dict[str, Any]:
    return next(row for row in step["layers"] if (row["target"], row["layer"]) == pair)


def _beats_chance_since(steps: list[dict[str, Any]], pair: tuple[str, int]) -> int | str:
    """The first step from which on Precision@1 beats chance at every later snapshot."""
    since: int | str = "not yet"
    for step in reversed(steps):
        if not _scope_row(step, pair)["exceeds"]:
            break
        since = step["step"]
    return since


def _scope_over_training(results: dict[str, Any]) -> list[str]:
    names, pairs = _scope_columns(results)
    steps = results["steps"]
    rows = [
        [step["step"], *(f"{lens['p1']:.2f}" for lens in step["lens"]), *(_p1(_scope_row(step, p)) for p in pairs)]
        for step in steps
    ]
    return [
        "\n## Over training: Precision@1 per source block (* beats chance)\n",
        table(["step", *(f"lens {layer}" for layer in results["settings"]["layers"]), *names], rows),
        "\nFrom which step on Precision@1 beats chance at every later snapshot:\n",
        table(["target block", "from step"], [[name, _beats_chance_since(steps, p)] for name, p in zip(names, pairs)]),
    ]


def render_scope(results: dict[str, Any]) -> str:
    settings, last = results["settings"], results["steps"][-1]
    n, length = settings["sources"]
    written = "the same block" if settings["target_layer"] is None else f"block {settings['target_layer']}"
    parts = [
        _header(results, "Patch Scope"),
        f"Each source is one position of {n} validation windows of {length} characters ({n * length} in all): its "
        f"hidden state (`{settings['point']}`) after a source block is written into a target prompt at one position, "
        f"in {written}, and the model continues greedily from the target. Precision@1: the share of sources whose "
        "patched next character is the one the source model itself predicts there. Chance: the same agreement with "
        f"the sources shuffled ({settings['n_shuffles']} shuffles, seed {settings['seed']}), mean ± sd, and z against "
        f"it; * marks z ≥ {settings['z_min']:g}. The logit lens reads the same states with the final norm and the "
        "unembedding alone. Written at `resid_post` of the last block, a state meets only the final norm and the "
        "unembedding, so Precision@1 is 1 there for every target.\n",
        table(
            ["target", "text", "state written at position"],
            [[t["name"], quoted(t["text"]), t["position"]] for t in settings["targets"]],
        ),
    ]
    if len(results["steps"]) > 1:
        parts += _scope_over_training(results)
    lens = {row["layer"]: row["p1"] for row in last["lens"]}
    parts += [
        f"\n## Step {last['step']}\n",
        table(
            ["target", "source block", "Precision@1", "chance (mean ± sd)", "z", "logit lens"],
            [
                [
                    row["target"],
                    row["layer"],
                    _p1(row),
                    f"{row['chance']:.3f} ± {row['chance_sd']:.3f}",
                    num(row["z"], "+.1f"),
                    f"{lens[row['layer']]:.2f}",
                ]
                for row in last["layers"]
            ],
        ),
        f"\nContinuations ({settings['gen_tokens']} characters, greedy) from each prompt's last position:\n",
        table(
            ["prompt", "its next character", "target", "source block", "continuation"],
            [
                [quoted(c["prompt"]), visible_char(c["next"]), c["target"], c["layer"], quoted(c["text"])]
                for c in last["continuations"]
            ],
        ),
    ]
    return "\n".join(parts) + "\n"


def scope_summary(results: dict[str, Any]) -> str:
    names, pairs = _scope_columns(results)
    rows = [[step["step"], *(_p1(_scope_row(step, p)) for p in pairs)] for step in results["steps"]]
    return "Patch Scope: Precision@1 per target and source block (* beats chance)\n" + table(["step", *names], rows)


def scope_tables(results: dict[str, Any]) -> Tables:
    precision = (["step", "target", "layer", "p1", "chance", "chance_sd", "z", "lens_p1"], [])
    texts = (["step", "prompt", "next", "target", "layer", "continuation"], [])
    for step in results["steps"]:
        lens = {row["layer"]: row["p1"] for row in step["lens"]}
        precision[1].extend(
            [step["step"], r["target"], r["layer"], r["p1"], r["chance"], r["chance_sd"], r["z"], lens[r["layer"]]]
            for r in step["layers"]
        )
        texts[1].extend(
            [step["step"], c["prompt"], c["next"], c["target"], c["layer"], c["text"]] for c in step["continuations"]
        )
    return {"scope": precision, "scope_continuations": texts}
