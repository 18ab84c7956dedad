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


# ---------------------------------------------------------------- the exact chat each adapter makes of a row
# Hand-made rows in each source's schema; the expected messages are the prompt formats the SFT data is built with.
def _chat(user, assistant, system=None):
    return ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": user}, {"role": "assistant", "content": assistant}]


def test_medmcqa_lists_the_four_options_lettered_and_answers_with_the_explanation_first():
    row = {"question": " Which nerve supplies the hypothenar muscles? ", "opa": "Ulnar", "opb": "Radial",
           "opc": "Median", "opd": "Axillary", "cop": 0, "exp": " The ulnar nerve, deep branch. "}
    assert A.medmcqa(row) == _chat("Which nerve supplies the hypothenar muscles?\n\nA. Ulnar\nB. Radial\nC. Median\n"
                                   "D. Axillary", "The ulnar nerve, deep branch.\n\nAnswer: A. Ulnar")
    # cop is 0-based: 0 is A (the first valid label), 3 is D (the last)
    assert A.medmcqa({**row, "cop": 3, "exp": None})[1]["content"] == "Answer: D. Axillary"


def test_medqa_options_in_letter_order_from_a_dict_a_json_string_or_a_key_value_list():
    expected = _chat("Which drug?\n\nA. One\nB. Two\nC. Three", "Answer: C. Three")
    base = {"question": "Which drug?", "answer_idx": "C", "answer": "Three"}
    assert A.medqa({**base, "options": {"B": "Two", "C": "Three", "A": "One"}}) == expected
    assert A.medqa({**base, "options": '{"B": "Two", "C": "Three", "A": "One"}'}) == expected
    as_list = [{"key": "C", "value": "Three"}, {"key": "A", "value": "One"}, {"key": "B", "value": "Two"}]
    assert A.medqa({**base, "options": as_list}) == expected


def test_headqa_answers_sorted_by_aid_and_the_letter_is_the_right_answers_position():
    row = {"qtext": "Which enzyme converts angiotensin I?", "ra": 2,
           "answers": [{"aid": 3, "atext": "Aldosterone synthase"}, {"aid": 1, "atext": "Renin"},
                       {"aid": 2, "atext": "ACE"}]}
    assert A.headqa(row) == _chat("Which enzyme converts angiotensin I?\n\nA. Renin\nB. ACE\nC. Aldosterone synthase",
                                  "Answer: B. ACE")


def test_mmlu_takes_any_number_of_choices_from_two_and_a_0_based_answer():
    row = {"question": "Is the heart a muscle?", "subject": "anatomy", "choices": ["yes", "no"], "answer": 1}
    assert A.mmlu(row) == _chat("Is the heart a muscle?\n\nA. yes\nB. no", "Answer: B. no")
    assert A.mmlu({**row, "answer": 0})[1]["content"] == "Answer: A. yes"
    ten = A.mmlu({**row, "choices": list("abcdefghij"), "answer": 9})  # as many as there are letters (11: a bad row)
    assert ten[0]["content"].endswith("I. i\nJ. j") and ten[1]["content"] == "Answer: J. j"


def test_sciq_offers_the_answer_and_all_three_distractors_in_a_per_question_order_with_support_as_reasoning():
    letters = set()
    for row in _rows("sciq"):
        msgs = A.sciq(row)
        assert A.sciq(dict(row)) == msgs  # the same order every time for the same question
        question, options = msgs[0]["content"].split("\n\n")
        assert question == row["question"]
        lines = options.split("\n")
        assert [ln[:3] for ln in lines] == ["A. ", "B. ", "C. ", "D. "]
        assert sorted(ln[3:] for ln in lines) == sorted(
            [row["correct_answer"], row["distractor1"], row["distractor2"], row["distractor3"]])
        letter = "ABCD"[[ln[3:] for ln in lines].index(row["correct_answer"])]
        letters.add(letter)
        reasoning = f"{row['support'].strip()}\n\n" if (row.get("support") or "").strip() else ""  # some have none
        assert msgs[1]["content"] == f"{reasoning}Answer: {letter}. {row['correct_answer']}"
    assert len(letters) > 1  # shuffled: the right answer is not always A


def test_pubmedqa_joins_the_contexts_and_ends_with_the_decision_yes_no_or_maybe():
    row = {"question": "Does X help?", "context": {"contexts": ["First part.", "Second part."], "labels": ["A", "B"]},
           "long_answer": "It helps a little.", "final_decision": "maybe"}
    assert A.pubmedqa(row) == _chat("Context: First part. Second part.\n\nQuestion: Does X help?\n"
                                    "Answer yes, no or maybe.", "It helps a little.\n\nAnswer: maybe")
    for decision in ("yes", "no"):
        assert A.pubmedqa({**row, "final_decision": decision})[1]["content"].endswith(f"\n\nAnswer: {decision}")
    with pytest.raises(A.BadRow, match="invalid_label"):
        A.pubmedqa({**row, "final_decision": "Yes"})


