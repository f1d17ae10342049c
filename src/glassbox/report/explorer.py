"""The explorer pages: one self-contained, interactive HTML page per run (report/explorer.html) and
per sweep (<sweep>/explorer.html).

`explorer_html(analysis)` turns the analysis dict that glassbox.analyze saves as
report/analysis.json into one HTML string: plotly.js inline (from the plotly package), the run's
numbers as one compact JSON blob, and explorer.js, which draws every panel for the snapshot chosen
on a step slider. `sweep_html` does the same for a sweep's runs (explorer_sweep.js); both scripts
start from the helpers in explorer_common.js. The pages open from disk (file://) with no network
and no server. Everything here is plain data in, one string out.

plotly.js is inlined gzip-compressed and base64-encoded, 2.0 MB instead of 4.8 MB, and unpacked by
the browser's own DecompressionStream (Chrome 80, Firefox 113, Safari 16.4 and later): the whole
page of the default run stays far below its 5 MB budget however plotly.js grows.

The blob holds, per snapshot, only what the panels show (floats rounded to 4 significant digits,
never the whole vocabulary): the embedding map aligned across steps, every probe pair's cosine with
its two chance bands, the embedding statistics, and per prompt the residual table, the attention
patterns, the next-character ranking and the logit lens; then the claims and the run's provenance.
A suite that did not run leaves its panels out.
"""

from __future__ import annotations

import base64
import functools
import gzip
import html
import json
import math
import statistics
from importlib import resources
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from glassbox import metric_keys as keys
from glassbox.report.claims import GROUP_CLAIM, LEVEL, Claim, claim_list
from glassbox.report.markdown import WHITESPACE

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


def procrustes(points: np.ndarray, target: np.ndarray) -> np.ndarray:
    """`points` [n, 2] rotated or reflected onto `target` [n, 2] (orthogonal Procrustes).

    The orthogonal R minimising |points @ R - target| is U Vᵀ for the SVD U S Vᵀ of pointsᵀ target.
    Both are centred (PCA coordinates are); distances and scale are kept, only orientation changes.
    """
    u, _, vt = np.linalg.svd(points.T @ target)
    return points @ (u @ vt)


def aligned_maps(coords: list[list[list[float]]]) -> list[np.ndarray]:
    """Every snapshot's map coordinates turned to match the last snapshot's.

    Each snapshot's PCA is only defined up to rotation and reflection; aligning all of them to the
    final picture keeps a character in one place on screen while the slider moves.
    """
    target = np.asarray(coords[-1], dtype=float)
    return [procrustes(np.asarray(c, dtype=float), target) for c in coords]


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
    train_config = analysis.get("provenance", {}).get("train_config")
    if train_config:
        data["config"] = OmegaConf.to_yaml(OmegaConf.create(train_config))
    return data


# ---------------------------------------------------------------- a sweep's data


def _axis_values(overrides: list[str], axes: list[str]) -> dict[str, str]:
    """{swept key: its value} of one job, e.g. {"model.n_layer": "2"} from "model.n_layer=2"."""
    pairs = (override.split("=", 1) for override in overrides if "=" in override)
    return {key: value for key, value in pairs if key in axes}


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

    `summary` as glassbox.sweep.summarize makes it; `records` every job's metrics.jsonl records by job
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
                "values": _axis_values(job["overrides"], axes),
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


def _script(name: str) -> str:
    return resources.files("glassbox.report").joinpath(name).read_text(encoding="utf-8")


def _page(title: str, controls: str, body: str, data: dict[str, Any], script: str) -> str:
    """A self-contained page: the shared style and helpers, the page's controls, body, data blob and script."""
    return PAGE.format(
        title=html.escape(title),
        css=CSS,
        controls=controls,
        body=body,
        plotly=_packed_plotly_js(),
        data=_script_json(data),
        script=_script("explorer_common.js") + "\n" + _script(script),
    )


