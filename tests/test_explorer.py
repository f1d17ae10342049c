"""The explorer pages: the alignment of the embedding map; the page of a real tiny run on 西游记 (4 layers ×
4 heads, 17 snapshots: the default run's shape; the session's xiyouji_run) read as a file and in a real
headless Chromium, as a user opens it from disk; and the page of a hand-made sweep."""

from __future__ import annotations

import base64
import copy
import gzip
import io
import math
import re
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from glassbox import fileio
from glassbox.analysis.alignment import aligned_maps, procrustes
from glassbox.report.explorer import FILE_NAME, sweep_page_data
from glassbox.report.markdown import WHITESPACE
from glassbox.report.page_font import FAMILY, cjk_subset_woff2, font_face_css
from glassbox.run.tracking import JsonlFile
from glassbox.sweep import summarize_sweep
from helpers import XIYOUJI_RUN, XIYOUJI_SNAPSHOTS, copy_project, run_stage

SCREENSHOT_COPY = Path("/tmp/explorer-screenshot.png")
N_LAYER, N_HEAD = 4, 4  # XIYOUJI_RUN: the shared 西游记 run of conftest.py


# --- the alignment of the embedding map ------------------------------------------------------------


def rotation(angle: float) -> np.ndarray:
    return np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])


def test_procrustes_undoes_a_planted_rotation_and_reflection():
    rng = np.random.default_rng(0)
    target = rng.normal(size=(30, 2)) * [3.0, 1.0]
    target -= target.mean(axis=0)
    mirror = np.diag([1.0, -1.0])
    for planted in (rotation(2.0), rotation(-0.7) @ mirror, mirror):
        np.testing.assert_allclose(procrustes(target @ planted, target), target, atol=1e-9)
    # only the orientation changes: a smaller, noisy copy keeps its size and its distances
    noisy = 0.5 * target @ rotation(1.0) + rng.normal(scale=0.01, size=target.shape)
    aligned = procrustes(noisy, target)
    distances = np.linalg.norm(aligned[:, None] - aligned[None], axis=-1)
    np.testing.assert_allclose(distances, np.linalg.norm(noisy[:, None] - noisy[None], axis=-1), atol=1e-9)
    assert np.abs(aligned - 0.5 * target).max() < 0.05


def test_every_snapshot_is_turned_to_match_the_last():
    rng = np.random.default_rng(1)
    final = rng.normal(size=(12, 2))
    final -= final.mean(axis=0)
    snapshots = [(final @ rotation(angle)).tolist() for angle in (0.3, 2.5, -1.2)] + [final.tolist()]
    for aligned in aligned_maps(snapshots):
        np.testing.assert_allclose(aligned, final, atol=1e-9)


# --- the page's own font ---------------------------------------------------------------------------


def test_the_page_font_holds_the_cjk_characters_it_is_given_and_nothing_else():
    from fontTools.ttLib import TTFont

    woff2 = cjk_subset_woff2("说道 ROMEO: 山水说")
    assert woff2[:4] == b"wOF2"  # WOFF2, brotli-packed
    assert {chr(code) for code in TTFont(io.BytesIO(woff2)).getBestCmap()} == set("说道山水")
    assert font_face_css("ROMEO: to be") == ""  # nothing to carry: Latin text is the browser's own fonts' job


# --- the page of a real run -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_dir(xiyouji_run) -> Path:
    """The session's tiny 西游记 run shaped like the default one, analysed (analyze writes the page)."""
    _, run = xiyouji_run
    return run


@pytest.fixture(scope="module")
def page(run_dir) -> Path:
    return run_dir / "report" / FILE_NAME


@pytest.fixture(scope="module")
def analysis(run_dir) -> dict:
    return fileio.read_json(run_dir / "report" / "analysis.json")


