"""The whole funnel on the bundled samples: counts add up, nothing vanishes, output fits the 02 contract."""
from __future__ import annotations

import json

import pytest

from med42_utils.data import curate as C
from med42_utils.data.loading import SAMPLES_DIR
from med42_utils.data.registry import REGISTRY
from med42_utils.data.stage import run_curation
from med42_utils.manifest import read_manifest

# Our own benchmark fixture: a copy of a bundled MedQA training row (a planted leak) and a question that
# shares only a phrase with a bundled row (a near-miss).
MEDQA_ROW = json.loads((SAMPLES_DIR / "medqa.jsonl").read_text().splitlines()[2])
PLANTED = MEDQA_ROW["question"] + "\nOptions:\n" + "\n".join(f"{k}. {v}" for k, v in MEDQA_ROW["options"].items())
NEAR_MISS = "Does early mobilisation after hip fracture surgery reduce length of stay?"
BENCH = {"medqa": [PLANTED], "pubmedqa": [NEAR_MISS], "toxigen": ["a statement about a group of people"]}


@pytest.fixture(scope="module")
def result(tiny_params):
    return C.curate(tiny_params.data, BENCH)


def test_funnel_is_monotone_and_drops_account_for_every_row(result):
    drops = result.drops_frame()
    for key, f in result.funnel.items():
        steps = [f[s] for s in C.FUNNEL_STEPS]
        assert steps == sorted(steps, reverse=True), key
        removed = drops.loc[drops.source == key, "count"].sum()
        assert f["raw"] - removed == f["decontaminated"], key
        assert f["sampled"] == min(result.targets[key], f["decontaminated"]), key


def test_planted_cases_are_removed(result):
    drops = result.drops_frame().set_index(["source", "step"])["count"]
    assert drops[("medqa", "decontaminated")] == 1
    assert result.decontam["medqa"]["medqa"] == 1
    assert sum(v["pubmedqa"] for v in result.decontam.values()) == 0  # near-miss kept
    assert drops[("medical_flashcards", "exact_dedup")] == 1 and drops[("mediqa", "exact_dedup")] == 1
    assert drops[("ultrachat", "near_dedup")] == 1
    assert ("headqa", "filtered") in drops and ("pubhealth", "bad_input") in drops
    ids = set(result.dataset["id"])
    assert "medqa-0000002" not in ids


def test_output_contract(result):
    ds = result.dataset
    assert ds.column_names == ["id", "source", "messages"]
    assert len(set(ds["id"])) == len(ds)
    assert set(ds["source"]) <= set(REGISTRY)
    for msgs in ds["messages"]:
        roles = [m["role"] for m in msgs if m["role"] != "system"]
        assert roles[0] == "user" and roles[-1] == "assistant"
    assert result.achieved == {k: result.funnel[k]["sampled"] for k in result.targets}


def test_seeded_and_parallel_runs_agree(tiny_params, monkeypatch):
    keys = ["medmcqa", "medqa", "ultrachat", "opengpt"]
    a = C.curate(tiny_params.data, BENCH, sources=keys)
    b = C.curate(tiny_params.data, BENCH, sources=keys)
    assert a.dataset["id"] == b.dataset["id"]
    monkeypatch.setattr(C, "MIN_ROWS_PER_PROC", 1)  # force Dataset.map(num_proc=2)
    assert C.procs(10, tiny_params.data.num_proc) == 2
    c = C.curate(tiny_params.data, BENCH, sources=keys)
    assert c.dataset["id"] == a.dataset["id"] and c.funnel == a.funnel


def test_local_folder_in_hub_schema(tiny_params, tmp_path):
    from datasets import load_dataset

    for key in ("medmcqa", "sciq"):
        load_dataset("json", data_files=str(SAMPLES_DIR / f"{key}.jsonl"), split="train").to_parquet(str(tmp_path / f"{key}.parquet"))
    d = tiny_params.data.model_copy(update={"source": "local", "local_dir": str(tmp_path)})
    r = C.curate(d, BENCH, sources=["medmcqa", "sciq"])
    assert set(r.funnel) == {"medmcqa", "sciq"} and r.funnel["sciq"]["raw"] == 10


def test_stage_writes_manifest_and_skips_when_done(tiny_params, tmp_path, capsys):
    m = run_curation(tiny_params, tmp_path, benchmarks=BENCH)
    assert (tmp_path / "curated" / "dataset_info.json").is_file()
    assert m["rows"] == sum(m["achieved"].values()) and m["funnel"]["medqa"]["raw"] == 11
    assert m["table5"]["medical_gap"] == 405_400
    assert m["fingerprints"]["curated"] and m["params_hash"]
    run_curation(tiny_params, tmp_path, benchmarks=BENCH)
    assert "skipping" in capsys.readouterr().out
    assert read_manifest(tmp_path)["created"] == m["created"]


def test_report_tables_and_plots(result):
    import matplotlib

    matplotlib.use("Agg")
    from med42_utils.data.mixture import domain_shares
    from med42_utils.data.report import length_frame, plot_lengths, plot_mixture

    mix = result.mixture_frame()
    assert list(mix.index) == list(REGISTRY) and mix["achieved"].sum() == len(result.dataset)
    shares = domain_shares(mix)
    assert abs(shares["medical"] + shares["general"] - 100) < 0.02 and shares["medical"] > shares["general"]
    ax = plot_mixture(mix)
    assert len(ax.patches) == 2 * len(REGISTRY)
    lengths = length_frame(result.dataset)
    assert len(lengths) == len(result.dataset) and (lengths["words"] > 0).all() and (lengths["turns"] >= 2).all()
    assert len(plot_lengths(lengths).get_yticklabels()) == lengths["source"].nunique()


