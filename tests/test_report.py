"""report.py on synthetic analyses: the wording of every claim follows its matched z and p, a cross
pair is judged as the reference article meant it (no association; moving apart), p-values never read
0.000, the reference article's numbers sit beside the run's, plots draw CJK characters with the
packaged font and fall back to code points without one."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from glassbox.analysis.claims import (
    ANALOGY,
    ANALOGY_GAIN,
    DID_NOT,
    HELD,
    LEVEL,
    MOVING_APART,
    NO_ASSOCIATION,
    NO_DIRECTION,
    NOT_YET,
    PARALLEL_OFFSETS,
    claims,
    offset_claims,
    verdict,
)
from glassbox.report.figures import figures, plotted_chars
from glassbox.report.markdown import escape, p_text, visible_char
from glassbox.report.plotting import CharLabels, packaged_cjk_font
from glassbox.report.sections import render

THRESHOLDS = {"z_min": 2.0, "p_max": 0.05}


@pytest.mark.parametrize(
    "zf, p, expect, expected",
    [
        (2.5, 0.01, "up", HELD),
        (2.0, 0.05, "up", HELD),  # the thresholds themselves count
        (2.5, 0.20, "up", NOT_YET),  # a large z is not enough: p must agree
        (1.5, 0.01, "up", NOT_YET),  # nor is a small p with z short of z_min
        (-2.5, 0.01, "up", DID_NOT),  # significant, but the wrong way
        (-3.0, 0.001, "down", HELD),
        (3.0, 0.001, "down", DID_NOT),
        (-0.5, 0.40, "down", NOT_YET),
        (5.0, 0.001, "none", NO_DIRECTION),
        (math.nan, 0.01, "up", DID_NOT),  # a NaN never holds
    ],
)
def test_verdict_follows_the_matched_z_and_p(zf, p, expect, expected):
    assert verdict(zf, p, expect, **THRESHOLDS) == expected


def synthetic_analysis(
    rows_by_step: dict[int, dict[str, float]],
    pairs: list[tuple[str, str, str, str, str]],
    reference: dict | None = None,
    groups: dict[str, list[str]] | None = None,
) -> dict:
    """An analysis dict as analysis/replay.py describe builds it, with only the embeddings suite's scalars.

    rows_by_step: step -> {f"{kind}/{id}": value}; pairs: (id, a, b, kind, expect).
    """
    snapshots = [
        {"step": step, "scalars": {"baseline/mean": 0.0, "baseline/std": 0.1, **scalars}}
        for step, scalars in sorted(rows_by_step.items())
    ]
    analysis = {
        "experiment": "synthetic",
        "run_dir": "/runs/synthetic",
        "status": "complete",
        "corpus": "synthetic",
        "vocab_size": 10,
        "suites": ["embeddings"],
        "model": {"n_layer": 1, "n_head": 1, "n_embd": 4, "block_size": 8, "n_params": 100},
        "probes": {
            "groups": groups or {},
            "prompts": [],
            "pairs": [
                {"name": name, "label": f"{a}–{b}", "a": a, "b": b, "kind": kind, "expect": expect}
                for name, a, b, kind, expect in pairs
            ],
        },
        "sampling": {"temperature": 0.8, "top_k": 10, "gen_tokens": 5, "seed": 0},
        "thresholds": {**THRESHOLDS, "early_drift": 0.25},
        "chance": {"n_pairs": 4000, "n_permutations": 1000},
        "reference": reference or {},
        "losses": [],
        "snapshots": snapshots,
    }
    analysis["claims"] = claims(analysis)
    return analysis


def pair_values(cos: float, z: float, zf: float, p: float, name: str) -> dict[str, float]:
    return {f"cos/{name}": cos, f"z/{name}": z, f"zf/{name}": zf, f"p/{name}": p}


def change_values(dcos: float, zf: float, p: float, name: str) -> dict[str, float]:
    return {f"dcos/{name}": dcos, f"zf_dcos/{name}": zf, f"p_dcos/{name}": p}


PAIRS = [
    ("shuo_dao", "说", "道", "within", "up"),
    ("shan_shui", "山", "水", "within", "up"),
    ("shuo_shan", "说", "山", "cross", "down"),
    ("a_A", "a", "A", "other", "none"),
]


@pytest.fixture
def analysis():
    """说-道 holds from step 8 on; 山-水 held at step 8 only; 说-山 stays within chance (its global z of
    -2.7 is the drift case, no help) and under both within pairs from step 8 on, and falls further
    than its bands (p at the floor of 4000 null pairs); a-A has no expected direction."""
    return synthetic_analysis(
        {
            0: {
                **pair_values(0.01, 0.1, 0.1, 0.45, "shuo_dao"),
                **pair_values(0.0, 0.0, 0.0, 0.5, "shan_shui"),
                **pair_values(0.0, 0.0, 0.0, 0.5, "shuo_shan"),
                **pair_values(0.0, 0.0, 0.0, 0.5, "a_A"),
            },
            8: {
                **pair_values(0.30, 2.6, 2.4, 0.01, "shuo_dao"),
                **pair_values(0.30, 2.6, 2.2, 0.02, "shan_shui"),
                **pair_values(-0.1, -1.0, -0.5, 0.30, "shuo_shan"),
                **pair_values(0.1, 0.5, 0.4, 0.6, "a_A"),
                **change_values(-0.1, -1.0, 0.2, "shuo_shan"),
            },
            16: {
                **pair_values(0.35, 3.0, 3.1, 0.002, "shuo_dao"),
                **pair_values(0.10, 1.1, 1.2, 0.12, "shan_shui"),
                **pair_values(-0.3, -2.7, -1.1, 0.20, "shuo_shan"),
                **pair_values(0.2, 0.9, 0.3, 0.7, "a_A"),
                **change_values(-0.3, -2.5, 1 / 4001, "shuo_shan"),
            },
        },
        PAIRS,
        reference={"cosine": {"shuo_dao": {"init": -0.003, "trained": 0.240}}, "source": "the article"},
        groups={"say": ["说", "道"], "nature": ["山", "水"]},
    )


def test_claims_are_judged_at_the_last_step_with_the_first_step_they_held(analysis):
    by_name = {(c["claim"], c["test"]): c for c in analysis["claims"]}
    assert list(by_name) == [
        ("shuo_dao", LEVEL),
        ("shan_shui", LEVEL),
        ("shuo_shan", NO_ASSOCIATION),
        ("shuo_shan", MOVING_APART),
        ("a_A", LEVEL),
    ]  # no group statistic was measured, so no group claim
    held = by_name["shuo_dao", LEVEL]
    assert (held["verdict"], held["first_held"], held["stayed"], held["step"]) == (HELD, 8, True, 16)
    faded = by_name["shan_shui", LEVEL]
    assert (faded["verdict"], faded["first_held"], faded["stayed"]) == (NOT_YET, 8, False)
    apart = by_name["shuo_shan", NO_ASSOCIATION]  # step 0 (cos 0.0, not under 山-水's 0.0) lies in the early drift
    assert (apart["verdict"], apart["judged_from"], apart["first_held"]) == (HELD, 8, 8)
    assert apart["below"] == ["shuo_dao", "shan_shui"]  # the within pairs of its groups
    moving = by_name["shuo_shan", MOVING_APART]
    assert (moving["verdict"], moving["change"], moving["zf"], moving["initial"], moving["value"]) == (
        HELD,
        -0.3,
        -2.5,
        0.0,
        -0.3,
    )
    assert by_name["a_A", LEVEL]["verdict"] == NO_DIRECTION and by_name["a_A", LEVEL]["differs"] is False
    assert held["zf"] == 3.1 and held["p"] == 0.002 and held["z"] == 3.0 and held["p_floor"] == 1 / 4001


def test_no_association_fails_at_the_first_snapshot_after_the_drift_where_the_cross_pair_leaves_chance():
    steps = {
        0: (0.0, 0.0, 0.1),  # (within cos, cross zf, cross cos); step 0: in the early drift
        40: (0.5, -2.5, 0.3),  # outside chance (|zf| ≥ 2), though under the within pair
        80: (0.05, 0.2, 0.1),  # above the within pair, though within chance
        100: (0.5, -0.1, 0.3),
    }  # fine again at the end: the verdict still says it did not hold
    rows = {
        step: {**pair_values(within, 3.0, 3.0, 0.001, "a_b"), **pair_values(cross, 0.0, zf, 0.5, "a_c")}
        for step, (within, zf, cross) in steps.items()
    }
    analysis = synthetic_analysis(
        rows,
        [("a_b", "a", "b", "within", "up"), ("a_c", "a", "c", "cross", "down")],
        groups={"one": ["a", "b"], "two": ["c"]},
    )
    (claim,) = [c for c in analysis["claims"] if c["test"] == NO_ASSOCIATION]
    assert (claim["verdict"], claim["judged_from"]) == (DID_NOT, 40)
    assert claim["broke"] == {"step": 40, "zf": -2.5, "cos": 0.3, "above": {}}
    analysis["thresholds"]["early_drift"] = 0.5  # from step 50 on: step 80 is the first to fail, and why
    (claim,) = [c for c in claims(analysis) if c["test"] == NO_ASSOCIATION]
    assert claim["broke"] == {"step": 80, "zf": None, "cos": 0.1, "above": {"a_b": 0.05}}
    line = claim_line(render({**analysis, "claims": claims(analysis)}, []), "a – c", "no association")
    assert "**did not** hold over steps 80 … 100" in line
    assert "at step 80 its cosine +0.100 is not below a – b (+0.050)" in line


def claim_line(markdown: str, label: str, test: str | None = None) -> str:
    """The claims section's line of one claim (a cross pair has two: pass the test)."""
    (line,) = [
        line
        for line in markdown.splitlines()
        if line.startswith(f"- {label} (") and (test is None or f", {test}:" in line)
    ]
    return line


