"""The analysis suites on a tiny model with hand-checkable expectations, and `analyze` end to end:
prepare + train + analyze of the tiny experiment as a user runs them, read back from the report
folder, analysis.json and the offline W&B analysis run."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from glassbox import fileio
from glassbox import metric_keys as keys
from glassbox.analysis import suites
from glassbox.analysis.measurements import Measurements
from glassbox.analysis.suites import ContextProbe, LayerWindows, Prompt, Sampling, SuiteInputs
from glassbox.errors import GlassboxError
from glassbox.model import GPT, GPTConfig
from glassbox.probes.activations import capture_activations, residual_stats
from glassbox.probes.baselines import ChanceModel
from glassbox.probes.linear_probe import control_labels
from glassbox.probes.probe_set import ProbeSet
from glassbox.probes.text_property import UNDECIDED
from glassbox.report.figures import FIGURE_CAPTIONS
from glassbox.run.layout import list_snapshots
from glassbox.run.snapshots import Snapshot, check_vocab
from glassbox.run.tracking import STEP_KEY, JsonlFile
from glassbox.text.tokens import TokenData
from helpers import WANDB_KEY, copy_project, logged_keys, run_stage, run_stages, wandb_records

ITOS = list("abcdefghijklmnopqrstuvwxyz .,;!?ABCDEFGH")  # 40 characters, id = position
STOI = {c: i for i, c in enumerate(ITOS)}
N_LAYER, N_HEAD, N_EMBD = 2, 2, 16


@pytest.fixture
def model():
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=len(ITOS), block_size=16, n_layer=N_LAYER, n_head=N_HEAD, n_embd=N_EMBD)).eval()


@pytest.fixture
def inputs():
    counts = torch.arange(len(ITOS), 0, -1) * 10  # id 0 most frequent
    pairs = [{"id": "a_e", "a": "a", "b": "e"}, {"id": "a_comma", "a": "a", "b": ","}]
    probes = ProbeSet.build({"vowels": list("aeiou"), "punct": list(".,;")}, pairs, STOI)
    chance = ChanceModel.build(
        counts, probes, n_pairs=64, top_k_frequent=40, n_bands=2, min_count=1, n_permutations=32, seed=0
    )
    probe_batch = torch.randint(len(ITOS), (2, 12), generator=torch.Generator().manual_seed(1))
    measurements = Measurements(probes, chance, counts, probe_batch, n_frequent=5)

    def prompt(text):
        return Prompt(text, [STOI[c] for c in text])

    context = ContextProbe(
        "e",
        STOI["e"],
        [prompt("the"), prompt("she"), prompt("a e"), prompt("to e")],
        ["inside", "inside", "start", "start"],
    )
    probe_chars = list("aeiou.,;")
    return SuiteInputs(
        measurements=measurements,
        itos=ITOS,
        probe_chars=probe_chars,
        probe_groups=["vowels"] * 5 + ["punct"] * 3,
        probe_ids=torch.tensor([STOI[c] for c in probe_chars]),
        prompts=[prompt("hello"), prompt("to be")],
        context=context,
        sampling=Sampling(temperature=0.8, top_k=6, gen_tokens=7, seed=3),
        neighbours_k=4,
        lens_k=5,
        map_n_frequent=20,
    )


def ids(text: str) -> torch.Tensor:
    return torch.tensor([[STOI[c] for c in text]])


# --- the suites ------------------------------------------------------------------------------------


def test_attention_rows_sum_to_one_with_zeros_above_the_diagonal(model, inputs):
    result = suites.attention(model, inputs)
    assert [p["prompt"] for p in result["prompts"]] == ["hello", "to be"]
    for prompt in result["prompts"]:
        pattern = torch.tensor(prompt["pattern"])  # [layer, head, query, key]
        T = len(prompt["prompt"])
        assert pattern.shape == (N_LAYER, N_HEAD, T, T) and prompt["tokens"] == list(prompt["prompt"])
        assert torch.allclose(pattern.sum(-1), torch.ones(N_LAYER, N_HEAD, T))
        future = torch.ones(T, T, dtype=torch.bool).triu(1)
        assert torch.all(pattern[..., future] == 0)
        assert torch.all(pattern[..., ~future] > 0)  # the past and the present are never masked


def test_logit_lens_at_the_last_block_is_the_models_own_prediction(model, inputs):
    result = suites.logit_lens(model, inputs)
    for prompt in result["prompts"]:
        assert [layer["layer"] for layer in prompt["layers"]] == ["embed", "L0", "L1"]
        with torch.no_grad():
            logits, _ = model(ids(prompt["prompt"]))  # the fast path, not the cache
        probs = torch.softmax(logits[0, -1] / inputs.sampling.temperature, dim=-1)
        top = torch.topk(probs, inputs.lens_k)
        chars, lens_probs = zip(*prompt["layers"][-1]["top"])
        assert list(chars) == [ITOS[i] for i in top.indices]
        assert torch.allclose(torch.tensor(lens_probs), top.values, atol=1e-6)
        assert prompt["layers"][0]["top"] != prompt["layers"][-1]["top"]  # the earlier layers differ


def test_top_k_probabilities_equal_the_softmax_at_the_temperature(model, inputs):
    result = suites.predictions(model, inputs)
    for prompt in result["prompts"]:
        with torch.no_grad():
            logits, _ = model(ids(prompt["prompt"]))
        full = torch.softmax(logits[0, -1] / 0.8, dim=-1)
        chars, probs = zip(*prompt["next"])
        assert len(chars) == inputs.sampling.top_k
        assert torch.allclose(torch.tensor(probs), full[[STOI[c] for c in chars]], atol=1e-6)
        assert list(probs) == sorted(probs, reverse=True) and sum(probs) < 1  # not renormalised over the top k
        sample = prompt["sample"]
        assert sample.startswith(prompt["prompt"]) and len(sample) == len(prompt["prompt"]) + 7
    assert suites.predictions(model, inputs) == result  # the sample is seeded


def test_nearest_neighbour_is_never_the_character_itself(model, inputs):
    with torch.no_grad():
        model.wte.weight[STOI["H"]] = model.wte.weight[STOI["a"]]  # "H" is an exact copy of "a"
    result = suites.embeddings(model, inputs)
    by_char = {row["char"]: row["neighbours"] for row in result["neighbours"]}
    assert list(by_char) == inputs.probe_chars
    assert by_char["a"][0][0] == "H" and by_char["a"][0][1] == pytest.approx(1.0)
    for char, neighbours in by_char.items():
        assert len(neighbours) == inputs.neighbours_k and char not in [c for c, _ in neighbours]
        cosines = [cos for _, cos in neighbours]
        assert cosines == sorted(cosines, reverse=True)


def test_pca_of_a_rank_2_set_recovers_it(model, inputs):
    generator = torch.Generator().manual_seed(4)
    plane = torch.linalg.qr(torch.randn(N_EMBD, 2, generator=generator)).Q.T  # 2 orthonormal directions
    points = torch.randn(8, 2, generator=generator) * torch.tensor([3.0, 1.0])
    with torch.no_grad():
        model.wte.weight[inputs.probe_ids] = points @ plane + torch.randn(N_EMBD, generator=generator)
    pca = suites.embeddings(model, inputs)["pca"]
    coords = torch.tensor(pca["coords"])
    assert sum(pca["explained"]) == pytest.approx(1.0, abs=1e-5)  # two components explain everything
    assert torch.allclose(torch.cdist(coords, coords), torch.cdist(points, points), atol=1e-4)  # up to rotation
    assert pca["chars"] == inputs.probe_chars and pca["groups"][0] == "vowels"


def test_embedding_map_shows_the_probes_then_the_most_frequent_characters(model, inputs):
    with torch.no_grad():
        model.wte.weight[STOI["b"]] *= 3  # a longer row
    result = suites.embeddings(model, inputs)["map"]
    others = [c for c in ITOS if c not in inputs.probe_chars][:20]  # ITOS is in order of frequency
    assert result["chars"] == inputs.probe_chars + others
    assert result["counts"] == [(len(ITOS) - STOI[c]) * 10 for c in result["chars"]]
    assert result["groups"] == inputs.probe_groups + [None] * 20
    W = model.wte.weight.detach()
    norms = W[[STOI[c] for c in result["chars"]]].norm(dim=-1)
    assert torch.allclose(torch.tensor(result["norms"]), norms)
    coords = torch.tensor(result["coords"])
    assert coords.shape == (28, 2) and torch.allclose(coords.mean(0), torch.zeros(2), atol=1e-5)  # centred PCA


def test_matched_null_gives_the_mean_and_sd_behind_each_zf(model, inputs):
    result = suites.embeddings(model, inputs)
    assert [row["pair"] for row in result["matched_null"]] == ["a_e", "a_comma"]
    for row in result["matched_null"]:
        scalars = result["scalars"]
        zf = (scalars[f"cos/{row['pair']}"] - row["mean"]) / row["std"]
        assert zf == pytest.approx(scalars[f"zf/{row['pair']}"], rel=1e-4)


def test_embeddings_scalars_are_the_training_time_metrics(model, inputs):
    scalars = suites.embeddings(model, inputs)["scalars"]
    assert scalars == inputs.measurements.of(model)
    assert math.isfinite(scalars["zf/within_minus_cross"])  # the group claim's z is logged by training too
    assert not any(key.startswith("dcos/") for key in scalars)  # no step-0 embedding given: no change to measure


def test_with_the_step_0_embedding_the_suite_measures_each_pairs_change_since_then(model, inputs):
    initial = model.wte.weight.detach().clone()
    assert "dcos/a_e" not in suites.embeddings(model, replace(inputs, initial_embedding=initial))["scalars"]
    with torch.no_grad():  # a's row turned toward e's: a-e's cosine rises, a-,'s changes too
        model.wte.weight[STOI["a"]] += 2 * model.wte.weight[STOI["e"]]
    scalars = suites.embeddings(model, replace(inputs, initial_embedding=initial))["scalars"]
    W0 = initial[[STOI["a"], STOI["a"]]], initial[[STOI["e"], STOI[","]]]
    before = torch.nn.functional.cosine_similarity(*W0)
    assert scalars["dcos/a_e"] == pytest.approx(scalars["cos/a_e"] - before[0].item(), abs=1e-6)
    assert scalars["dcos/a_comma"] == pytest.approx(scalars["cos/a_comma"] - before[1].item(), abs=1e-6)
    assert scalars["dcos/a_e"] > 0.3 and scalars["zf_dcos/a_e"] > 2  # far beyond how its bands' pairs moved
    assert scalars == inputs.measurements.of(model, initial)


def test_activations_give_the_articles_per_layer_table_and_entropy_per_head(model, inputs):
    result = suites.activations(model, inputs)
    table = result["residual"][1]
    assert table["prompt"] == "to be"
    _, cache = capture_activations(model, ids("to be"))
    expected = residual_stats(cache, N_LAYER)
    assert [row["layer"] for row in table["layers"]] == list(expected) == ["embed", "L0", "L1", "final"]
    for row in table["layers"]:
        assert row["shape"] == [1, 5, N_EMBD]
        assert {k: row[k] for k in ("mean", "std", "max")} == expected[row["layer"]]
    heads = [f"attn_entropy/L{i}H{h}" for i in range(N_LAYER) for h in range(N_HEAD)]
    assert sorted(result["scalars"]) == heads
    uniform = sum(math.log(t + 1) for t in range(12)) / 12  # the most a causal head can spread over 12 positions
    assert all(0 <= value <= uniform + 1e-5 for value in result["scalars"].values())


def test_context_gap_is_within_minus_across_at_every_layer(model, inputs):
    result = suites.context(model, inputs)
    assert result["senses"] == {"inside": ["the", "she"], "start": ["a e", "to e"]}
    for row in result["layers"]:
        assert row["gap"] == pytest.approx(row["within"] - row["across"])
        assert result["scalars"][f"context_gap/{row['layer']}"] == row["gap"]
    assert len(result["layers"]) == N_LAYER + 2


def test_an_unknown_suite_is_a_clear_error_and_one_without_its_probes_is_skipped_saying_why(inputs, caplog):
    with pytest.raises(GlassboxError, match="unknown analysis suite.*'embedings'"):
        suites.select_suites(["embeddings", "embedings"], inputs)
    assert list(suites.select_suites(["logit_lens", "attention"], inputs)) == ["logit_lens", "attention"]
    bare = SuiteInputs(**{**inputs.__dict__, "context": None, "prompts": []})
    assert list(suites.select_suites(list(suites.SUITES), bare)) == ["embeddings", "activations"]
    skipped = [m for m in caplog.messages if m.startswith("skipping the ")]
    assert len(skipped) == 6 and "context suite: corpus.probes.context is not set" in skipped[3]
    assert "predictions suite: corpus.probes.prompts is empty" in skipped[1]


@pytest.fixture
def windows() -> LayerWindows:
    """12 windows of 16 characters; the property: the character is among the first 13 of ITOS."""
    ids = torch.randint(len(ITOS), (12, 16), generator=torch.Generator().manual_seed(5))
    labels = (ids < 13).long()
    labels[:, :2] = UNDECIDED
    control = torch.full_like(labels, UNDECIDED)
    control[labels != UNDECIDED] = control_labels(ids[labels != UNDECIDED], 1 / 3, torch.Generator().manual_seed(6))
    return LayerWindows(ids, "early letter", labels, control, torch.arange(12) % 2 == 0, l2=1e-2, max_iter=50)


def test_linear_probes_score_every_layer_against_the_baseline_and_the_control(model, inputs, windows):
    result = suites.linear_probes(model, replace(inputs, layer_windows=windows))
    layers = ["embed", "L0", "L1", "final"]
    assert [row["layer"] for row in result["layers"]] == layers
    assert result["positions"] == {
        "fit": 84,
        "scored": 84,
        "share": pytest.approx((windows.labels == 1).sum().item() / 168),
    }
    scored = windows.labels[1::2, 2:]
    baseline = max((scored == 1).double().mean().item(), (scored == 0).double().mean().item())
    assert result["scalars"][keys.PROBE_MAJORITY] == pytest.approx(baseline)  # the commoner class both sides
    for row in result["layers"]:
        assert result["scalars"][keys.probe_selectivity(row["layer"])] == row["accuracy"] - row["control"]
        assert 0 <= row["accuracy"] <= 1 and 0 <= row["control"] <= 1
    # the property is a function of the character, so the embedding reads it as well as it reads the control
    assert result["layers"][0]["accuracy"] > baseline


def test_layer_settling_compares_each_layer_with_the_last_snapshot(model, inputs, windows):
    settled = suites.with_final_snapshot(replace(inputs, layer_windows=windows), model, step=64)
    result = suites.layer_settling(model, settled)
    assert result["final_step"] == 64
    assert all(value == pytest.approx(1.0) for value in result["scalars"].values())
    assert list(result["scalars"]) == [keys.cka_to_final(layer) for layer in ("embed", "L0", "L1", "final")]
    torch.manual_seed(1)
    other = GPT(model.config).eval()
    assert all(value < 0.99 for value in suites.layer_settling(other, settled)["scalars"].values())


def test_linear_probes_are_skipped_when_a_class_is_too_rare(inputs, windows, caplog):
    rare = replace(windows, labels=torch.where(windows.labels == UNDECIDED, UNDECIDED, 0))
    assert list(suites.select_suites(["linear_probes"], replace(inputs, layer_windows=rare))) == []
    assert "the fit windows hold 0 positions with the property 'early letter'" in caplog.messages[-1]


# --- the tiny experiment end to end ----------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_project(tiny_project, tmp_path_factory) -> Path:
    """The session's trained tiny project (conftest.py), copied, then `make analyze EXPERIMENT=tiny`, W&B offline."""
    root = copy_project(tiny_project, tmp_path_factory.mktemp("tiny"))
    run_stages(root, ["analyze"], ["experiment=tiny"])
    return root


