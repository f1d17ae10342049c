"""The explorer pages: one self-contained, interactive HTML page per run (report/explorer.html) and
per sweep (<sweep>/explorer.html).

`explorer_html(analysis)` turns the analysis dict that glassbox.analyze saves as
report/analysis.json into one HTML string: plotly.js inline (from the plotly package), the run's
numbers as one compact JSON blob, and explorer.js, which draws every panel for the snapshot chosen
on a step slider. `sweep_html` does the same for a sweep's runs (explorer_sweep.js); both scripts
start from the helpers in explorer_common.js. The page's frame, style, controls and panels are
package data beside the scripts (explorer_page.html, explorer.css, explorer_run*.html,
explorer_sweep*.html). The pages open from disk (file://) with no network and no server.
Everything here is plain data in, one string out.

plotly.js is inlined gzip-compressed and base64-encoded, 2.0 MB instead of 4.8 MB, and unpacked by
the browser's own DecompressionStream (Chrome 80, Firefox 113, Safari 16.4 and later): the whole
page of the default run stays far below its 5 MB budget however plotly.js grows.

The blob holds, per snapshot, only what the panels show (floats rounded to 4 significant digits,
never the whole vocabulary): the embedding map aligned across steps, every probe pair's cosine with
its two chance bands, the embedding statistics, and per prompt the residual table, the attention
patterns, the next-character ranking and the logit lens; every head's role scores as a layers × heads
grid, the ICL scores, and per layer the linear probe's accuracies and the CKA to the last snapshot; then the
claims and the run's provenance. A suite that did not run (or an analysis made before it existed) leaves its
panels out.
"""

from __future__ import annotations

import base64
import functools
import gzip
import html
import json
import math
import statistics
from collections.abc import Callable
from importlib import resources
from typing import Any

from omegaconf import OmegaConf

from glassbox import hooks
from glassbox import metric_keys as keys
from glassbox.analysis.alignment import aligned_maps
from glassbox.analysis.claims import GROUP_CLAIM, LEVEL, Claim, claim_list
from glassbox.analysis.sweeps import axis_values
from glassbox.report.claims import MECHANISM_LABELS, mechanism_rule, mechanism_verdict
from glassbox.report.markdown import WHITESPACE
from glassbox.report.page_font import font_face_css

FILE_NAME = "explorer.html"
SIGNIFICANT_DIGITS = 4


# ---------------------------------------------------------------- plain-data helpers


def _num(x: float | None) -> float | None:
    """x to SIGNIFICANT_DIGITS significant digits; None for a missing or non-finite number."""
    if x is None or not math.isfinite(x):
        return None
    return float(f"{x:.{SIGNIFICANT_DIGITS}g}")


def _nums(values) -> list:
    """_num over a (nested) list of numbers."""
    return [_nums(v) if isinstance(v, (list, tuple)) else _num(v) for v in values]


def _shown(text: str) -> str:
    """A character or prompt as the page shows it: whitespace made visible (␣, \\n)."""
    return "".join(WHITESPACE.get(c, c) for c in text)


# ---------------------------------------------------------------- the page's data


def _losses(analysis: dict[str, Any], steps: list[int]) -> list[float | None]:
    val = {r["step"]: r.get(keys.LOSS_VAL) for r in analysis["losses"]}
    return _nums([val.get(step) for step in steps])


def _pairs(analysis: dict[str, Any]) -> list[dict[str, Any]]:
    """Per probe pair: cos, z, zf, p, the verdict at every step (a cross pair's: no association, as the
    report ticks it), the matched null and the reference article's values.

    A pair is named by its id (the fragment of its metric keys, and its key in reference.cosine and
    matched_null) and shown by its characters."""
    snapshots, t = analysis["snapshots"], analysis["thresholds"]
    references = analysis["reference"].get("cosine", {})
    judged_by: dict[str, Claim] = {}  # per pair its first test: its level, or a cross pair's "no association"
    for claim in claim_list(analysis["probes"]["pairs"], analysis["probes"]["groups"], snapshots[-1]["scalars"]):
        judged_by.setdefault(claim.name, claim)
    pairs = []
    for pair in analysis["probes"]["pairs"]:
        claim = judged_by[pair["name"]]
        series = {
            family: [s["scalars"][keys.pair(family, pair["name"])] for s in snapshots] for family in keys.PAIR_STATS
        }
        nulls = [
            {row["pair"]: row for row in s["embeddings"].get("matched_null", [])}.get(pair["name"]) for s in snapshots
        ]
        pairs.append(
            {
                "id": pair["name"],
                "label": f"{_shown(pair['a'])} – {_shown(pair['b'])}",
                "kind": pair["kind"],
                "expect": pair["expect"],
                **{family: _nums(values) for family, values in series.items()},
                "verdict": [claim.at(s["scalars"], t["z_min"], t["p_max"]) for s in snapshots],
                "p_floor": _p_floor(analysis, "n_pairs"),
                "null_mean": _nums([n["mean"] if n else None for n in nulls]),
                "null_sd": _nums([n["std"] if n else None for n in nulls]),
                "ref": {k: _num(v) for k, v in references.get(pair["name"], {}).items()},
            }
        )
    return pairs