@pytest.mark.e2e
def test_the_page_is_one_self_contained_file_within_the_size_budget(page, analysis):
    html = page.read_text(encoding="utf-8")
    assert [s["step"] for s in analysis["snapshots"]] == XIYOUJI_SNAPSHOTS and analysis["vocab_size"] > 4000
    assert len(XIYOUJI_SNAPSHOTS) == 17
    assert not re.search(r"<script[^>]*\ssrc\s*=", html, re.IGNORECASE)  # every script inline
    assert re.findall(r"<link[^>]*\shref\s*=\s*\"([^\"]*)\"", html, re.IGNORECASE) == ["data:,"]
    assert not re.search(r"url\(\s*['\"]?https?:|@import", html, re.IGNORECASE)
    packed = re.search(r'<script type="application/gzip;base64" id="plotly-js">(.*?)</script>', html).group(1)
    assert b"plotly.js v" in gzip.decompress(base64.b64decode(packed))[:1000]  # the library itself, not a link
    blob = re.search(r'<script type="application/json" id="glassbox-data">(.*?)</script>', html, re.DOTALL).group(1)
    # compact: no vocabulary per step, 4 significant digits (the head-role heatmaps, 4 roles × 16 heads × 17 steps,
    # take about 10 kB of it)
    assert len(blob.encode()) < 175_000
    assert len(html.encode()) <= 2_500_000  # the default run's shape (budget 5 MB): 4 layers × 4 heads, 17 snapshots


@pytest.mark.e2e
def test_make_explore_redraws_the_page_analyze_wrote(xiyouji_run, page, tmp_path):
    root, _ = xiyouji_run
    copy = copy_project(root, tmp_path / "project")
    redrawn = (copy / "outputs" / "tiny" / "latest").resolve() / "report" / FILE_NAME
    redrawn.unlink()
    done = run_stage("explore", XIYOUJI_RUN, copy)
    assert done.returncode == 0, done.stderr[-3000:]
    assert redrawn.read_bytes() == page.read_bytes()
    assert f"explorer: {redrawn}" in done.stdout


# --- the page in a real browser ---------------------------------------------------------------------


def browser_or_skip():
    """Chromium and its driver on PATH and selenium installed, or a skip that says which is missing."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[dev]')")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip("no chromium or chromedriver on PATH: apt-get install chromium chromium-driver")
    return browser, driver


@pytest.fixture(scope="module")
def browser():
    binary, driver_path = browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    profile = tempfile.mkdtemp(prefix="explorer-chromium-")
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1366,768",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def opened(browser, page, tmp_path_factory):
    """The page loaded from disk and drawn, with the browser's log and a screenshot of the first view."""
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(page.as_uri())
    WebDriverWait(browser, 60).until(
        lambda d: d.execute_script("return document.querySelectorAll('#attention g.hm').length > 0")
    )
    log = browser.get_log("browser")
    screenshot = tmp_path_factory.mktemp("screenshot") / "explorer.png"
    browser.save_screenshot(str(screenshot))
    shutil.copyfile(screenshot, SCREENSHOT_COPY)
    return browser, log


def metrics_at(run_dir: Path, step: int) -> dict:
    return next(r for r in JsonlFile(run_dir / "metrics.jsonl").read() if r["step"] == step)


def shown_pair_values(driver) -> dict[tuple[str, str], float]:
    """{(pair id, cos | z | zf | p): value} as the pair table holds them now."""
    cells = driver.execute_script(
        "return [...document.querySelectorAll('#pairs-table tr[data-pair] td[data-key]')]"
        ".map(td => [td.parentElement.dataset.pair, td.dataset.key, td.dataset.value])"
    )
    return {(pair, key): float(value) for pair, key, value in cells}


def shown_step(driver) -> int:
    """Read in one script: the page draws a new step-value element at every step, so an element found
    first and read after may be gone while play runs (a stale element reference)."""
    return int(driver.execute_script("return document.getElementById('step-value').textContent"))


