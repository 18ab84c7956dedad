"""05's data knobs: each benchmark from a folder or the Hub (fake cache), benchmarks without files skipped with a
note, row limits that draw the same seeded stratified sample, and MMLU-Pro copies with other field names."""
from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from fakehub import write_datasets_cache
from med42_utils.benchmarks import data as bd
from med42_utils.benchmarks import run as bench
from med42_utils.benchmarks.data import BenchmarkDataError, load_benchmark, sample_docs
from med42_utils.params import load_params

FIXTURES = Path(__file__).parent / "fixtures" / "official"
LOCAL = ["mmlu_medical", "medmcqa", "medqa", "pubmedqa"]  # the four with an official file distribution
HUB = ["mmlu_pro_health", "usmle", "toxigen"]


def _bundled(key):
    return [json.loads(x) for x in (bd.BUNDLED_DIR / f"{key}.jsonl").read_text().splitlines() if x.strip()]


def _fake_hub_benchmarks(cache: Path, keys=HUB):
    """datasets' cache after an online load of these benchmarks (rows: the bundled samples, in the Hub schema)."""
    for key in keys:
        b = bd.BENCHMARKS[key]
        for config in b.hub_configs:
            write_datasets_cache(cache, b.hub_id, {b.hub_split: _bundled(key)}, config)


# ---------------------------------------------------------------- row limits that sample
def _mmlu_docs(per_subject=50):
    return [{"id": f"{s}-{i}", "subject": s, "question": f"q{i}", "query": f"q{i}", "choices": list("abcd"), "answer": i % 4}
            for s in bd.MMLU_MEDICAL_SUBJECTS for i in range(per_subject)]  # sorted by subject, as the files are


def test_limit_draws_the_same_stratified_sample_for_the_same_seed():
    docs = _mmlu_docs()
    a, b = sample_docs("mmlu_medical", docs, 20, seed=42), sample_docs("mmlu_medical", docs, 20, seed=42)
    assert a == b and len(a) == 20
    per = Counter(d["subject"] for d in a)
    assert set(per) == set(bd.MMLU_MEDICAL_SUBJECTS) and set(per.values()) <= {3, 4}  # not 20 anatomy questions
    assert [d["id"] for d in a] == [d["id"] for d in docs if d in a]  # original order kept
    assert sample_docs("mmlu_medical", docs, 20, seed=7) != a  # another seed, another sample
    assert sample_docs("mmlu_medical", docs, None, 42) == docs and sample_docs("mmlu_medical", docs, 999, 42) == docs
    labels = ["yes"] * 60 + ["no"] * 30 + ["maybe"] * 10
    pub = [{"id": str(i), "subject": "pubmedqa", "choices": ["yes", "no", "maybe"], "answer": ["yes", "no", "maybe"].index(l)}
           for i, l in enumerate(labels)]
    got = Counter(d["choices"][d["answer"]] for d in sample_docs("pubmedqa", pub, 20, 42))
    assert got == {"yes": 12, "no": 6, "maybe": 2}  # the label mix of the split, per PubMedQA label
    tiny = sample_docs("pubmedqa", pub, 2, 42)  # fewer rows than labels: the largest groups first, still n rows
    assert len(tiny) == 2


def test_05_says_sample_size_and_seed_and_lm_eval_scores_that_sample(tiny_params):
    p = load_params("tiny", {"eval.limit": 3})
    rows = {r["task"]: r for r in bench.benchmark_overview(p)}
    mmlu = rows["med42_mmlu_medical"]
    assert mmlu["scored"] == 3 and mmlu["sample"] == f"3 of {mmlu['kept']}, seed {p.seed}, stratified by subject"
    assert rows["med42_medqa_4options"]["sample"].endswith(", uniform")
    md = bench.task_metadata(p)
    assert md["med42_limit"] == 3 and md["med42_seed"] == p.seed
    from med42_utils.benchmarks.tasks.utils import load_docs

    via_lm_eval = load_docs("mmlu_medical", **md)["test"].to_list()  # what lm-eval's custom_dataset returns
    assert via_lm_eval == bench.scored_docs(p, "med42_mmlu_medical")[1]


# ---------------------------------------------------------------- per-benchmark sources, skipping
def test_local_for_some_hub_for_others_and_missing_files_skipped(tmp_path, monkeypatch):
    from fakehub import use_caches

    dcache, _ = use_caches(monkeypatch, tmp_path / "hf")
    _fake_hub_benchmarks(dcache)
    shutil.copytree(FIXTURES, tmp_path / "data")
    # the published benchmarks only (tiny's course task, the taught facts, is bundled and has no source)
    table4 = {"eval.tasks": [b.task for b in bd.BENCHMARKS.values()]}
    p = load_params("tiny", {**table4, "eval.data_source": "hub", "eval.data_dir": str(tmp_path / "data"),
                             "eval.sources": {k: "local" for k in LOCAL}})
    rows = {r["task"]: r for r in bench.benchmark_overview(p)}
    assert {t: r["layout"] for t, r in rows.items()} == {
        **{bd.BENCHMARKS[k].task: "official" for k in LOCAL}, **{bd.BENCHMARKS[k].task: "hub" for k in HUB}}
    # every benchmark from files: USMLE and ToxiGen have none, so they are skipped with a note, not an error
    p = load_params("tiny", {**table4, "eval.data_source": "local", "eval.data_dir": str(tmp_path / "data")})
    tasks, skipped = bench.eval_tasks(p)
    assert set(skipped) == {"med42_usmle_sa", "med42_toxigen"} and len(tasks) == 5
    assert "no official file distribution" in skipped["med42_usmle_sa"] and "toxigen=hub" in skipped["med42_toxigen"]
    overview = {r["task"]: r for r in bench.benchmark_overview(p)}
    assert overview["med42_toxigen"]["source"] == "skipped" and overview["med42_medqa_4options"]["kept"] > 0
    assert set(bd.benchmark_questions(p)) == set(LOCAL) | {"mmlu_pro_health"}  # 01 decontaminates against the same
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no benchmark left to evaluate: med42_mmlu_medical: no files for it in"):
        bench.eval_tasks(load_params("tiny", {**table4, "eval.data_source": "local", "eval.data_dir": str(empty)}))