def _embedding(analysis: dict[str, Any]) -> dict[str, Any]:
    snapshots = analysis["snapshots"]
    reference = analysis["reference"].get("embedding", {})
    return {
        **{stat: _nums([s["scalars"][keys.emb(stat)] for s in snapshots]) for stat in keys.EMBEDDING_STATS},
        "ref": {when: {stat: _num(v) for stat, v in values.items()} for when, values in reference.items()},
    }


def _embedding_map(analysis: dict[str, Any]) -> dict[str, Any]:
    maps = [s["embeddings"]["map"] for s in analysis["snapshots"]]
    final = maps[-1]
    return {
        "chars": [_shown(c) for c in final["chars"]],
        "counts": final["counts"],
        "groups": final["groups"],
        "coords": [_nums(c.flatten().tolist()) for c in aligned_maps([m["coords"] for m in maps])],
        "norms": [_nums(m["norms"]) for m in maps],
        "explained": [_nums(m["explained"]) for m in maps],
    }


def _prompts(analysis: dict[str, Any]) -> list[dict[str, Any]]:
    """Per probe prompt, every step's residual table, attention, next characters and logit lens."""
    snapshots, final = analysis["snapshots"], analysis["snapshots"][-1]
    prompts = []
    for index, text in enumerate(analysis["probes"]["prompts"]):
        prompt: dict[str, Any] = {"text": _shown(text), "tokens": [_shown(c) for c in text]}
        if "activations" in final:
            tables = [s["activations"]["residual"][index]["layers"] for s in snapshots]
            prompt["residual"] = {
                "layers": [row["layer"] for row in tables[-1]],
                **{stat: [_nums([row[stat] for row in table]) for table in tables] for stat in ("mean", "std", "max")},
            }
        if "attention" in final:
            prompt["attention"] = [_nums(s["attention"]["prompts"][index]["pattern"]) for s in snapshots]
        if "predictions" in final:
            ranked = [s["predictions"]["prompts"][index] for s in snapshots]
            prompt["next"] = [[[_shown(c) for c, _ in r["next"]], _nums([p for _, p in r["next"]])] for r in ranked]
            prompt["sample"] = [r["sample"] for r in ranked]
        if "logit_lens" in final:
            lenses = [s["logit_lens"]["prompts"][index]["layers"] for s in snapshots]
            prompt["lens"] = {
                "layers": [layer["layer"] for layer in lenses[-1]],
                "top": [
                    [[[_shown(c) for c, _ in layer["top"]], _nums([p for _, p in layer["top"]])] for layer in layers]
                    for layers in lenses
                ],
            }
        prompts.append(prompt)
    return prompts


def _series(analysis: dict[str, Any], key: str) -> list[float | None]:
    """One scalar at every snapshot (None where a snapshot lacks it), rounded."""
    return _nums([s["scalars"].get(key) for s in analysis["snapshots"]])


def _per_layer(analysis: dict[str, Any], key: Callable[[str], str], layers: list[str]) -> list[list[float | None]]:
    """A per-layer scalar (`key(layer)`) at every snapshot, as [step][layer], rounded."""
    return [_nums([s["scalars"].get(key(layer)) for layer in layers]) for s in analysis["snapshots"]]


def _suite_layers(analysis: dict[str, Any], suite: str) -> list[str]:
    """The layers a per-layer suite measured at the last snapshot, in its order."""
    return [row["layer"] for row in analysis["snapshots"][-1][suite]["layers"]]