@pytest.mark.e2e
def test_the_page_opens_from_disk_without_errors_or_network(opened, page):
    driver, log = opened
    assert driver.current_url.startswith("file://")
    assert [entry for entry in log if entry["level"] == "SEVERE"] == []
    # nothing was fetched: no script, style, font or image came from anywhere but the file itself
    assert driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)") == []
    assert SCREENSHOT_COPY.stat().st_size > 10_000


@pytest.mark.e2e
def test_the_slider_moves_every_panel_to_the_chosen_step(opened, run_dir, analysis):
    from selenium.webdriver.common.keys import Keys

    driver, _ = opened
    steps = [s["step"] for s in analysis["snapshots"]]
    slider = driver.find_element("id", "step")
    assert shown_step(driver) == steps[-1]  # the page opens on the trained model
    pairs = [p["name"] for p in analysis["probes"]["pairs"]]
    for keys, index in ((Keys.HOME, 0), (Keys.ARROW_RIGHT * 5, 5), (Keys.END, len(steps) - 1)):
        slider.send_keys(keys)
        step = steps[index]
        assert shown_step(driver) == step
        logged = metrics_at(run_dir, step)
        shown = shown_pair_values(driver)
        assert sorted({pair for pair, _ in shown}) == sorted(pairs)
        for (pair, key), value in shown.items():  # 4 significant digits of what training logged
            assert value == pytest.approx(logged[f"{key}/{pair}"], rel=1e-3, abs=1e-6), (step, pair, key)
        snapshot = analysis["snapshots"][index]
        pattern = driver.execute_script("return document.getElementById('attention-plot-0').data[5].z")
        expected = snapshot["attention"]["prompts"][0]["pattern"][1][1]  # trace 5 = layer 1, head 1
        assert [[w for w in row if w is not None] for row in pattern] == [
            pytest.approx(row[: q + 1], abs=1e-4) for q, row in enumerate(expected)
        ]
        std = driver.execute_script(  # column 3 of the row of the last layer
            "return document.querySelector('#residual-table-0 tr[data-layer=final] td:nth-child(3)').textContent"
        )
        assert float(std) == pytest.approx(snapshot["activations"]["residual"][0]["layers"][-1]["std"], rel=1e-3)
        top = driver.execute_script("return document.getElementById('next-plot-0').data[0].y[0]")
        char = snapshot["predictions"]["prompts"][0]["next"][0][0]
        assert top == WHITESPACE.get(char, char)


def shown_mechanisms(driver) -> dict:
    """What the mechanism panels draw now: per head role its heatmap's z [layer][head] and title, the ICL
    curves' traces, and the layer probe's and the CKA's bars."""
    return driver.execute_script(
        """const data = (id) => document.getElementById(id).data;
           return {heads: data("heads-plot").map(t => t.z),
                   titles: [...document.querySelectorAll("#heads-plot .annotation-text")].map(a => a.textContent),
                   icl: data("icl-plot").map(t => t.y),
                   probe: data("layer-probe-plot").map(t => [t.x, t.y]),
                   cka: data("settling-plot").map(t => [t.x, t.y])};"""
    )


