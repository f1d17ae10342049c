"""report.py on synthetic analyses: the wording of every claim follows its matched z and p,
the article's numbers sit beside the run's, and plots fall back to code points without a CJK font."""
from __future__ import annotations

import math

import pytest

from glassbox.report.claims import DID_NOT, HELD, NO_DIRECTION, NOT_YET, claims, verdict
from glassbox.report.figures import figures, plotted_chars
from glassbox.report.markdown import escape, visible_char
from glassbox.report.plotting import CharLabels
from glassbox.report.sections import render

THRESHOLDS = {"z_min": 2.0, "p_max": 0.05}


@pytest.mark.parametrize("zf, p, expect, expected", [
    (2.5, 0.01, "up", HELD),
    (2.0, 0.05, "up", HELD),          # the thresholds themselves count
    (2.5, 0.20, "up", NOT_YET),       # a large z is not enough: p must agree
    (1.5, 0.01, "up", NOT_YET),       # nor is a small p with z short of z_min
    (-2.5, 0.01, "up", DID_NOT),      # significant, but the wrong way
    (-3.0, 0.001, "down", HELD),
    (3.0, 0.001, "down", DID_NOT),
    (-0.5, 0.40, "down", NOT_YET),
    (5.0, 0.001, "none", NO_DIRECTION),
    (math.nan, 0.01, "up", DID_NOT),  # a NaN never holds
])
def test_verdict_follows_the_matched_z_and_p(zf, p, expect, expected):
    assert verdict(zf, p, expect, **THRESHOLDS) == expected


def synthetic_analysis(rows_by_step: dict[int, dict[str, float]], pairs: list[tuple[str, str, str, str, str]],
                       reference: dict | None = None) -> dict:
    """An analysis dict as analyze.describe builds it, with only the embeddings suite's scalars.

    rows_by_step: step -> {f"{kind}/{id}": value}; pairs: (id, a, b, kind, expect).
    """
    snapshots = [{"step": step, "scalars": {"baseline/mean": 0.0, "baseline/std": 0.1, **scalars}}
                 for step, scalars in sorted(rows_by_step.items())]
    analysis = {
        "experiment": "synthetic", "run_dir": "/runs/synthetic", "status": "complete", "corpus": "synthetic",
        "vocab_size": 10, "suites": ["embeddings"],
        "model": {"n_layer": 1, "n_head": 1, "n_embd": 4, "block_size": 8, "n_params": 100},
        "probes": {"groups": {}, "prompts": [],
                   "pairs": [{"name": name, "label": f"{a}–{b}", "a": a, "b": b, "kind": kind, "expect": expect}
                             for name, a, b, kind, expect in pairs]},
        "sampling": {"temperature": 0.8, "top_k": 10, "gen_tokens": 5, "seed": 0},
        "thresholds": THRESHOLDS, "reference": reference or {}, "losses": [], "snapshots": snapshots,
    }
    analysis["claims"] = claims(analysis)
    return analysis


def pair_values(cos: float, z: float, zf: float, p: float, name: str) -> dict[str, float]:
    return {f"cos/{name}": cos, f"z/{name}": z, f"zf/{name}": zf, f"p/{name}": p}


PAIRS = [("shuo_dao", "说", "道", "within", "up"), ("shan_shui", "山", "水", "within", "up"),
         ("shuo_shan", "说", "山", "cross", "down"), ("a_A", "a", "A", "other", "none")]


@pytest.fixture
def analysis():
    """说-道 holds from step 8 on; 山-水 held at step 8 only; 说-山 passes the GLOBAL z but not
    the matched one (the drift case); a-A has no expected direction."""
    return synthetic_analysis({
        0: {**pair_values(0.01, 0.1, 0.1, 0.45, "shuo_dao"), **pair_values(0.0, 0.0, 0.0, 0.5, "shan_shui"),
            **pair_values(0.0, 0.0, 0.0, 0.5, "shuo_shan"), **pair_values(0.0, 0.0, 0.0, 0.5, "a_A")},
        8: {**pair_values(0.30, 2.6, 2.4, 0.01, "shuo_dao"), **pair_values(0.30, 2.6, 2.2, 0.02, "shan_shui"),
            **pair_values(-0.1, -1.0, -0.5, 0.30, "shuo_shan"), **pair_values(0.1, 0.5, 0.4, 0.6, "a_A")},
        16: {**pair_values(0.35, 3.0, 3.1, 0.002, "shuo_dao"), **pair_values(0.10, 1.1, 1.2, 0.12, "shan_shui"),
             **pair_values(-0.3, -2.7, -1.1, 0.20, "shuo_shan"), **pair_values(0.2, 0.9, 0.3, 0.7, "a_A")},
    }, PAIRS, reference={"cosine": {"shuo_dao": {"init": -0.003, "trained": 0.240}}, "source": "the article"})


def test_claims_are_judged_at_the_last_step_with_the_first_step_they_held(analysis):
    by_name = {c["claim"]: c for c in analysis["claims"]}
    held = by_name["shuo_dao"]
    assert (held["verdict"], held["first_held"], held["step"], held["label"]) == (HELD, 8, 16, "说–道")
    assert (by_name["shan_shui"]["verdict"], by_name["shan_shui"]["first_held"]) == (NOT_YET, 8)
    drift = by_name["shuo_shan"]
    assert (drift["verdict"], drift["first_held"]) == (NOT_YET, None)  # its global z of -2.7 is no help
    assert by_name["a_A"]["verdict"] == NO_DIRECTION
    assert by_name["shuo_dao"]["zf"] == 3.1 and by_name["shuo_dao"]["p"] == 0.002 and by_name["shuo_dao"]["z"] == 3.0