def explorer_html(analysis: dict[str, Any]) -> str:
    """The explorer page of one analysed run, self-contained (no network, no server)."""
    title = f"glassbox explorer · {analysis['experiment']} · {analysis['corpus']}"
    return _page(title, RUN_CONTROLS, RUN_BODY, page_data(analysis), "explorer.js")


def sweep_html(
    title: str,
    summary: dict[str, Any],
    records: dict[int, list[dict[str, Any]]],
    axes: list[str],
    thresholds: dict[str, float],
) -> str:
    """The explorer page of a sweep, self-contained (arguments after the title: see sweep_page_data)."""
    data = sweep_page_data(summary, records, axes, thresholds)
    return _page(f"glassbox sweep · {title}", SWEEP_CONTROLS, SWEEP_BODY, data, "explorer_sweep.js")


CSS = """
:root { --ink: #202124; --muted: #5f6368; --line: #dadce0; --held: #1e8e3e; --not-yet: #b06000; --did-not: #c5221f; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fafafa; font: 14px/1.4 system-ui, -apple-system, "Segoe UI",
       Roboto, "Noto Sans", "Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei", sans-serif; }
header { position: sticky; top: 0; z-index: 10; display: flex; flex-wrap: wrap; align-items: center; gap: 6px 16px;
         padding: 8px 16px; background: #fff; border-bottom: 1px solid var(--line); }
header h1 { font-size: 16px; margin: 0; white-space: nowrap; }
header input[type=range] { flex: 1 1 300px; min-width: 200px; }
header button { font: inherit; padding: 2px 12px; min-width: 70px; }
#step-label { font-variant-numeric: tabular-nums; white-space: nowrap; }
main { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 12px; padding: 12px 16px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; min-width: 0; }
section.wide { grid-column: 1 / -1; }
@media (max-width: 1000px) { main { grid-template-columns: minmax(0, 1fr); } }
h2 { font-size: 15px; margin: 2px 0 4px; }
h3 { font-size: 14px; margin: 10px 0 4px; }
p.note { color: var(--muted); margin: 0 0 6px; font-size: 12.5px; }
table { border-collapse: collapse; font-size: 13px; font-variant-numeric: tabular-nums; }
th, td { padding: 2px 8px; border-bottom: 1px solid #eee; text-align: right; white-space: nowrap; }
th { color: var(--muted); font-weight: 600; }
td.text, th.text { text-align: left; white-space: normal; }
td.pair { white-space: nowrap; font-weight: 600; }
td.chosen { background: #e8f0fe; font-weight: 600; }
.scroll { overflow-x: auto; }
.held { color: var(--held); font-weight: 600; }
.not-yet { color: var(--not-yet); }
.did-not { color: var(--did-not); }
.sample { white-space: pre-wrap; font-family: ui-monospace, "Noto Sans Mono CJK SC", monospace; background: #f4f4f4;
          padding: 4px 6px; border-radius: 4px; }
pre { font-size: 12px; max-height: 360px; overflow: auto; background: #f4f4f4; padding: 6px; }
.missing { color: var(--muted); font-style: italic; }
label { color: var(--muted); font-size: 12.5px; }
/* Plotly's tool bar only while the pointer is over its chart: it would hide titles otherwise. */
.js-plotly-plot .modebar-container { opacity: 0; transition: opacity 0.2s; }
.js-plotly-plot:hover .modebar-container { opacity: 1; }
"""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="data:,">
<style>{css}</style>
</head>
<body>
<header>
  <h1>{title}</h1>
  {controls}