@pytest.mark.e2e
def test_the_mechanism_panels_show_the_analysed_numbers_of_the_chosen_step(opened, analysis):
    from selenium.webdriver.common.keys import Keys

    driver, _ = opened
    snapshots = analysis["snapshots"]
    slider = driver.find_element("id", "step")
    layers = ["embed", *(f"L{layer}" for layer in range(N_LAYER)), "final"]
    drawn = []
    for keys, index in ((Keys.HOME, 0), (Keys.END, len(snapshots) - 1)):
        slider.send_keys(keys)
        assert shown_step(driver) == snapshots[index]["step"]
        scalars, shown = snapshots[index]["scalars"], shown_mechanisms(driver)
        drawn.append(shown)
        assert len(shown["heads"]) == 4  # prev, dup, induction, sink: a layers × heads heatmap each
        for role, z, title in zip(("prev", "dup", "induction", "sink"), shown["heads"], shown["titles"]):
            expected = [[scalars[f"head_{role}/L{layer}H{head}"] for head in range(N_HEAD)] for layer in range(N_LAYER)]
            assert z == [pytest.approx(row, rel=1e-3, abs=1e-7) for row in expected], (role, index)
            assert f"chance {scalars[f'head_{role}/chance']:.3f}" in title
        # the two ICL curves over every step, each followed by its dot at the slider's step
        score, score_dot, repeat, repeat_dot = shown["icl"]
        assert score == pytest.approx([s["scalars"]["icl/score"] for s in snapshots], rel=1e-3, abs=1e-7)
        assert repeat == pytest.approx([s["scalars"]["icl/repeat_score"] for s in snapshots], rel=1e-3, abs=1e-7)
        assert score_dot == pytest.approx([scalars["icl/score"]], rel=1e-3)
        assert repeat_dot == pytest.approx([scalars["icl/repeat_score"]], rel=1e-3)
        (x, accuracy), (_, control), (_, majority) = shown["probe"]
        assert x == layers
        assert accuracy == pytest.approx([scalars[f"probe_acc/{layer}"] for layer in layers], rel=1e-3)
        assert control == pytest.approx([scalars[f"probe_control/{layer}"] for layer in layers], rel=1e-3)
        assert majority == pytest.approx([scalars["probe_acc/majority"]] * len(layers), rel=1e-3)
        [(x, cka)] = shown["cka"]
        assert x == layers and cka == pytest.approx([scalars[f"cka_to_final/{layer}"] for layer in layers], rel=1e-3)
    first, last = drawn
    assert first["heads"] != last["heads"] and first["probe"] != last["probe"] and first["cka"] != last["cka"]
    assert last["cka"][0][1] == pytest.approx([1.0] * len(layers), abs=1e-3)  # the last snapshot against itself


@pytest.mark.e2e
def test_attention_has_a_heatmap_per_layer_and_head_with_the_future_masked(opened, analysis):
    driver, _ = opened
    heatmaps = driver.execute_script(
        "return document.getElementById('attention-plot-0').data.filter(t => t.type === 'heatmap').map(t => t.z)"
    )
    assert len(heatmaps) == N_LAYER * N_HEAD
    drawn = driver.execute_script("return document.querySelectorAll('#attention-plot-0 g.hm').length")
    assert drawn == N_LAYER * N_HEAD
    T = len(analysis["probes"]["prompts"][0])
    for z in heatmaps:
        assert [[w is None for w in row] for row in z] == [[k > q for k in range(T)] for q in range(T)]


@pytest.mark.e2e
def test_characters_are_shown_as_characters(opened, analysis):
    driver, _ = opened
    prompt = analysis["probes"]["prompts"][0]  # 悟空道
    ticks = driver.execute_script(
        "return [...document.querySelectorAll('#attention-plot-0 .xtick text')].map(t => t.textContent)"
    )
    assert ticks[: len(prompt)] == list(prompt)
    labels = driver.execute_script(
        "return [...document.querySelectorAll('#pairs-table td.pair')].map(td => td.textContent)"
    )
    assert labels[0] == "说 – 道"
    map_text = driver.execute_script("return [...document.querySelectorAll('#map-plot text')].map(t => t.textContent)")
    assert {"说", "道", "山", "水"} <= set(map_text)
    assert "U+" not in driver.find_element("tag name", "body").text


@pytest.mark.e2e
def test_cjk_characters_are_drawn_by_the_font_the_page_carries(opened):
    """Where no system font has CJK glyphs (CI's headless Chromium: `fc-list :lang=zh` prints nothing), every
    character would be the same empty box. The page's own face must be loaded, because the page used it, and
    draw two characters as two different glyphs."""
    driver, _ = opened
    faces = driver.execute_script("return [...document.fonts].map(f => [f.family.replaceAll('\"', ''), f.status])")
    assert [FAMILY, "loaded"] in faces  # a face is loaded only when text on the page asks for it
    drawn = driver.execute_script(
        """const draw = (ch) => {
             const canvas = document.createElement("canvas");
             canvas.width = canvas.height = 48;
             const pen = canvas.getContext("2d");
             pen.font = `40px "${arguments[0]}"`;
             pen.fillText(ch, 4, 40);
             return canvas.toDataURL();
           };
           return [draw("说"), draw("道"), draw("说"), document.fonts.check(`40px "${arguments[0]}"`, "说道")];""",
        FAMILY,
    )
    assert drawn[0] != drawn[1] and drawn[0] == drawn[2] and drawn[3]