def test_the_report_words_each_claim_by_its_numbers(analysis):
    markdown = render(analysis, [])
    held = claim_line(markdown, "说 – 道")
    assert "**held** at step 16" in held and "zf +3.10" in held and "p 0.002" in held and "first held at step 8" in held
    faded = claim_line(markdown, "山 – 水")
    assert "**not yet** at step 16" in faded and "held at step 8 but no longer does" in faded
    assert "**held**" not in faded
    apart = claim_line(markdown, "说 – 山", "no association")
    assert "**held** at every snapshot of steps 8 … 16" in apart and "below every within pair of its groups" in apart
    assert "at the end zf -1.10" in apart
    moving = claim_line(markdown, "说 – 山", "moving apart")
    assert "**held** at step 16: cosine +0.000 → -0.300, a change of -0.300" in moving
    assert "zf -2.50, p < 0.001" in moving  # p at its resolution, 1/4001: never "p 0.000"
    assert "indistinguishable from chance" in claim_line(markdown, "a – A")
    assert "3 of 4 directional claims held." in markdown
    assert "No replicate of experiment synthetic yet: `make replicate EXPERIMENT=synthetic`" in markdown


def test_a_claim_against_its_expected_direction_did_not_hold():
    analysis = synthetic_analysis(
        {0: pair_values(0.0, 0.0, 0.0, 0.5, "x_y"), 5: pair_values(-0.4, -3.0, -3.0, 0.001, "x_y")},
        [("x_y", "x", "y", "within", "up")],
    )
    line = claim_line(render(analysis, []), "x – y")
    assert "**did not** hold at step 5" in line and "against the expected direction (up)" in line


