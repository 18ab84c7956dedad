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


# Each bad row: the counted reason, and what its message names (the field, the bad value or what is expected),
# for whoever calls an adapter on a row by hand to see why it was dropped.
@pytest.mark.parametrize(
    "adapter,key,change,reason,names",
    [
        (A.medmcqa, "medmcqa", {"question": None}, "missing_field", "missing_field: question"),
        (A.medmcqa, "medmcqa", {"question": "  "}, "empty_question", "empty_question: question"),
        (A.medmcqa, "medmcqa", {"question": 42}, "missing_field", "missing_field: question is int, not str"),
        (A.medmcqa, "medmcqa", {"opd": ""}, "unparseable_options", "opa..opd must be non-empty strings"),
        (A.medmcqa, "medmcqa", {"cop": 4}, "invalid_label", "invalid_label: cop=4"),
        (A.medmcqa, "medmcqa", {"cop": -1}, "invalid_label", "cop=-1"),
        (A.medmcqa, "medmcqa", {"cop": "1"}, "invalid_label", "cop='1'"),
        (A.medqa, "medqa", {"question": " "}, "empty_question", "empty_question: question"),
        (A.medqa, "medqa", {"options": "A) x; B) y"}, "unparseable_options", "options is not JSON"),
        (A.medqa, "medqa", {"options": {}}, "unparseable_options", "options={}"),
        (A.medqa, "medqa", {"options": {"A": "x", "B": 3}}, "unparseable_options", "options={'A': 'x', 'B': 3}"),
        (A.medqa, "medqa", {"options": {"A": "x", "B": " "}}, "unparseable_options", "options="),
        (A.medqa, "medqa", {"options": [{"key": "A"}]}, "unparseable_options", "options list lacks key/value"),
        (A.medqa, "medqa", {"options": ["x", "y"]}, "unparseable_options", "options list lacks key/value"),
        (A.medqa, "medqa", {"answer_idx": "E"}, "invalid_label", "answer_idx='E' not in options"),
        (A.headqa, "headqa", {"qtext": ""}, "empty_question", "empty_question: qtext"),
        (A.headqa, "headqa", {"answers": "1) a 2) b"}, "unparseable_options", "answers must be [{aid, atext}]"),
        (A.headqa, "headqa", {"answers": []}, "unparseable_options", "empty answer option"),
        (A.headqa, "headqa", {"answers": [{"aid": 1, "atext": "a"}, {"aid": 2, "atext": ""}]}, "unparseable_options",
         "empty answer option"),
        (A.headqa, "headqa", {"answers": [{"aid": 1, "atext": "a"}, {"aid": 2, "atext": None}]}, "unparseable_options",
         "empty answer option"),
        (A.headqa, "headqa", {"ra": 99}, "invalid_label", "ra=99"),
        (A.mmlu, "mmlu", {"question": "\n"}, "empty_question", "empty_question: question"),
        (A.mmlu, "mmlu", {"choices": "A B C D"}, "unparseable_options", "choices must be a list of strings"),
        (A.mmlu, "mmlu", {"choices": ["only one"], "answer": 0}, "unparseable_options", "choices must be a list"),
        (A.mmlu, "mmlu", {"choices": [1, 2, 3, 4], "answer": 0}, "unparseable_options", "choices must be a list"),
        (A.mmlu, "mmlu", {"choices": ["a", "b"], "answer": 2}, "invalid_label", "invalid_label: answer=2"),
        (A.mmlu, "mmlu", {"choices": list("abcdefghijk"), "answer": 10}, "unparseable_options",
         "11 options, more than the letters A-J"),
        (A.headqa, "headqa", {"answers": [{"aid": i, "atext": f"t{i}"} for i in range(1, 12)], "ra": 1},
         "unparseable_options", "11 options, more than the letters A-J"),
        (A.mmlu, "mmlu", {"answer": "1"}, "invalid_label", "answer='1'"),
        (A.sciq, "sciq", {"question": ""}, "empty_question", "empty_question: question"),
        (A.sciq, "sciq", {"distractor2": ""}, "unparseable_options", "distractor1..3 must be non-empty strings"),
        (A.sciq, "sciq", {"distractor1": " "}, "unparseable_options", "distractor1..3"),
        (A.sciq, "sciq", {"correct_answer": ""}, "empty_answer", "empty_answer: correct_answer"),
        (A.pubmedqa, "pubmedqa", {"question": " "}, "empty_question", "empty_question: question"),
        (A.pubmedqa, "pubmedqa", {"final_decision": "perhaps"}, "invalid_label", "final_decision='perhaps'"),
        (A.pubmedqa, "pubmedqa", {"final_decision": ""}, "empty_answer", "empty_answer: final_decision"),
        (A.pubmedqa, "pubmedqa", {"long_answer": " "}, "empty_answer", "empty_answer: long_answer"),
        (A.pubmedqa, "pubmedqa", {"context": "text"}, "missing_field", "missing_field: context.contexts"),
        (A.pubhealth, "pubhealth", {"claim": ""}, "empty_question", "empty_question: claim"),
        (A.pubhealth, "pubhealth", {"label": -1}, "invalid_label", "invalid_label: label=-1"),
        (A.pubhealth, "pubhealth", {"label": 4}, "invalid_label", "label=4"),
        (A.pubhealth, "pubhealth", {"explanation": ""}, "empty_answer", "empty_answer: explanation"),
        (A.alpaca, "medical_flashcards", {"output": ""}, "empty_answer", "empty_answer: output"),
        (A.alpaca, "medical_flashcards", {"instruction": "", "input": ""}, "empty_question",
         "empty_question: instruction and input"),
        (A.alpaca, "medical_flashcards", {"instruction": None}, "missing_field", "missing_field: instruction"),
        (A.medquad, "medquad", {"Question": ""}, "empty_question", "empty_question: Question"),
        (A.medquad, "medquad", {"Answer": "   "}, "empty_answer", "empty_answer: Answer"),
        (A.niv2, "niv2", {"definition": ""}, "empty_question", "empty_question: definition"),
        (A.niv2, "niv2", {"inputs": " "}, "empty_question", "empty_question: inputs"),
        (A.niv2, "niv2", {"targets": ""}, "empty_answer", "empty_answer: targets"),
        (A.niv2, "niv2", {"targets": None}, "missing_field", "missing_field: targets"),
        (A.stackexchange, "stackexchange", {"question": ""}, "empty_question", "empty_question: question"),
        (A.stackexchange, "stackexchange", {"answers": "an answer"}, "missing_field", "missing_field: answers"),
        (A.stackexchange, "stackexchange", {"answers": []}, "empty_answer", "empty_answer: no answer with text"),
        (A.stackexchange, "stackexchange", {"answers": [{"text": " ", "selected": True}, {"text": None}]},
         "empty_answer", "no answer with text"),
        (A.medical_instruction, "medical_instruction", {"Conversation": ""}, "empty_question",
         "empty_question: Conversation"),
        (A.medical_instruction, "medical_instruction", {"Conversation": "[|Human|] hello"}, "unparseable_conversation",
         "needs user first and assistant last"),
        (A.medical_instruction, "medical_instruction", {"Conversation": "no markers at all"}, "unparseable_conversation",
         "needs user first and assistant last"),
        (A.medical_instruction, "medical_instruction", {"Conversation": "[|Human|] a [|Human|] b [|AI|] c"},
         "unparseable_conversation", "turns must alternate user/assistant"),
        (A.sharegpt, "opengpt", {"items": "human: hi"}, "unparseable_conversation", "items must be a list"),
        (A.sharegpt, "opengpt", {"items": [{"from": "robot", "value": "hi"}]}, "unparseable_conversation",
         "turn {'from': 'robot'"),
        (A.sharegpt, "opengpt", {"items": [{"from": "human", "value": None}]}, "unparseable_conversation",
         "turn {'from': 'human', 'value': None}"),
        (A.sharegpt, "opengpt", {"items": [None]}, "unparseable_conversation", "turn None"),
        (A.ultrachat, "ultrachat", {"messages": [{"role": "assistant", "content": "hi"}]}, "unparseable_conversation",
         "needs user first and assistant last"),
        (A.ultrachat, "ultrachat", {"messages": {"role": "user", "content": "hi"}}, "unparseable_conversation",
         "messages must be a list"),
        (A.ultrachat, "ultrachat", {"messages": ["user: hi"]}, "unparseable_conversation", "message 'user: hi'"),
        (A.ultrachat, "ultrachat", {"messages": [{"role": "user", "content": None}]}, "unparseable_conversation",
         "message {'role': 'user', 'content': None}"),
        (A.ultrachat, "ultrachat", {"messages": [{"role": "robot", "content": "hi"}]}, "unparseable_conversation",
         "message {'role': 'robot'"),
        (A.openorca, "slimorca_t0", {"question": ""}, "empty_question", "empty_question: question"),
        (A.openorca, "slimorca_t0", {"response": ""}, "empty_answer", "empty_answer: response"),
        (A.aci_bench, "aci_bench", {"dialogue": " "}, "empty_question", "empty_question: dialogue"),
        (A.aci_bench, "aci_bench", {"note": ""}, "empty_answer", "empty_answer: note"),
        (A.mts_dialog, "mts_dialog", {"dialogue": ""}, "empty_question", "empty_question: dialogue"),
        (A.mts_dialog, "mts_dialog", {"section_header": ""}, "empty_question", "empty_question: section_header"),
        (A.mts_dialog, "mts_dialog", {"section_text": None}, "missing_field", "missing_field: section_text"),
    ],
)
def test_bad_rows_raise_a_counted_reason_and_say_what_is_wrong(adapter, key, change, reason, names):
    with pytest.raises(A.BadRow) as e:
        adapter({**_row(key), **change})
    assert e.value.reason == reason
    assert str(e.value).startswith(f"{reason}") and names in str(e.value)


def test_bad_row_message_is_the_reason_then_the_detail_and_the_reason_must_be_a_counted_one():
    assert str(A.BadRow("empty_answer")) == "empty_answer"
    assert str(A.BadRow("empty_answer", "note")) == "empty_answer: note"
    assert A.BadRow("empty_answer", "note").reason == "empty_answer"
    with pytest.raises(AssertionError):
        A.BadRow("empty_anwser")


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