</header>
<main>{body}</main>
<script type="application/gzip;base64" id="plotly-js">{plotly}</script>
<script type="application/json" id="glassbox-data">{data}</script>
<script>{script}</script>
</body>
</html>
"""

RUN_CONTROLS = """<button id="play" type="button">▶ play</button>
  <input id="step" type="range" min="0" max="0" step="1" value="0" aria-label="snapshot">
  <span id="step-label"></span>"""

RUN_BODY = """
  <section id="map-section">
    <h2>Embedding map</h2>
    <p class="note">Token embedding of the probe characters and the most frequent characters, first two principal
      components, turned to match the last snapshot (orthogonal Procrustes) so the picture does not spin between
      steps. Hover for count and row norm.
      <label><input id="same-scale" type="checkbox"> same scale at every step</label></p>
    <div id="map-plot"></div>
  </section>
  <section id="pairs-section">
    <h2>Probe pairs at this step</h2>
    <p class="note">Cosine against chance, mean ± 2 sd of random pairs: global (random frequent pairs) at this step
      <b id="global-chance"></b>, z against it; matched (random pairs from the pair's own frequency bands), zf against
      it. Only zf and p decide the verdict; ↑ ↓ the expected direction. A cross pair's verdict is its "no
      association": within chance (|zf| &lt; z_min) and below every within pair of its groups.</p>
    <div class="scroll"><table id="pairs-table"></table></div>
    <div id="zf-plot"></div>
  </section>
  <section class="wide" id="curves-section">
    <h2>Probe-pair cosine vs step</h2>
    <p class="note">Against the training step (log scale). Dotted grey: global chance, blue band:
      frequency-matched chance (mean ± 2 sd); diamonds: the reference article's values at init and
      trained; the red dot marks the slider's step.</p>
    <div id="pairs-plot"></div>
  </section>
  <section class="wide" id="embedding-section">
    <h2>Token embedding vs step</h2>
    <div id="embedding-plot"></div>
  </section>
  <section id="residual-section">
    <h2>Residual stream per layer</h2>
    <p class="note">mean, std and max |x| of the residual stream for each probe prompt; the reference article's trained
      model beside them where it reports one.</p>
    <div id="residual"></div>
  </section>
  <section id="next-section">
    <h2>Next character</h2>
    <p class="note">The model's top characters after each prompt, and the logit lens: what each layer's residual
      would predict through the final norm (LayerNorm or RMSNorm) and lm_head.</p>
    <div id="next"></div>
  </section>
  <section class="wide" id="attention-section">
    <h2>Attention</h2>
    <p class="note">Every layer and head; rows are the query position, columns the key. Grey cells are the future,
      which the causal mask hides.</p>
    <div id="attention"></div>
  </section>
  <section class="wide" id="claims-section">
    <h2>Claims at the last step</h2>
    <div class="scroll"><table id="claims-table"></table></div>
  </section>
  <section class="wide" id="run-section">
    <h2>Run</h2>
    <div class="scroll"><table id="run-table"></table></div>
    <details id="config"><summary>training configuration</summary><pre id="config-text"></pre></details>
  </section>
"""

SWEEP_CONTROLS = """<label>pair <select id="pair"></select></label>
  <label>x-axis <select id="x-key"></select></label>
  <span id="sweep-label"></span>"""

SWEEP_BODY = """
  <section id="final-section">
    <h2>Final zf</h2>
    <p class="note">The pair's zf (against frequency-matched random pairs) at each run's last step: mean ± sd over
      the seeds of each configuration, grey dots the seeds; one line per value of the other swept keys.</p>
    <div id="final-plot"></div>
  </section>
  <section id="loss-section">
    <h2>Final validation loss</h2>
    <p class="note">Mean ± sd over seeds; grey dots the seeds.</p>
    <div id="loss-plot"></div>
  </section>
  <section class="wide" id="curves-section">
    <h2>zf against step, every run</h2>
    <p class="note">Thin lines: each run; bold line and band: each configuration's mean ± sd over its seeds.</p>
    <div id="curves-plot"></div>
  </section>
  <section class="wide" id="jobs-section">
    <h2>Runs</h2>
    <div class="scroll"><table id="jobs-table"></table></div>
  </section>
"""
