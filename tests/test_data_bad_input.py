"""Every bad-input path: counted row reasons, schema mismatches, missing files, wrong targets."""
from __future__ import annotations

import json

import pytest

from med42_utils.data import adapters as A
from med42_utils.data.decontam import BenchmarkInputError, build_index
from med42_utils.data.loading import SAMPLES_DIR, SchemaMismatchError, SourceLoadError, check_schema, load_source
from med42_utils.data.mixture import TargetsError, check_targets
from med42_utils.data.registry import REGISTRY, get_source


def _row(key, i=0):
    return json.loads((SAMPLES_DIR / f"{key}.jsonl").read_text().splitlines()[i])


@pytest.mark.parametrize(
    "adapter,key,change,reason",
    [
        (A.medmcqa, "medmcqa", {"question": None}, "missing_field"),
        (A.medmcqa, "medmcqa", {"question": "  "}, "empty_question"),
        (A.medmcqa, "medmcqa", {"opd": ""}, "unparseable_options"),
        (A.medmcqa, "medmcqa", {"cop": 4}, "invalid_label"),
        (A.medqa, "medqa", {"options": "A) x; B) y"}, "unparseable_options"),
        (A.medqa, "medqa", {"options": {}}, "unparseable_options"),
        (A.medqa, "medqa", {"answer_idx": "E"}, "invalid_label"),
        (A.headqa, "headqa", {"answers": "1) a 2) b"}, "unparseable_options"),
        (A.headqa, "headqa", {"ra": 99}, "invalid_label"),
        (A.mmlu, "mmlu", {"choices": "A B C D"}, "unparseable_options"),
        (A.sciq, "sciq", {"distractor2": ""}, "unparseable_options"),
        (A.sciq, "sciq", {"correct_answer": ""}, "empty_answer"),
        (A.pubmedqa, "pubmedqa", {"final_decision": "perhaps"}, "invalid_label"),
        (A.pubmedqa, "pubmedqa", {"context": "text"}, "missing_field"),
        (A.pubhealth, "pubhealth", {"label": -1}, "invalid_label"),
        (A.pubhealth, "pubhealth", {"explanation": ""}, "empty_answer"),
        (A.alpaca, "medical_flashcards", {"output": ""}, "empty_answer"),
        (A.alpaca, "medical_flashcards", {"instruction": "", "input": ""}, "empty_question"),
        (A.medquad, "medquad", {"Answer": "   "}, "empty_answer"),
        (A.niv2, "niv2", {"targets": None}, "missing_field"),
        (A.stackexchange, "stackexchange", {"answers": []}, "empty_answer"),
        (A.medical_instruction, "medical_instruction", {"Conversation": "[|Human|] hello"}, "unparseable_conversation"),
        (A.medical_instruction, "medical_instruction", {"Conversation": "no markers at all"}, "unparseable_conversation"),
        (A.sharegpt, "opengpt", {"items": [{"from": "robot", "value": "hi"}]}, "unparseable_conversation"),
        (A.ultrachat, "ultrachat", {"messages": [{"role": "assistant", "content": "hi"}]}, "unparseable_conversation"),
        (A.openorca, "slimorca_t0", {"response": ""}, "empty_answer"),
        (A.aci_bench, "aci_bench", {"note": ""}, "empty_answer"),
        (A.mts_dialog, "mts_dialog", {"section_text": None}, "missing_field"),
    ],
)
def test_bad_rows_raise_a_counted_reason(adapter, key, change, reason):
    with pytest.raises(A.BadRow) as e:
        adapter({**_row(key), **change})
    assert e.value.reason == reason


def test_schema_mismatch_names_source_and_missing_fields():
    spec = get_source("medmcqa")
    with pytest.raises(SchemaMismatchError, match=r"source 'medmcqa'.*missing field\(s\) opa, cop"):
        check_schema(spec, ["id", "question", "opb", "opc", "opd", "exp"])


def test_local_source_with_wrong_schema_fails_on_load(tmp_path):
    (tmp_path / "medqa.jsonl").write_text(json.dumps({"question": "q?", "choices": ["a", "b"], "label": 0}) + "\n")
    with pytest.raises(SchemaMismatchError, match="source 'medqa'.*options, answer_idx"):
        load_source(get_source("medqa"), "local", tmp_path)


def test_local_source_missing_file_names_the_file(tmp_path):
    with pytest.raises(SourceLoadError, match=r"source 'sciq': no file sciq\.jsonl"):
        load_source(get_source("sciq"), "local", tmp_path)
    with pytest.raises(SourceLoadError, match="data.local_dir is not set"):
        load_source(get_source("sciq"), "local", None)


def test_hub_mode_for_a_source_without_hub_copy_says_what_to_do(tmp_path, monkeypatch):
    """ACI-Bench is published as CSVs on GitHub: offline and not downloaded, the error names the files, their
    pinned URLs, the prefetch command and the local folder that works instead."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HOME", str(tmp_path))  # an empty download cache
    with pytest.raises(SourceLoadError, match=r"'aci_bench'.*offline.*prefetch.*train\.csv, valid\.csv.*"
                       r"raw\.githubusercontent\.com/wyim/aci-bench/b909b2b.*<data\.local_dir>/aci_bench/.*"
                       r"data\.targets\.aci_bench: 0"):
        load_source(get_source("aci_bench"), "hub")


def test_unknown_source_and_wrong_targets():
    with pytest.raises(KeyError, match="unknown data source 'medmcqa2'"):
        get_source("medmcqa2")
    good = {k: 1 for k in REGISTRY}
    check_targets(good)
    with pytest.raises(TargetsError, match="unknown source\\(s\\) medmcq"):
        check_targets({**good, "medmcq": 3})
    missing = dict(good)
    del missing["sciq"]
    with pytest.raises(TargetsError, match="missing source\\(s\\) sciq"):
        check_targets(missing)
    with pytest.raises(TargetsError, match="non-negative"):
        check_targets({**good, "sciq": -1})


def test_malformed_benchmark_questions():
    with pytest.raises(BenchmarkInputError, match="benchmark 'medqa'"):
        build_index({"medqa": "one string"}, 8, 0.5)
    with pytest.raises(BenchmarkInputError, match="question 1 is int"):
        build_index({"medqa": ["ok question here", 3]}, 8, 0.5)


def test_a_target_of_zero_is_accepted_and_a_negative_or_non_integer_one_is_named():
    check_targets({**{k: 1 for k in REGISTRY}, "sciq": 0, "mmlu": 0})
    for bad in (-1, 2.5, "3", None):
        with pytest.raises(TargetsError, match=r"non-negative integers needed for sciq\."):
            check_targets({**{k: 1 for k in REGISTRY}, "sciq": bad})


def test_the_targets_error_lists_every_unknown_missing_and_bad_key_readably():
    targets = {k: 1 for k in REGISTRY if k not in ("sciq", "ultrachat")}
    targets.update({"medqa": -1, "mmlu": 2.5, "medmcq": 1, "pubmed": 2})
    with pytest.raises(TargetsError) as e:
        check_targets(targets)
    msg = str(e.value)
    assert msg.startswith(
        "data.targets: unknown source(s) medmcq, pubmed; missing source(s) sciq, ultrachat; "
        "non-negative integers needed for medqa, mmlu. Fix the data.targets block of params/<size>.yaml; valid keys: "
        "medmcqa, medical_flashcards, stackexchange, medqa, ")
    assert msg.endswith(", slimorca_cot, ultrachat (0 leaves a source out)")
    assert all(f" {k}," in msg or f" {k} (" in msg for k in REGISTRY)