@pytest.fixture(scope="module")
def tiny_run(tiny_project) -> Path:
    return (tiny_project / "outputs" / "tiny" / "latest").resolve()


@pytest.fixture(scope="module")
def analysis(tiny_run) -> dict:
    return fileio.read_json(tiny_run / "report" / "analysis.json")


@pytest.mark.e2e
def test_the_report_folder_holds_every_plot_and_the_report(tiny_run):
    report = tiny_run / "report"
    (analysis_dir,) = (tiny_run / "analysis").iterdir()
    assert report.is_symlink() and report.resolve() == analysis_dir / "report"
    assert sorted(p.name for p in report.iterdir()) == sorted(
        [*FIGURE_CAPTIONS, "report.md", "analysis.json", "explorer.html"]
    )
    assert all((report / name).read_bytes().startswith(b"\x89PNG") for name in FIGURE_CAPTIONS)
    markdown = (report / "report.md").read_text(encoding="utf-8")
    assert all(f"![{name}]({name})" in markdown for name in FIGURE_CAPTIONS)
    assert "mlp=gelu; trained in float32 |" in markdown  # the tiny experiment's dtype, eager (not ", compiled")
    for section in (
        "## Claims at step 64",
        "## Cosine similarity",
        "## Mechanisms over training",
        "## Residual stream",
        "## Logit lens",
        "## Next character",
        "## The same character in different contexts",
        "## Nearest neighbours",
    ):
        assert section in markdown
    assert (analysis_dir / ".hydra" / "config.yaml").exists() and (analysis_dir / "wandb").is_dir()


