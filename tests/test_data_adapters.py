"""Every adapter on its bundled sample (real Hub schema), and what each one makes of a row."""
from __future__ import annotations

import json

import pytest

from med42_utils.data import adapters as A
from med42_utils.data.curate import process_row
from med42_utils.data.loading import SAMPLES_DIR, load_source
from med42_utils.data.registry import REGISTRY


def _rows(key):
    return [json.loads(line) for line in (SAMPLES_DIR / f"{key}.jsonl").read_text().splitlines() if line.strip()]


def _valid_chat(msgs):
    body = [m for m in msgs if m["role"] != "system"]
    assert body and body[0]["role"] == "user" and body[-1]["role"] == "assistant"
    assert all(isinstance(m["content"], str) and m["content"].strip() for m in msgs)
    assert all(a["role"] != b["role"] for a, b in zip(body, body[1:]))


@pytest.mark.parametrize("key", list(REGISTRY))
def test_bundled_sample_loads_and_adapts(key):
    spec = REGISTRY[key]
    ds = load_source(spec, "bundled")  # also checks the schema against the adapter's fields
    assert 6 <= len(ds) <= 20
    kept = 0
    for row in ds:
        msgs, reason = process_row(row, spec)
        if reason:
            step, why = reason.split(":", 1)
            assert step in ("filtered", "bad_input")
            assert step != "bad_input" or why in A.BadRow.REASONS
        else:
            _valid_chat(msgs)
            kept += 1
    assert kept >= 4, f"{key}: only {kept} usable rows in its bundled sample"


def test_medmcqa_answer_and_explanation():
    row = _rows("medmcqa")[0]
    msgs = A.medmcqa(row)
    letter = "ABCD"[row["cop"]]
    opt = row[["opa", "opb", "opc", "opd"][row["cop"]]]
    assert msgs[0]["content"].startswith(row["question"])
    assert msgs[1]["content"].endswith(f"Answer: {letter}. {opt}")
    assert row["exp"] in msgs[1]["content"]
    no_exp = A.medmcqa({**row, "exp": None})
    assert no_exp[1]["content"] == f"Answer: {letter}. {opt}"


def test_medqa_uses_answer_idx():
    row = _rows("medqa")[0]
    msgs = A.medqa(row)
    assert msgs[1]["content"] == f"Answer: {row['answer_idx']}. {row['options'][row['answer_idx']]}"
    for k, v in row["options"].items():
        assert f"{k}. {v}" in msgs[0]["content"]


def test_headqa_ra_is_an_answer_id():
    row = _rows("headqa")[0]
    msgs = A.headqa(row)
    right = next(a["atext"] for a in row["answers"] if a["aid"] == row["ra"])
    assert msgs[1]["content"].endswith(right)


def test_sciq_correct_answer_letter_matches_and_is_deterministic():
    row = _rows("sciq")[0]
    a, b = A.sciq(row), A.sciq(row)
    assert a == b
    letter = a[1]["content"].split("Answer: ")[1][0]
    assert f"{letter}. {row['correct_answer']}" in a[0]["content"]


def test_mmlu_pubmedqa_pubhealth():
    m = _rows("mmlu")[0]
    assert A.mmlu(m)[1]["content"].endswith(m["choices"][m["answer"]])
    p = _rows("pubmedqa")[0]
    out = A.pubmedqa(p)
    assert p["context"]["contexts"][0] in out[0]["content"] and out[1]["content"].endswith(p["final_decision"])
    h = _rows("pubhealth")[0]
    assert A.pubhealth(h)[1]["content"].endswith(("false", "mixture", "true", "unproven")[h["label"]])


def test_conversations_keep_all_turns():
    two_turns = next(r for r in _rows("medical_instruction") if r["Conversation"].count("[|Human|]") == 2)
    msgs = A.medical_instruction(two_turns)
    assert [m["role"] for m in msgs] == ["user", "assistant", "user", "assistant"]
    uc = next(r for r in _rows("ultrachat") if len(r["messages"]) == 4)
    assert [m["role"] for m in A.ultrachat(uc)] == ["user", "assistant", "user", "assistant"]
    og = A.sharegpt(_rows("opengpt")[0])
    assert [m["role"] for m in og] == ["user", "assistant"]


def test_openorca_system_prompt_and_stackexchange_best_answer():
    row = _rows("slimorca_cot")[0]
    msgs = A.openorca(row)
    assert msgs[0] == {"role": "system", "content": row["system_prompt"]}
    se = next(r for r in _rows("stackexchange") if len(r["answers"]) == 2 and not any(a["selected"] for a in r["answers"]))
    best = max(se["answers"], key=lambda a: a["pm_score"])
    assert A.stackexchange(se)[1]["content"] == best["text"]
    sel = {**se, "answers": [{**se["answers"][1], "selected": True}, se["answers"][0]]}
    assert A.stackexchange(sel)[1]["content"] == se["answers"][1]["text"]  # accepted beats score


def test_clinical_note_adapters():
    a = _rows("aci_bench")[0]
    assert A.aci_bench(a)[1]["content"] == a["note"] and a["dialogue"] in A.aci_bench(a)[0]["content"]
    m = _rows("mts_dialog")[0]
    assert A.mts_dialog(m)[1]["content"] == m["section_text"] and m["section_header"] in A.mts_dialog(m)[0]["content"]