def test_the_cosine_table_puts_the_articles_numbers_beside_the_runs(analysis):
    markdown = render(analysis, [])
    (row,) = [line for line in markdown.splitlines() if line.startswith("| 说 – 道 | within")]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    # pair, kind, expected, article init, step 0, article trained, step 16, z, zf, p, verdict
    assert cells == [
        "说 – 道",
        "within",
        "up",
        "-0.003",
        "+0.010",
        "+0.240",
        "+0.350",
        "+3.00",
        "+3.10",
        "0.002",
        "held",
    ]
    (row,) = [line for line in markdown.splitlines() if line.startswith("| 山 – 水 | within")]
    assert row.split("|")[4].strip() == "—"  # no article figure for this pair: a dash, not a made-up number


def test_the_emergence_table_ticks_exactly_the_steps_where_a_claim_held(analysis):
    markdown = render(analysis, [])
    rows = {
        line.split("|")[1].strip(): line
        for line in markdown.splitlines()
        if line.startswith("| ") and line.split("|")[1].strip() in {"0", "8", "16"}
    }
    ticks = {step: [cell.strip().endswith("✓") for cell in row.strip("|").split("|")[2:]] for step, row in rows.items()}
    # 说-山 (third) is ticked by its "no association" test: within chance and under both within pairs
    assert ticks == {"0": [False] * 4, "8": [True, True, True, False], "16": [True, False, True, False]}