@pytest.mark.e2e
def test_analysis_replays_every_snapshot_to_the_numbers_training_logged(tiny_run, analysis):
    steps = [step for step, _ in list_snapshots(tiny_run)]
    assert [s["step"] for s in analysis["snapshots"]] == steps
    every_suite = {"embeddings", "activations", "attention", "predictions", "logit_lens", "context"}
    every_suite |= {"linear_probes", "layer_settling"}
    assert every_suite <= analysis["snapshots"][0].keys()
    logged = {r["step"]: r for r in JsonlFile(tiny_run / "metrics.jsonl").read()}
    for snapshot in analysis["snapshots"]:
        shared = {k: v for k, v in logged[snapshot["step"]].items() if k in snapshot["scalars"]}
        assert len(shared) > 50  # every emergence metric, not a handful
        assert {k: snapshot["scalars"][k] for k in shared} == pytest.approx(shared, abs=1e-6)
    claims = [(c["claim"], c["label"]) for c in analysis["claims"]]
    assert claims[:3] == [("a_A", "a–A"), ("e_E", "e–E"), ("t_T", "t–T")]


@pytest.mark.slow
def test_the_analysis_probes_and_settles_every_layer_and_the_report_says_so(tiny_run, analysis):
    layers = ["embed", "L0", "L1", "final"]
    for snapshot in analysis["snapshots"]:
        scalars = snapshot["scalars"]
        assert 0.5 <= scalars[keys.PROBE_MAJORITY] < 1
        for layer in layers:
            assert {keys.probe_accuracy(layer), keys.probe_control(layer), keys.cka_to_final(layer)} <= scalars.keys()
            assert scalars[keys.probe_selectivity(layer)] == pytest.approx(
                scalars[keys.probe_accuracy(layer)] - scalars[keys.probe_control(layer)]
            )
    final = analysis["snapshots"][-1]
    assert final["linear_probes"]["property"] == "speaker's name line"
    assert final["layer_settling"]["final_step"] == 64
    assert all(final["scalars"][keys.cka_to_final(layer)] == pytest.approx(1.0) for layer in layers)
    markdown = (tiny_run / "report" / "report.md").read_text(encoding="utf-8")
    section = markdown.split("## Linear probes and layers settling")[1].split("\n## ")[0]
    assert "step 0 | step 8 | step 64" in section and section.count("| L1 |") == 2