def test_pubhealth_verdict_names_the_label_from_0_false_to_3_unproven():
    row = {"claim": "Vitamin C cures colds.", "label": 0, "explanation": "Trials show no cure."}
    assert A.pubhealth(row) == _chat("Is this public-health claim true, false, a mixture, or unproven?\n\n"
                                     "Claim: Vitamin C cures colds.", "Trials show no cure.\n\nVerdict: false")
    assert [A.pubhealth({**row, "label": i})[1]["content"].split("Verdict: ")[1] for i in range(4)] == [
        "false", "mixture", "true", "unproven"]


def test_alpaca_user_turn_is_instruction_then_input_either_may_be_empty():
    row = {"instruction": "Answer this question truthfully", "input": " What causes gout? ", "output": "Urate."}
    assert A.alpaca(row) == _chat("Answer this question truthfully\n\nWhat causes gout?", "Urate.")
    assert A.alpaca({**row, "input": ""})[0]["content"] == "Answer this question truthfully"
    assert A.alpaca({**row, "input": None})[0]["content"] == "Answer this question truthfully"
    assert A.alpaca({**row, "instruction": " "})[0]["content"] == "What causes gout?"


def test_niv2_medquad_and_the_clinical_note_sources_exact_prompts():
    assert A.niv2({"task_name": "t", "id": "1", "definition": "Classify the sentiment.", "inputs": "I feel great.",
                   "targets": "positive"}) == _chat("Classify the sentiment.\n\nI feel great.", "positive")
    assert A.medquad({"qtype": "symptoms", "Question": " What are the symptoms of gout? ",
                      "Answer": " Joint pain. "}) == _chat("What are the symptoms of gout?", "Joint pain.")
    assert A.aci_bench({"dataset": "d", "encounter_id": "e1", "dialogue": "[doctor] hi", "note": "CC: cough."}) == _chat(
        "Write the clinical note for this doctor-patient encounter.\n\n[doctor] hi", "CC: cough.")
    assert A.mts_dialog({"ID": 0, "section_header": "GENHX", "section_text": "A 40-year-old man.",
                         "dialogue": "Doctor: Hi."}) == _chat(
        "Write the GENHX section of the clinical note for this conversation.\n\nDoctor: Hi.", "A 40-year-old man.")


def test_openorca_system_prompt_only_when_it_has_text():
    row = {"id": "cot.4", "system_prompt": "Think step by step.", "question": "2+2?", "response": "4"}
    assert A.openorca(row) == _chat("2+2?", "4", system="Think step by step.")
    assert A.openorca({**row, "system_prompt": "  "}) == _chat("2+2?", "4")
    assert A.openorca({**row, "system_prompt": None}) == _chat("2+2?", "4")


def test_stackexchange_skips_answers_without_text_and_ranks_by_accepted_then_score_a_missing_score_counts_0():
    q = {"qid": 1, "question": "Is it harmful to crack your knuckles?"}
    low, high = {"text": "low", "pm_score": 1}, {"text": "high", "pm_score": 5}
    assert A.stackexchange({**q, "answers": [low, high]}) == _chat(q["question"], "high")
    assert A.stackexchange({**q, "answers": [{"text": "unscored", "pm_score": None}, low]})[1]["content"] == "low"
    # an accepted answer whose text is empty, an answer that is not a dict: skipped
    empty_accepted = {"text": "  ", "pm_score": 9, "selected": True}
    assert A.stackexchange({**q, "answers": [empty_accepted, "not a dict", low]})[1]["content"] == "low"
    assert A.stackexchange({**q, "answers": [{"text": None, "selected": True}, low]})[1]["content"] == "low"


def test_conversations_keep_a_leading_system_turn_drop_empty_turns_and_strip_text():
    items = [{"from": "system", "value": "Be brief."}, {"from": "human", "value": " Hi "},
             {"from": "gpt", "value": " "}, {"from": "user", "value": "Still there?"},
             {"from": "assistant", "value": "Yes."}]
    with pytest.raises(A.BadRow, match="turns must alternate"):  # the empty gpt turn dropped: two user turns
        A.sharegpt({"items": items})
    items[2]["value"] = "Hello."
    assert A.sharegpt({"items": items}) == [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Still there?"},
        {"role": "assistant", "content": "Yes."}]
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": " Hi "},
                {"role": "assistant", "content": "Hello."}, {"role": "user", "content": ""}]
    assert A.ultrachat({"prompt": "Hi", "messages": messages}) == _chat("Hi", "Hello.", system="Be brief.")
    conv = "The conversation between human and AI.\n[|Human|] Hi [|AI|]  [|Human|] Still there?\n[|AI|] Yes."
    with pytest.raises(A.BadRow, match="turns must alternate"):
        A.medical_instruction({"Conversation": conv})
    assert A.medical_instruction({"Conversation": conv.replace("[|AI|]  ", "[|AI|] Hello. ")}) == [
        {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Still there?"}, {"role": "assistant", "content": "Yes."}]