def test_sample_indices_takes_a_short_or_exact_source_whole_and_a_larger_one_without_repeats():
    """Each source gives min(target, available) rows: all of them, in order, when it has no more than its target;
    otherwise `target` distinct rows of its own, sorted. Sources come in the targets' order."""
    import numpy as np

    from med42_utils.data.mixture import sample_indices

    sources = np.array(["medqa", "sciq", "medqa"] + ["sciq"] * 9 + ["ultrachat"])
    sciq_rows = set(np.flatnonzero(sources == "sciq"))  # 10 rows: 1, 3..11
    targets = {"medqa": 2, "sciq": 9, "ultrachat": 5, "mmlu": 4}
    for seed in range(10):
        idx, achieved = sample_indices(sources, targets, seed)
        assert achieved == {"medqa": 2, "sciq": 9, "ultrachat": 1, "mmlu": 0}
        assert idx.dtype == np.int64 and len(idx) == 12
        assert idx[:2].tolist() == [0, 2] and idx[-1] == 12          # medqa (exactly 2) and ultrachat (1 of 5) whole
        sciq = idx[2:11].tolist()
        assert sciq == sorted(set(sciq)) and set(sciq) < sciq_rows    # 9 distinct sciq rows, sorted
    runs = [sample_indices(sources, targets, seed)[0].tolist() for seed in range(10)]
    assert runs[3] == sample_indices(sources, targets, 3)[0].tolist() and len({tuple(r) for r in runs}) > 1


def test_a_source_with_exactly_its_target_draws_nothing_so_the_other_samples_stay_put():
    """Only a source with more rows than its target uses the seeded generator: a source that gains rows up to
    its target (say one more bundled sample) does not change which rows of the next source are drawn."""
    import numpy as np

    from med42_utils.data.mixture import sample_indices

    targets = {"medqa": 2, "sciq": 4}
    picks = []
    for n_medqa in (0, 1, 2):
        sources = np.array(["sciq"] * 10 + ["medqa"] * n_medqa)
        idx, achieved = sample_indices(sources, targets, seed=7)
        assert achieved == {"medqa": n_medqa, "sciq": 4}
        assert idx[:n_medqa].tolist() == list(range(10, 10 + n_medqa))
        picks.append(idx[n_medqa:].tolist())
    assert picks[0] == picks[1] == picks[2]


def test_sample_indices_of_no_sources_is_an_empty_int64_index():
    import numpy as np

    from med42_utils.data.mixture import sample_indices

    idx, achieved = sample_indices(np.array(["medqa", "sciq"]), {}, seed=0)
    assert achieved == {} and idx.dtype == np.int64 and idx.shape == (0,)


def test_mixture_frame_by_hand_with_the_sources_left_out_at_zero():
    """Shares are % of the target / achieved totals, to 2 decimals; shortfall is target - achieved; a source
    not in the targets (curate passes only targets > 0) is a row of zeros; Table 5's columns come from the registry."""
    from med42_utils.data.mixture import domain_shares, mixture_frame

    mix = mixture_frame({"medmcqa": 2, "medqa": 3, "ultrachat": 1}, {"medmcqa": 2, "medqa": 0, "ultrachat": 1})
    assert mix.index.name == "key" and list(mix.index) == list(REGISTRY)
    assert list(mix.columns) == ["domain", "paper_count", "paper_ratio", "target", "achieved", "shortfall",
                                 "target_ratio", "achieved_ratio"]
    assert mix.loc["medmcqa"].to_dict() == {
        "domain": "medical", "paper_count": 180_462, "paper_ratio": 13.92, "target": 2, "achieved": 2,
        "shortfall": 0, "target_ratio": 33.33, "achieved_ratio": 66.67}
    assert mix.loc["medqa", ["target", "achieved", "shortfall", "target_ratio", "achieved_ratio"]].tolist() == [3, 0, 3, 50.0, 0.0]
    assert mix.loc["ultrachat", ["domain", "target", "achieved", "shortfall", "target_ratio", "achieved_ratio"]].tolist() == [
        "general", 1, 1, 0, 16.67, 33.33]
    rest = mix.drop(index=["medmcqa", "medqa", "ultrachat"])
    assert (rest[["target", "achieved", "shortfall", "target_ratio", "achieved_ratio"]] == 0).all().all()
    assert domain_shares(mix) == {"medical": 66.67, "general": 33.33}


def test_mixture_frame_and_domain_shares_with_nothing_achieved_or_nothing_targeted():
    """Every source failed: the targets' shares stand and the achieved ones are 0, not a division error."""
    from med42_utils.data.mixture import domain_shares, mixture_frame

    mix = mixture_frame({"medmcqa": 4}, {"medmcqa": 0})
    assert mix.loc["medmcqa", ["target", "achieved", "shortfall", "target_ratio", "achieved_ratio"]].tolist() == [4, 0, 4, 100.0, 0.0]
    assert domain_shares(mix) == {"medical": 0.0, "general": 0.0}
    empty = mixture_frame({}, {})
    assert (empty[["target", "achieved", "shortfall", "target_ratio", "achieved_ratio"]] == 0).all().all()