@pytest.mark.e2e
def test_the_wandb_analysis_run_holds_the_tables_the_images_and_the_report(tiny_run, analysis):
    (analysis_dir,) = (tiny_run / "analysis").iterdir()
    records = wandb_records(analysis_dir)
    (run,) = [r["run"] for r in records if r["type"] == "run"]
    assert run["job_type"] == "analysis" and run["run_group"] == "tiny"
    history = [r["history"]["item"] for r in records if r["type"] == "history"]
    final = analysis["snapshots"][-1]["step"]
    tables = {k.split(".")[0]: item for item in history for k, v in item.items() if v == "table-file"}
    assert sorted(tables) == [
        "tables/claims",
        "tables/logit_lens",
        "tables/neighbours",
        "tables/predictions",
        "tables/samples",
    ]
    assert all(item[STEP_KEY] == final for item in tables.values())
    assert tables["tables/samples"]["tables/samples.nrows"] == len(analysis["snapshots"])
    assert tables["tables/claims"]["tables/claims.nrows"] == len(analysis["claims"])
    images = [item[STEP_KEY] for item in history if item.get("attention/patterns._type") == "image-file"]
    assert images == [s["step"] for s in analysis["snapshots"]]  # every analysed snapshot, not only first and last
    scalars = [item for item in history if "cos/a_e" in item]
    assert [item[STEP_KEY] for item in scalars] == [s["step"] for s in analysis["snapshots"]]
    summary = {k: v for r in records if r["type"] == "summary" for k, v in r["summary"]["update"].items()}
    for c in analysis["claims"]:  # each claim's verdict and zf in the run's summary
        claim = keys.claim_id(c["claim"], c["test"])
        assert (summary[f"verdict/{claim}"], summary[f"zf/{claim}"]) == (c["verdict"], pytest.approx(c["zf"]))
    assert run["display_name"] == fileio.read_json(tiny_run / "run.json")["wandb_run_name"] + "-analysis"
    (report,) = [r["artifact"] for r in records if r["type"] == "artifact" and r["artifact"]["type"] == "report"]
    assert {"report.md", "analysis.json", "cosine.png"} <= {f["path"] for f in report["manifest"]["contents"]}
    train_id = fileio.read_json(tiny_run / "run.json")["wandb_run_id"]
    inputs = [r["config"]["update"]["inputs"] for r in records if r["type"] == "config"]
    read = [f"model-{train_id}:step-{s['step']}" for s in analysis["snapshots"]]
    assert [record["artifact"] for i in inputs for record in i.values()] == read  # lineage: every snapshot it read