def claim_line(markdown: str, label: str) -> str:
    (line,) = [line for line in markdown.splitlines() if line.startswith(f"- {label} (")]
    return line


def test_the_report_words_each_claim_by_its_numbers(analysis):
    markdown = render(analysis, [])
    held = claim_line(markdown, "说 – 道")
    assert "**held** at step 16" in held and "zf +3.10" in held and "p 0.002" in held and "first held at step 8" in held
    faded = claim_line(markdown, "山 – 水")
    assert "**not yet** at step 16" in faded and "held at step 8 but no longer does" in faded
    assert "**held**" not in faded
    drift = claim_line(markdown, "说 – 山")
    assert "**not yet**" in drift and "zf -1.10" in drift and "held" not in drift.replace("not yet", "")
    assert "indistinguishable from chance" in claim_line(markdown, "a – A")
    assert "1 of 3 directional claims held." in markdown


def test_a_claim_against_its_expected_direction_did_not_hold():
    analysis = synthetic_analysis({0: pair_values(0.0, 0.0, 0.0, 0.5, "x_y"),
                                   5: pair_values(-0.4, -3.0, -3.0, 0.001, "x_y")},
                                  [("x_y", "x", "y", "within", "up")])
    line = claim_line(render(analysis, []), "x – y")
    assert "**did not** hold at step 5" in line and "against the expected direction (up)" in line


def test_the_cosine_table_puts_the_articles_numbers_beside_the_runs(analysis):
    markdown = render(analysis, [])
    (row,) = [line for line in markdown.splitlines() if line.startswith("| 说 – 道 | within")]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    # pair, kind, expected, article init, step 0, article trained, step 16, z, zf, p, verdict
    assert cells == ["说 – 道", "within", "up", "-0.003", "+0.010", "+0.240", "+0.350", "+3.00", "+3.10", "0.002",
                     "held"]
    (row,) = [line for line in markdown.splitlines() if line.startswith("| 山 – 水 | within")]
    assert row.split("|")[4].strip() == "—"  # no article figure for this pair: a dash, not a made-up number


def test_the_emergence_table_ticks_exactly_the_steps_where_a_claim_held(analysis):
    markdown = render(analysis, [])
    rows = {line.split("|")[1].strip(): line for line in markdown.splitlines() if line.startswith("| ") and
            line.split("|")[1].strip() in {"0", "8", "16"}}
    ticks = {step: [cell.strip().endswith("✓") for cell in row.strip("|").split("|")[2:]]
             for step, row in rows.items()}
    assert ticks == {"0": [False] * 4, "8": [True, True, False, False], "16": [True, False, False, False]}


def test_no_embeddings_suite_means_no_claims():
    analysis = synthetic_analysis({0: {}}, [])
    analysis["snapshots"] = [{"step": 0, "scalars": {}}]
    assert claims(analysis) == []
    assert "## Claims" not in render({**analysis, "claims": []}, [])


def test_markdown_cells_escape_pipes_and_show_whitespace():
    assert visible_char("|") == "\\|"
    assert visible_char(" ") == "␣" and visible_char("\n") == "\\n"
    assert escape("a|b\nc") == "a\\|b\\nc"


def test_characters_without_a_font_are_labelled_by_code_point():
    labels = CharLabels(["说", "道", "a", " "], font_names=())  # no CJK font may be used
    assert labels.as_code_points == ["说", "道"] and labels.family is None
    assert labels("说") == "U+8BF4" and labels("a") == "a" and labels(" ") == "␣"
    assert labels("说a") == "U+8BF4 a"
    assert CharLabels(["a", "!"]).as_code_points == []  # DejaVu Sans draws ASCII


def test_a_cjk_font_is_used_when_one_is_installed():
    labels = CharLabels(["说"])
    if labels.family is None:
        pytest.skip("no CJK font installed here")
    assert labels("说") == "说" and labels.families[-1] == labels.family


@pytest.mark.filterwarnings("error")  # e.g. matplotlib's "Glyph missing from font(s)"
def test_figures_are_png_images_for_the_suites_that_ran(analysis):
    analysis["losses"] = [{"step": 0, "loss/val": 4.0}, {"step": 16, "loss/val": 3.0, "loss/train": 3.1}]
    for snapshot in analysis["snapshots"]:
        snapshot["scalars"] |= {"emb/std": 0.02, "emb/min": -0.1, "emb/max": 0.1, "emb/l2_mean": 0.3,
                                "resid_std/embed": 0.1}
        snapshot["embeddings"] = {"neighbours": [], "pca": {"chars": ["说", "道"], "groups": ["say", "say"],
                                                          "coords": [[0.0, 1.0], [1.0, 0.0]], "explained": [0.6, 0.4]}}
    pngs = figures(analysis, CharLabels(plotted_chars(analysis), font_names=()))
    assert sorted(pngs) == ["cosine.png", "embedding_scale.png", "loss.png", "pca.png", "residual_std.png",
                            "z_scores.png"]
    assert all(png.startswith(b"\x89PNG\r\n\x1a\n") for png in pngs.values())
    markdown = render(analysis, list(pngs))
    assert all(f"![{name}]({name})" in markdown for name in pngs)