@pytest.mark.e2e
def test_p_values_are_shown_at_their_resolution_as_the_report_prints_them(opened, analysis):
    from glassbox.report.markdown import p_text

    driver, _ = opened
    cases = [
        [1 / 4001, 1 / 4001],
        [1 / 1001, 1 / 1001],
        [1 / 201, 1 / 201],
        [0.01, 0.01],
        [0.042, 1 / 1001],
        [0.05, None],
    ]
    shown = driver.execute_script("return arguments[0].map(([p, floor]) => fmtP(p, floor))", cases)
    assert (
        shown
        == [p_text(p, floor) for p, floor in cases]
        == ["< 0.001", "< 0.001", "< 0.005", "≤ 0.010", "0.042", "0.050"]
    )
    cells = driver.execute_script("return [...document.querySelectorAll('#claims-table td')].map(td => td.textContent)")
    assert "0.000" not in cells


@pytest.mark.e2e
def test_play_runs_through_the_snapshots_from_the_first(opened, analysis):
    from selenium.webdriver.support.ui import WebDriverWait

    driver, _ = opened
    steps = [s["step"] for s in analysis["snapshots"]]
    play = driver.find_element("id", "play")
    assert shown_step(driver) == steps[-1]
    # Every step the label shows, recorded by the page itself: polling from here can miss one on a loaded
    # machine, where a round trip to the browser takes longer than a frame of the play loop (900 ms).
    driver.execute_script(
        """window.shownSteps = [];
           new MutationObserver(() => window.shownSteps.push(Number(document.getElementById("step-value").textContent)))
             .observe(document.getElementById("step-label"), {childList: true});"""
    )
    play.click()  # at the last step, play starts again from the first
    WebDriverWait(driver, 60).until(lambda d: len(d.execute_script("return window.shownSteps")) >= 3)
    assert driver.execute_script("return window.shownSteps")[:3] == steps[:3]
    play.click()  # pause: the page takes the click once it has drawn the step it is on
    WebDriverWait(driver, 60).until(
        lambda d: d.execute_script("return document.getElementById('play').textContent") == "▶ play"
    )
    stopped_at = shown_step(driver)
    time.sleep(1.5)  # longer than a frame of the play loop
    assert shown_step(driver) == stopped_at