@pytest.mark.e2e
def test_every_key_logged_to_wandb_or_metrics_jsonl_follows_the_wandb_naming_rule(tiny_project, tiny_run):
    """Shakespeare's pairs are punctuation (,-; .-!): their keys go by the pairs' ids (the 西游记 half of
    this test is in test_wandb.py)."""
    records = wandb_records(tiny_project / "outputs")  # prepare, train and analysis runs
    assert {r["run"]["job_type"] for r in records if r["type"] == "run"} == {"prepare", "train", "analysis"}
    keys = logged_keys(records)
    assert {
        "cos/comma_semicolon",
        "zf/period_exclamation",
        "resid_std/L0",
        "attn_entropy/L1H1",
        "context_gap/final",
        "emb/row_norms",
        "emb/projector",
        "attention/patterns",
        "verdict/within_minus_cross",
    } <= keys
    assert sorted(key for key in keys if not WANDB_KEY.match(key)) == []
    local = {key for r in JsonlFile(tiny_run / "metrics.jsonl").read() for key in r}
    assert sorted(key for key in local if not WANDB_KEY.match(key)) == []


@pytest.mark.e2e
def test_the_case_offsets_are_measured_at_every_snapshot_and_judged_in_the_report_and_wandb(
    tiny_project, tiny_run, analysis
):
    offset_keys = [f"offset/case/{stat}" for stat in ("cos", "null_mean", "null_std", "zf", "p")]
    analogy_keys = [f"analogy/case/{stat}" for stat in ("mrr", "null_mrr", "zf", "p", "c_only_mrr", "gain_zf")]
    rows = JsonlFile(tiny_run / "metrics.jsonl").read()
    assert len(rows) == len(list_snapshots(tiny_run))
    assert all(set(offset_keys + analogy_keys) <= row.keys() for row in rows)
    assert [(c["claim"], c["test"]) for c in analysis["offset_claims"]] == [
        ("case", "parallel offsets"),
        ("case", "analogy"),
        ("case", "analogy gain"),
    ]
    markdown = (tiny_run / "report" / "report.md").read_text(encoding="utf-8")
    assert "### case: e → E, t → T, o → O" in markdown
    summary = logged_keys(wandb_records(tiny_project / "outputs"))
    assert {"verdict/case_parallel_offsets", "verdict/case_analogy_gain", offset_keys[3], analogy_keys[5]} <= summary


@pytest.mark.e2e
def test_a_snapshot_of_another_vocabulary_is_refused_naming_both(tiny_project, tiny_run):
    data = TokenData(tiny_project / "data" / "processed" / "shakespeare")
    snapshot = Snapshot(
        tiny_run / "checkpoints" / "step_0000000.pt",
        0,
        {},
        {},
        "f" * 64,
        {"name": "xiyouji", "corpus": {"name": "xiyouji"}},
        "",
        {},
    )
    with pytest.raises(GlassboxError) as error:
        check_vocab(snapshot, data.vocab.hash, data.dir)
    message = str(error.value)
    assert "ffffffffffff" in message and data.vocab.hash[:12] in message and "experiment=xiyouji" in message


@pytest.mark.slow
def test_analyzing_before_training_says_so_and_leaves_no_latest_directory(workdir):
    done = run_stage("analyze", ["experiment=tiny"], workdir)
    assert done.returncode == 2
    assert "no trained run of experiment 'tiny'" in done.stderr
    assert not (workdir / "outputs" / "tiny" / "latest").exists()