def offset_values(name: str, zf: float, p: float, mrr_zf: float, gain_zf: float) -> dict[str, float]:
    """An offset set's keys at one snapshot (probes/arithmetic.py): the zf and p that judge, plausible rest."""
    offset = {"cos": 0.1, "null_mean": 0.0, "null_std": 0.02, "zf": zf, "p": p}
    analogy = {"mrr": 0.2, "null_mrr": 0.01, "null_std": 0.01, "zf": mrr_zf, "p": 0.5 if mrr_zf < 2 else 1 / 201}
    analogy |= {"median_rank": 20, "null_median_rank": 900, "c_only_mrr": 0.4, "gain_zf": gain_zf, "gain_p": 0.9}
    return {f"offset/{name}/{k}": v for k, v in offset.items()} | {f"analogy/{name}/{k}": v for k, v in analogy.items()}


def test_offset_claims_are_judged_like_the_pair_claims_and_shown_in_their_own_section():
    analysis = synthetic_analysis(
        {0: offset_values("case", 0.1, 0.5, 0.0, 0.0), 8: offset_values("case", 2.5, 0.01, 1.0, -4.0)}, []
    )
    analysis |= {"arithmetic": {"n_sets": 200, "seed": 0}}
    analysis["probes"]["offsets"] = {"case": [["a", "A"], ["e", "E"]]}
    found = {c["test"]: c for c in offset_claims(analysis)}
    assert {test: c["verdict"] for test, c in found.items()} == {
        PARALLEL_OFFSETS: HELD,
        ANALOGY: NOT_YET,
        ANALOGY_GAIN: DID_NOT,
    }
    assert found[PARALLEL_OFFSETS]["first_held"] == 8 and found[PARALLEL_OFFSETS]["p_floor"] == 1 / 201
    markdown = render({**analysis, "offset_claims": list(found.values())}, [])
    section = markdown[markdown.index("## Embedding arithmetic") :]
    assert "### case: a → A, e → E" in section
    assert "- parallel offsets: **held** at step 8: zf +2.50, p 0.010" in section
    assert "- analogy gain: **did not** hold at step 8" in section
    assert "| 8 | +0.100 | +0.000 ± 0.020 | +2.50 | 0.010 | 0.200 |" in section


def test_no_embeddings_suite_means_no_claims():
    analysis = synthetic_analysis({0: {}}, [])
    analysis["snapshots"] = [{"step": 0, "scalars": {}}]
    assert claims(analysis) == []
    assert "## Claims" not in render({**analysis, "claims": []}, [])


