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
