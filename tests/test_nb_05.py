"""05_benchmarks at size tiny inside the shared papermill run: assert on what it recorded."""
from __future__ import annotations

import json

import pytest

from med42_utils.manifest import read_manifest
from med42_utils.params import load_params


@pytest.mark.slow
def test_05_benchmarks_manifest(notebook_run):
    run_name, run_dir = notebook_run
    params = load_params("tiny")
    eval_dir = run_dir / "eval"
    m = read_manifest(eval_dir)
    assert m["stage"] == "05_benchmarks" and m["size"] == "tiny"
    assert m["tasks"] == params.eval.tasks
    assert list(m["models"]) == [*params.eval.models, "tiny-release"]  # the stages, then the extra model
    assert m["models"]["tiny-release"]["model"].endswith("extra_models/tiny-release")
    for stage, entry in m["models"].items():
        raw = json.loads((eval_dir / "raw" / f"{stage}.json").read_text())
        for task in params.eval.tasks:
            s = entry["scores"][task]
            assert 0.0 <= s["acc"] <= 1.0 and 0.0 <= s["acc_norm"] <= 1.0
            assert s["acc"] == raw["results"][task]["acc,none"]
            full = task == "med42_taught_facts"  # the course task is scored whole
            assert s["n"] == (m["rows"][task]["kept"] if full else min(params.eval.limit, m["rows"][task]["kept"]))
    for task, c in m["chance"].items():
        assert 0.1 < c <= 0.5
    assert m["rows"]["med42_usmle_sa"]["dropped"].startswith("2 question refers to an image")
    assert m["rows"]["med42_usmle_sa"]["image questions"] == 2 and m["rows"]["med42_medqa_4options"]["image questions"] == 0
    assert "outside the official 500-question test split" in m["rows"]["med42_pubmedqa"]["dropped"]
    assert m["reference_rows"] == ["Llama3-8B-Instruct", "Med42-Llama3-8B"]
    assert set(m["table"]) >= {"MMLU", "MedQA", "ToxiGen", "Avg."}
    medqa = m["table"]["MedQA"]
    assert medqa["n"] == m["models"]["sft"]["scores"]["med42_medqa_4options"]["n"]
    for stage in params.eval.models:  # each score with its Wilson interval, which has width at n = 6
        assert medqa[f"{stage} low"] <= medqa[stage] <= medqa[f"{stage} high"] and medqa[f"{stage} high"] - medqa[f"{stage} low"] > 20
    assert not [c for c in medqa if c.startswith("paper") or " - " in c], "tiny: no paper deltas"
    shift = m["shift"]  # how far SFT -> last round moved the choices, against the gap they must overcome
    assert set(shift) == set(m["table"]) - {"Avg."}
    assert all(r["questions"] == m["table"][t]["n"] and r["mean relative shift (nats)"] > 0 for t, r in shift.items())
    assert (eval_dir / "results.csv").is_file() and (eval_dir / "results.png").stat().st_size > 1000
    assert set(m["lessons"]) >= {"metrics", "framings", "length_bias", "subjects_mmlu", "paired"}
    assert m["letter_models"] == params.eval.letter_models


@pytest.mark.slow
def test_05_sft_beats_base_on_the_taught_facts(notebook_run):
    """The lesson 05 states at tiny: on the taught facts SFT scores above base's 95% interval, and McNemar agrees;
    the length lesson is measured per model."""
    import pandas as pd

    from med42_utils.benchmarks import results as br

    run_name, run_dir = notebook_run
    eval_dir = run_dir / "eval"
    table = pd.read_csv(eval_dir / "results.csv", index_col="benchmark")
    paired = pd.read_csv(eval_dir / "paired.csv", index_col=0)
    v = br.stage_verdict(table, paired, "base", "sft")
    assert v.loc["Taught facts", "sft vs that interval"] == "above", v
    assert v.loc["Taught facts", "McNemar p"] < 0.05, paired
    lb = pd.read_csv(eval_dir / "length_bias.csv", index_col=0)
    assert "Taught facts" not in lb.index  # equally long options
    assert lb["base acc pick shortest %"].mean() > 90  # the untrained model picks by length