@pytest.mark.parametrize(
    "p, floor, shown",
    [
        (1 / 1001, 1 / 1001, "< 0.001"),  # 1,000 permutations: the smallest p there is, not "0.001" and not "0.000"
        (1 / 4001, 1 / 4001, "< 0.001"),  # a pair's 4,000 matched null pairs
        (1 / 201, 1 / 201, "< 0.005"),  # 200 permutations: the bound, rounded up
        (1 / 100, 1 / 100, "≤ 0.010"),  # a bound three decimals hold exactly
        (0.0003, 1 / 10001, "< 0.001"),  # above its floor, but below what three decimals show
        (0.042, 1 / 1001, "0.042"),
        (0.05, None, "0.050"),  # no floor known (an older analysis): three decimals
        (None, None, "—"),
    ],
)
def test_p_values_are_printed_at_their_resolution_never_as_zero(p, floor, shown):
    assert p_text(p, floor) == shown


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


def test_the_packaged_cjk_font_is_used_before_any_system_font():
    labels = CharLabels(["说", "道", "山", "a"])
    assert labels.family == packaged_cjk_font() == "Noto Sans CJK SC"  # from the mplfonts wheel
    assert labels.as_code_points == [] and labels("说道") == "说道"
    assert labels.families == ["DejaVu Sans", "Noto Sans CJK SC"]  # ASCII in DejaVu, CJK falls back


def drawn(text: str, families: list[str]) -> np.ndarray:
    """`text` as a plot label in these font families: a small grey image, 0 = ink, 255 = paper."""
    fig = Figure(figsize=(0.6, 0.6), dpi=50)
    FigureCanvasAgg(fig)
    with matplotlib.rc_context({"font.family": families}):  # as figures() draws every plot
        fig.text(0.5, 0.5, text, fontsize=24, ha="center", va="center")
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., 0]


@pytest.mark.filterwarnings("ignore:Glyph .* missing")
def test_cjk_labels_are_drawn_as_glyphs_not_as_the_missing_glyph_box():
    box = drawn("说", ["DejaVu Sans"])  # no CJK font: matplotlib's missing-glyph box
    assert (drawn("道", ["DejaVu Sans"]) == box).all()  # the same box for every CJK character
    families = CharLabels(["说", "道"]).families
    glyph = drawn("说", families)
    assert (glyph < 128).sum() > 20 and not (glyph == box).all()
    assert not (glyph == drawn("道", families)).all()  # and each character its own glyph


@pytest.mark.filterwarnings("error")  # e.g. matplotlib's "Glyph missing from font(s)"
def test_figures_are_png_images_for_the_suites_that_ran(analysis):
    analysis["losses"] = [{"step": 0, "loss/val": 4.0}, {"step": 16, "loss/val": 3.0, "loss/train": 3.1}]
    for snapshot in analysis["snapshots"]:
        snapshot["scalars"] |= {
            "emb/std": 0.02,
            "emb/min": -0.1,
            "emb/max": 0.1,
            "emb/l2_mean": 0.3,
            "resid_std/embed": 0.1,
        }
        snapshot["embeddings"] = {
            "neighbours": [],
            "pca": {
                "chars": ["说", "道"],
                "groups": ["say", "say"],
                "coords": [[0.0, 1.0], [1.0, 0.0]],
                "explained": [0.6, 0.4],
            },
        }
    pngs = figures(analysis, CharLabels(plotted_chars(analysis), font_names=()))
    assert sorted(pngs) == [
        "cosine.png",
        "embedding_scale.png",
        "loss.png",
        "pca.png",
        "residual_std.png",
        "z_scores.png",
    ]
    assert all(png.startswith(b"\x89PNG\r\n\x1a\n") for png in pngs.values())
    markdown = render(analysis, list(pngs))
    assert all(f"![{name}]({name})" in markdown for name in pngs)