def _verdicts(analysis: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Per mechanism its verdict at the last snapshot and what "held" asks, in the report's words (plain text)."""
    mechanisms = analysis.get("mechanisms", {})
    return {
        result["mechanism"]: {
            "verdict": mechanism_verdict(result).replace("**", ""),
            "rule": mechanism_rule(result["mechanism"], mechanisms["held"]),
        }
        for result in mechanisms.get("verdicts", [])
    }


def _heads(analysis: dict[str, Any], verdicts: dict[str, dict[str, str]]) -> dict[str, Any] | None:
    """Per head role the run measured: its scores at every step as [step][layer][head], and its chance."""
    model, snapshots = analysis["model"], analysis["snapshots"]
    layers = [hooks.layer_label(layer) for layer in range(model["n_layer"])]
    heads = range(model["n_head"])
    roles = [
        {
            "label": MECHANISM_LABELS[mechanism],
            "scores": [
                [_nums([s["scalars"].get(keys.head_score(role, layer, head)) for head in heads]) for layer in layers]
                for s in snapshots
            ],
            "chance": _series(analysis, keys.head_chance(role)),
            **verdicts.get(mechanism, {}),
        }
        for mechanism, role in keys.HEAD_MECHANISMS.items()
        if keys.head_max(role) in snapshots[-1]["scalars"]
    ]
    return {"layers": layers, "n_head": model["n_head"], "roles": roles} if roles else None


def _icl(analysis: dict[str, Any], verdicts: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    """The ICL score and the repeated-segment score at every step, those the run measured."""
    return [
        {"label": MECHANISM_LABELS[mechanism], "values": _series(analysis, key), **verdicts.get(mechanism, {})}
        for mechanism, key in keys.ICL_MECHANISMS.items()
        if key in analysis["snapshots"][-1]["scalars"]
    ]


def _layer_probe(analysis: dict[str, Any]) -> dict[str, Any]:
    """Per layer at every step the probe's held-out accuracy and its control task's; the majority class's."""
    layers = _suite_layers(analysis, "linear_probes")
    return {
        "property": analysis["snapshots"][-1]["linear_probes"]["property"],
        "layers": layers,
        "accuracy": _per_layer(analysis, keys.probe_accuracy, layers),
        "control": _per_layer(analysis, keys.probe_control, layers),
        "majority": _series(analysis, keys.PROBE_MAJORITY),
    }


def _settling(analysis: dict[str, Any]) -> dict[str, Any]:
    """Per layer at every step its linear CKA with itself at the last snapshot."""
    layers = _suite_layers(analysis, "layer_settling")
    return {
        "final_step": analysis["snapshots"][-1]["layer_settling"]["final_step"],
        "layers": layers,
        "cka": _per_layer(analysis, keys.cka_to_final, layers),
    }


def _p_floor(analysis: dict[str, Any], null_size: str) -> float | None:
    """The smallest p a null of analysis.chance[null_size] samples gives; None in analyses made before it was kept."""
    chance = analysis.get("chance")
    return 1 / (chance[null_size] + 1) if chance else None


def _claim_label(c: dict[str, Any]) -> str:
    """`说 – 道`; a cross pair's two tests named after it; the group statistic's name."""
    if c["a"] is None:
        return GROUP_CLAIM
    pair = f"{_shown(c['a'])} – {_shown(c['b'])}"
    return pair if c.get("test", LEVEL) == LEVEL else f"{pair}, {c['test']}"


def _claims(analysis: dict[str, Any]) -> list[dict[str, Any]]:
    references = analysis["reference"].get("cosine", {})
    return [
        {
            "label": _claim_label(c),
            "p_floor": c.get("p_floor"),
            "kind": c["kind"],
            "expect": c["expect"],
            "article": {k: _num(v) for k, v in references.get(c["claim"], {}).items()},  # a claim is named by its pair
            **{k: _num(c[k]) for k in ("value", "z", "zf", "p")},
            "verdict": c["verdict"],
            "first_held": c["first_held"],
        }
        for c in analysis["claims"]
    ]


def _run_info(analysis: dict[str, Any]) -> list[list[str]]:
    """[label, value] rows: what ran, on what, and where it came from."""
    a, model, snapshots = analysis, analysis["model"], analysis["snapshots"]
    t, s = a["thresholds"], a["sampling"]
    rows = [
        ["experiment", a["experiment"]],
        ["run", f"{a['run_dir']} (status: {a['status'] or 'unknown'})"],
        ["corpus", f"{a['corpus']}, {a['vocab_size']} characters"],
        [
            "model",
            f"{model['n_layer']} layers × {model['n_head']} heads, {model['n_embd']} dims, block "
            f"{model['block_size']}, {model['n_params']:,} parameters",
        ],
        ["snapshots", f"{len(snapshots)}, steps {snapshots[0]['step']} … {snapshots[-1]['step']}"],
        ["claims", f"held = zf ≥ {t['z_min']:g} in the expected direction and permutation p ≤ {t['p_max']:g}"],
        ["sampling", f"temperature {s['temperature']:g}, top-k {s['top_k']}, seed {s['seed']}"],
    ]
    if "source" in a["reference"]:
        rows.append(["article figures", a["reference"]["source"]])
    provenance = a.get("provenance", {})
    for key, label in (
        ("corpus_sha256", "corpus sha256"),
        ("vocab_hash", "vocabulary hash"),
        ("train_wandb_run", "W&B training run"),
        ("code_commit", "code commit (at analysis)"),
    ):
        if provenance.get(key):
            rows.append([label, provenance[key]])
    return rows


def page_data(analysis: dict[str, Any]) -> dict[str, Any]:
    """Everything the page draws, as compact plain data (the JSON blob explorer.js reads)."""
    snapshots = analysis["snapshots"]
    steps = [s["step"] for s in snapshots]
    final = snapshots[-1]
    data: dict[str, Any] = {
        "experiment": analysis["experiment"],
        "corpus": analysis["corpus"],
        "steps": steps,
        "loss": _losses(analysis, steps),
        "thresholds": analysis["thresholds"],
        "groups": list(analysis["probes"]["groups"]),
        "prompts": _prompts(analysis),
        "claims": _claims(analysis),
        "info": _run_info(analysis),
        "residual_ref": {layer: _nums(v) for layer, v in analysis["reference"].get("residual", {}).items()},
        "next_ref": analysis["reference"].get("next_char"),
    }
    if "embeddings" in final:
        data["embedding"] = _embedding(analysis)
        if "map" in final["embeddings"]:  # analyses made before the explorer have no map
            data["map"] = _embedding_map(analysis)
        if analysis["probes"]["pairs"]:
            data["baseline"] = {
                "mean": _nums([s["scalars"][keys.BASELINE_MEAN] for s in snapshots]),
                "sd": _nums([s["scalars"][keys.BASELINE_STD] for s in snapshots]),
            }
            data["pairs"] = _pairs(analysis)
    verdicts = _verdicts(analysis)
    for name, value in (("heads", _heads(analysis, verdicts)), ("icl", _icl(analysis, verdicts))):
        if value:
            data[name] = value
    if "linear_probes" in final:
        data["layer_probe"] = _layer_probe(analysis)
    if "layer_settling" in final:
        data["settling"] = _settling(analysis)
    train_config = analysis.get("provenance", {}).get("train_config")
    if train_config:
        data["config"] = OmegaConf.to_yaml(OmegaConf.create(train_config))
    return data


# ---------------------------------------------------------------- a sweep's data


def _mean_curve(jobs: list[dict[str, Any]], pairs: list[str]) -> dict[str, Any]:
    """Every pair's zf, mean and sd over `jobs`, at the steps all of them logged (sd None from one job)."""
    steps = sorted(set.intersection(*(set(job["steps"]) for job in jobs))) if jobs else []
    curve: dict[str, Any] = {"steps": steps, "mean": {}, "sd": {}}
    for name in pairs:
        at = [[job["zf"][name][job["steps"].index(step)] for job in jobs] for step in steps]
        curve["mean"][name] = _nums([statistics.fmean(values) for values in at])
        curve["sd"][name] = _nums([statistics.stdev(values) if len(values) > 1 else None for values in at])
    return curve


def sweep_page_data(
    summary: dict[str, Any], records: dict[int, list[dict[str, Any]]], axes: list[str], thresholds: dict[str, float]
) -> dict[str, Any]:
    """Everything the sweep page draws: every job's zf curves, every configuration's final numbers.

    `summary` as analysis/sweeps.py summarize makes it; `records` every job's metrics.jsonl records by job
    number; `axes` the swept keys a plot may put on its x-axis (all but the seed); `thresholds` the
    claims' (analysis.claims: z_min, p_max).
    """
    described = {name: pair for c in summary["configurations"] for name, pair in c["pairs"].items()}
    expect = {name: pair["expect"] for name, pair in described.items()}
    jobs = []
    for job in summary["jobs"]:
        rows = [r for r in records.get(job["job"], []) if any(keys.pair("zf", name) in r for name in expect)]
        jobs.append(
            {
                "job": job["job"],
                "configuration": job["configuration"],
                "seed": job["seed"],
                "status": job["status"],
                "n_params": job["n_params"],
                "step": job["step"],
                "loss": _num(job["loss_val"]),
                "values": axis_values(job["overrides"], axes),
                "steps": [r["step"] for r in rows],
                "zf": {name: _nums([r.get(keys.pair("zf", name)) for r in rows]) for name in expect},
            }
        )
    configurations = []
    for c in summary["configurations"]:
        members = [job for job in jobs if job["configuration"] == c["label"]]
        configurations.append(
            {
                "label": c["label"],
                "n_params": c["n_params"],
                "seeds": c["seeds"],
                "values": members[0]["values"],
                "loss": {k: _num(c["loss_val"][k]) for k in ("mean", "sd")},
                "zf": {name: {k: _num(pair["zf"][k]) for k in ("mean", "sd")} for name, pair in c["pairs"].items()},
                "curve": _mean_curve([job for job in members if job["status"] == "complete"], list(c["pairs"])),
            }
        )
    return {
        "axes": axes,
        "pairs": [
            {"id": name, "label": _shown(pair["label"]), "expect": pair["expect"]} for name, pair in described.items()
        ],
        "thresholds": thresholds,
        "n_jobs": summary["n_jobs"],
        "n_complete": summary["n_complete"],
        "configurations": configurations,
        "jobs": jobs,
    }


# ---------------------------------------------------------------- the page


def _script_json(data: Any) -> str:
    """JSON that is safe inside a <script> element: no "<" can end the element early."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")


@functools.cache
def _packed_plotly_js() -> str:
    """The plotly package's plotly.js, gzip-compressed (reproducibly: no time stamp) and base64-encoded."""
    from plotly.offline import get_plotlyjs

    return base64.b64encode(gzip.compress(get_plotlyjs().encode("utf-8"), mtime=0)).decode("ascii")


def _package_file(name: str) -> str:
    """One of the pages' files kept beside this module: explorer_page.html (the frame), explorer.css, a
    page's controls and body (explorer_run*.html, explorer_sweep*.html), the scripts (explorer*.js)."""
    return resources.files("glassbox.report").joinpath(name).read_text(encoding="utf-8")


def _page(title: str, kind: str, data: dict[str, Any], script: str) -> str:
    """A self-contained page: the shared frame, style and helpers, then the page's own controls, body
    (explorer_<kind>_controls.html, explorer_<kind>.html), data blob and script, and the font that draws
    every CJK character among them (report/page_font.py)."""
    parts = {
        "title": html.escape(title),
        "controls": _package_file(f"explorer_{kind}_controls.html"),
        "body": _package_file(f"explorer_{kind}.html"),
        "data": _script_json(data),
        "script": _package_file("explorer_common.js") + "\n" + _package_file(script),
    }
    css = font_face_css("".join(parts.values())) + "\n" + _package_file("explorer.css")
    return _package_file("explorer_page.html").format(css=css, plotly=_packed_plotly_js(), **parts)


def explorer_html(analysis: dict[str, Any]) -> str:
    """The explorer page of one analysed run, self-contained (no network, no server)."""
    title = f"glassbox explorer · {analysis['experiment']} · {analysis['corpus']}"
    return _page(title, "run", page_data(analysis), "explorer.js")


def sweep_html(
    title: str,
    summary: dict[str, Any],
    records: dict[int, list[dict[str, Any]]],
    axes: list[str],
    thresholds: dict[str, float],
) -> str:
    """The explorer page of a sweep, self-contained (arguments after the title: see sweep_page_data)."""
    data = sweep_page_data(summary, records, axes, thresholds)
    return _page(f"glassbox sweep · {title}", "sweep", data, "explorer_sweep.js")