def test_notebook_knobs_become_params():
    o = bd.notebook_overrides(20, "hub", "/data/bench", "medqa, med42_pubmedqa", "medqa:local,med42_mmlu_medical=local")
    assert o == {"eval.limit": 20, "eval.data_source": "hub", "eval.data_dir": "/data/bench",
                 "eval.tasks": ["med42_medqa_4options", "med42_pubmedqa"],
                 "eval.sources": {"medqa": "local", "mmlu_medical": "local"}}
    assert bd.notebook_overrides() == {"eval.limit": None, "eval.data_source": None, "eval.data_dir": None}
    with pytest.raises(BenchmarkDataError, match=r"'medqa-local' is not <benchmark>:hub\|local\|bundled"):
        bd.parse_sources("medqa-local")
    with pytest.raises(KeyError, match="unknown benchmark 'medqa5'"):
        bd.notebook_overrides(tasks="medqa5")


@pytest.mark.slow
def test_05_via_papermill_reads_a_folder_for_some_benchmarks_and_the_hub_for_others(tmp_path, monkeypatch):
    """The notebook as a user runs it: -p data_dir DIR -p sources ... -p data_source hub; offline, the Hub
    benchmarks come from a fake datasets cache (the kernel inherits HF_DATASETS_CACHE)."""
    import uuid

    import nbformat

    from med42_utils.paths import repo_root
    from med42_utils.runner import run_notebook

    cache = tmp_path / "hf-datasets"
    _fake_hub_benchmarks(cache)
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache))
    shutil.copytree(FIXTURES, tmp_path / "data")
    out = run_notebook(repo_root() / "notebooks" / "05_benchmarks.ipynb", "tiny", f"pytest-src-{uuid.uuid4().hex[:6]}",
                       {"dry_run": True, "data_source": "hub", "data_dir": str(tmp_path / "data"), "limit": 4,
                        "sources": ",".join(f"{k}=local" for k in LOCAL)})
    nb = nbformat.read(out, 4)
    cell = next(c for c in nb.cells if c.get("id") == "cell-04")
    text = "".join(o.get("text", "") for o in cell.outputs) + "".join(
        o.get("data", {}).get("text/html", "") for o in cell.outputs)
    assert "'medqa': 'local'" in text and "'toxigen': 'hub'" in text and "seed 42" in text
    assert "'medmcqa': 'local'" in text and ".../medmcqa/dev.json" in text  # read from the folder (shown without
    assert str(tmp_path) not in text                                           # the machine's absolute path)
    assert "HuggingSara/usmle_self_assessment (train)" in text       # read from the (fake) Hub cache
    assert "4 of" in text and "stratified by subject" in text


# ---------------------------------------------------------------- MMLU-Pro copies
def test_mmlu_pro_medagentsbench_copy_is_mapped_and_unknown_layouts_named(tmp_path):
    rows = [json.loads(x) for x in (FIXTURES / "mmlu_pro_health" / "test.jsonl").read_text().splitlines()]
    folder = tmp_path / "mmlu_pro_health"
    folder.mkdir()
    agents = [{"realidx": r["question_id"], "question": r["question"],
               "options": {"ABCDEFGHIJ"[i]: o for i, o in enumerate(r["options"])}, "answer_idx": r["answer"],
               "category": r["category"], "src": r["src"], "answer": r["options"][r["answer_index"]]} for r in rows]
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in agents))
    official = load_benchmark("mmlu_pro_health", "local", FIXTURES)
    mapped = load_benchmark("mmlu_pro_health", "local", tmp_path)
    assert "fields mapped from MedAgentsBench" in mapped.origin
    assert [(d["question"], d["choices"], d["answer"]) for d in mapped.docs] == \
        [(d["question"], d["choices"], d["answer"]) for d in official.docs]
    (folder / "test.jsonl").write_text(json.dumps({"qid": 1, "prompt": "?", "choices": ["a", "b"], "label": 0}) + "\n")
    with pytest.raises(BenchmarkDataError, match=r"no MMLU-Pro layout.*TIGER-Lab: question_id, question, options, "
                       r"answer, answer_index, category; MedAgentsBench: realidx.*found qid, prompt, choices, label"):
        load_benchmark("mmlu_pro_health", "local", tmp_path)