@pytest.mark.e2e
def test_an_analysis_without_some_suites_still_opens_and_says_what_is_missing(browser, analysis, tmp_path):
    """An older analysis (no embedding map, no head scores or ICL, no linear_probes or layer_settling) of a run
    analysed without attention and logit_lens."""
    from selenium.webdriver.support.ui import WebDriverWait

    from glassbox.report.explorer import explorer_html

    analysis = copy.deepcopy(analysis)
    del analysis["mechanisms"]
    mechanism_keys = re.compile(r"head_|icl/|probe_|cka_to_final/")
    for snapshot in analysis["snapshots"]:
        del snapshot["attention"], snapshot["logit_lens"], snapshot["embeddings"]["map"]
        del snapshot["linear_probes"], snapshot["layer_settling"]
        snapshot["scalars"] = {k: v for k, v in snapshot["scalars"].items() if not mechanism_keys.match(k)}
    page = tmp_path / FILE_NAME
    page.write_text(explorer_html(analysis), encoding="utf-8")
    browser.get(page.as_uri())
    WebDriverWait(browser, 60).until(
        lambda d: d.execute_script("return document.querySelectorAll('#pairs-plot .scatterlayer').length > 0")
    )
    assert [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"] == []
    notes = [p.text for p in browser.find_elements("css selector", "p.missing")]
    assert notes == [
        "No embedding map in this analysis: analyse the run again (make analyze) to add one.",
        "The attention suite did not run.",
        "No head scores in this analysis: the embeddings suite did not run, or the run was analysed before glassbox "
        "measured head roles (make analyze adds them).",
        "No in-context-learning scores in this analysis: the embeddings suite did not run, or the run was analysed "
        "before glassbox measured them (make analyze adds them).",
        "The linear_probes suite did not run.",
        "The layer_settling suite did not run.",
    ]
    assert browser.find_elements("css selector", "#next-plot-0 .barlayer")  # predictions ran: its bars are there


# --- the sweep page -------------------------------------------------------------------------------


@pytest.fixture
def toy_sweep_page(toy_sweep) -> tuple[Path, dict]:
    """The hand-made sweep of test_sweep (model=tiny,small × seed=1,2, job 3 failed), summarized: the
    summary writes the page."""
    summary = summarize_sweep(toy_sweep, to_wandb=False)
    return toy_sweep / FILE_NAME, summary


def test_the_sweep_page_data_holds_every_run_and_the_mean_over_seeds(toy_sweep):
    summary = summarize_sweep(toy_sweep, to_wandb=False)
    records = {n: JsonlFile(toy_sweep / str(n) / "metrics.jsonl").read() for n in range(4)}
    data = sweep_page_data(summary, records, ["model"], {"z_min": 2.0})
    assert [job["values"] for job in data["jobs"]] == [{"model": "tiny"}] * 2 + [{"model": "small"}] * 2
    assert [job["zf"]["a_e"] for job in data["jobs"]] == [[0.0, 1.5], [0.0, -0.5], [0.0, 2.0], [0.0, 9.0]]
    tiny, small = data["configurations"]
    assert tiny["curve"]["steps"] == [0, 16]
    assert tiny["curve"]["mean"]["a_e"] == [0.0, 0.5]
    assert tiny["curve"]["sd"]["a_e"] == [0.0, pytest.approx(math.sqrt(2), rel=1e-3)]
    assert small["curve"]["mean"]["a_e"] == [0.0, 2.0] and small["curve"]["sd"]["a_e"] == [None, None]  # job 3 failed
    assert small["zf"]["a_e"] == {"mean": 2.0, "sd": None}


@pytest.mark.e2e
def test_the_sweep_page_puts_the_runs_side_by_side(toy_sweep_page, browser):
    from selenium.webdriver.support.ui import Select, WebDriverWait

    page, summary = toy_sweep_page
    browser.get(page.as_uri())
    WebDriverWait(browser, 60).until(
        lambda d: d.execute_script("return document.querySelectorAll('#curves-plot .scatterlayer').length > 0")
    )
    assert [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"] == []
    assert browser.execute_script("return [...document.querySelectorAll('#jobs-table tr[data-job]')].length") == 4

    def chosen_column():
        return browser.execute_script(
            "return [...document.querySelectorAll('#jobs-table td.chosen')].map(td => td.dataset.pair)"
        )

    def final_means():  # the line through the configurations' means, in order of x (small before tiny)
        return browser.execute_script("return document.getElementById('final-plot').data[0].y")

    tiny, small = summary["configurations"]
    assert chosen_column() == ["a_e"] * 4
    pair = Select(browser.find_element("id", "pair"))
    assert [option.text for option in pair.options] == ["a–e", ".–!", "a–.", "a–A"]  # by label, chosen by id
    pair.select_by_value("period_exclamation")
    assert chosen_column() == ["period_exclamation"] * 4
    assert final_means() == [
        small["pairs"]["period_exclamation"]["zf"]["mean"],
        tiny["pairs"]["period_exclamation"]["zf"]["mean"],
    ]
    Select(browser.find_element("id", "x-key")).select_by_value("parameters")
    assert browser.execute_script("return document.getElementById('final-plot').layout.xaxis.type") == "log"
