"""Adapters: one raw row in a source's real Hub schema -> chat messages.

Each adapter returns [{"role", "content"}, ...] (optional system, then user/assistant turns) or
raises BadRow(reason); the curation step counts every BadRow per source and reason.
"""
from __future__ import annotations

import json
import random
import re
from typing import Any, Callable

LETTERS = "ABCDEFGHIJ"


class BadRow(ValueError):
    """A row that cannot become a training example; `reason` is one of REASONS."""

    REASONS = (
        "missing_field",
        "empty_question",
        "empty_answer",
        "unparseable_options",
        "invalid_label",
        "unparseable_conversation",
    )

    def __init__(self, reason: str, detail: str = ""):
        assert reason in self.REASONS, reason
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


Adapter = Callable[[dict[str, Any]], list[dict[str, str]]]


def _get(row: dict, field: str) -> Any:
    if row.get(field) is None:
        raise BadRow("missing_field", field)
    return row[field]


def _text(row: dict, field: str, empty_reason: str) -> str:
    value = _get(row, field)
    if not isinstance(value, str):
        raise BadRow("missing_field", f"{field} is {type(value).__name__}, not str")
    if not value.strip():
        raise BadRow(empty_reason, field)
    return value.strip()


def _turns(user: str, assistant: str, system: str | None = None) -> list[dict[str, str]]:
    msgs = [{"role": "system", "content": system}] if system and system.strip() else []
    return msgs + [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]


def _mcq(question: str, options: list[str]) -> str:
    if len(options) > len(LETTERS):
        raise BadRow("unparseable_options", f"{len(options)} options, more than the letters A-{LETTERS[-1]}")
    return question + "\n\n" + "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(options))


def _answer(letter: str, text: str, reasoning: str | None = None) -> str:
    final = f"Answer: {letter}. {text}"
    return f"{reasoning.strip()}\n\n{final}" if reasoning and reasoning.strip() else final


# ---------------------------------------------------------------- exam questions
def medmcqa(row: dict) -> list[dict]:
    """openlifescienceai/medmcqa: question, opa..opd, cop (0-3), exp (explanation, may be null)."""
    q = _text(row, "question", "empty_question")
    opts = [_get(row, k) for k in ("opa", "opb", "opc", "opd")]
    if not all(isinstance(o, str) and o.strip() for o in opts):
        raise BadRow("unparseable_options", "opa..opd must be non-empty strings")
    cop = _get(row, "cop")
    if not isinstance(cop, int) or not 0 <= cop < 4:
        raise BadRow("invalid_label", f"cop={cop!r}")
    return _turns(_mcq(q, opts), _answer(LETTERS[cop], opts[cop], row.get("exp")))


def _parse_options(raw: Any) -> dict[str, str]:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raise BadRow("unparseable_options", "options is not JSON") from None
    if isinstance(raw, list):  # [{"key": "A", "value": ...}] as some copies store it
        try:
            raw = {o["key"]: o["value"] for o in raw}
        except (TypeError, KeyError):
            raise BadRow("unparseable_options", "options list lacks key/value") from None
    if not isinstance(raw, dict) or not raw or not all(isinstance(v, str) and v.strip() for v in raw.values()):
        raise BadRow("unparseable_options", f"options={raw!r:.60}")
    return {k: raw[k] for k in sorted(raw)}


def medqa(row: dict) -> list[dict]:
    """GBaker/MedQA-USMLE-4-options: question, options {A..D}, answer_idx (letter), answer."""
    q = _text(row, "question", "empty_question")
    opts = _parse_options(_get(row, "options"))
    idx = _get(row, "answer_idx")
    if idx not in opts:
        raise BadRow("invalid_label", f"answer_idx={idx!r} not in options")
    user = q + "\n\n" + "\n".join(f"{k}. {v}" for k, v in opts.items())
    return _turns(user, _answer(idx, opts[idx]))


def headqa(row: dict) -> list[dict]:
    """head_qa (config en): qtext, answers [{aid, atext}], ra (aid of the right answer)."""
    q = _text(row, "qtext", "empty_question")
    answers = _get(row, "answers")
    try:
        answers = sorted(answers, key=lambda a: a["aid"])
        texts = [a["atext"] for a in answers]
        aids = [a["aid"] for a in answers]
    except (TypeError, KeyError):
        raise BadRow("unparseable_options", "answers must be [{aid, atext}]") from None
    if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
        raise BadRow("unparseable_options", "empty answer option")
    ra = _get(row, "ra")
    if ra not in aids:
        raise BadRow("invalid_label", f"ra={ra!r}")
    i = aids.index(ra)
    return _turns(_mcq(q, texts), _answer(LETTERS[i], texts[i]))


def mmlu(row: dict) -> list[dict]:
    """cais/mmlu: question, subject, choices [4 str], answer (0-3)."""
    q = _text(row, "question", "empty_question")
    choices = _get(row, "choices")
    if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) for c in choices):
        raise BadRow("unparseable_options", "choices must be a list of strings")
    ans = _get(row, "answer")
    if not isinstance(ans, int) or not 0 <= ans < len(choices):
        raise BadRow("invalid_label", f"answer={ans!r}")
    return _turns(_mcq(q, choices), _answer(LETTERS[ans], choices[ans]))


def sciq(row: dict) -> list[dict]:
    """allenai/sciq: question, correct_answer, distractor1..3, support (used as reasoning)."""
    q = _text(row, "question", "empty_question")
    correct = _text(row, "correct_answer", "empty_answer")
    distractors = [_get(row, f"distractor{i}") for i in (1, 2, 3)]
    if not all(isinstance(d, str) and d.strip() for d in distractors):
        raise BadRow("unparseable_options", "distractor1..3 must be non-empty strings")
    opts = [correct, *distractors]
    random.Random(q).shuffle(opts)  # deterministic per question, so the answer is not always A
    i = opts.index(correct)
    return _turns(_mcq(q, opts), _answer(LETTERS[i], correct, row.get("support")))


# ---------------------------------------------------------------- research QA
def pubmedqa(row: dict) -> list[dict]:
    """qiaojin/PubMedQA pqa_labeled: question, context {contexts, labels, ...}, long_answer, final_decision."""
    q = _text(row, "question", "empty_question")
    ctx = _get(row, "context")
    if not isinstance(ctx, dict) or not isinstance(ctx.get("contexts"), list):
        raise BadRow("missing_field", "context.contexts")
    decision = _text(row, "final_decision", "empty_answer")
    if decision not in ("yes", "no", "maybe"):
        raise BadRow("invalid_label", f"final_decision={decision!r}")
    long_answer = _text(row, "long_answer", "empty_answer")
    user = "Context: " + " ".join(ctx["contexts"]) + f"\n\nQuestion: {q}\nAnswer yes, no or maybe."
    return _turns(user, f"{long_answer}\n\nAnswer: {decision}")


HEALTH_FACT_LABELS = ("false", "mixture", "true", "unproven")


def pubhealth(row: dict) -> list[dict]:
    """ImperialCollegeLondon/health_fact: claim, label (0 false, 1 mixture, 2 true, 3 unproven; -1 invalid), explanation."""
    claim = _text(row, "claim", "empty_question")
    label = _get(row, "label")
    if not isinstance(label, int) or not 0 <= label < 4:
        raise BadRow("invalid_label", f"label={label!r}")
    explanation = _text(row, "explanation", "empty_answer")
    user = f"Is this public-health claim true, false, a mixture, or unproven?\n\nClaim: {claim}"
    return _turns(user, f"{explanation}\n\nVerdict: {HEALTH_FACT_LABELS[label]}")


# ---------------------------------------------------------------- instruction / QA pairs
def alpaca(row: dict) -> list[dict]:
    """medalpaca/medical_meadow_*: instruction, input, output."""
    instruction = _get(row, "instruction")
    inp = row.get("input") or ""
    user = "\n\n".join(s.strip() for s in (instruction, inp) if isinstance(s, str) and s.strip())
    if not user:
        raise BadRow("empty_question", "instruction and input")
    return _turns(user, _text(row, "output", "empty_answer"))


def medquad(row: dict) -> list[dict]:
    """keivalya/MedQuad-MedicalQnADataset: qtype, Question, Answer."""
    return _turns(_text(row, "Question", "empty_question"), _text(row, "Answer", "empty_answer"))


def niv2(row: dict) -> list[dict]:
    """Muennighoff/natural-instructions: task_name, id, definition, inputs, targets."""
    definition = _text(row, "definition", "empty_question")
    inputs = _text(row, "inputs", "empty_question")
    return _turns(f"{definition}\n\n{inputs}", _text(row, "targets", "empty_answer"))


def stackexchange(row: dict) -> list[dict]:
    """HuggingFaceH4/stack-exchange-preferences: question, answers [{text, pm_score, selected, ...}].

    The accepted answer if there is one, else the highest-scored."""
    q = _text(row, "question", "empty_question")
    answers = _get(row, "answers")
    if not isinstance(answers, list):
        raise BadRow("missing_field", "answers")
    answers = [a for a in answers if isinstance(a, dict) and isinstance(a.get("text"), str) and a["text"].strip()]
    if not answers:
        raise BadRow("empty_answer", "no answer with text")
    best = max(answers, key=lambda a: (bool(a.get("selected")), a.get("pm_score") or 0))
    return _turns(q, best["text"].strip())


# ---------------------------------------------------------------- conversations
_BAIZE = re.compile(r"\[\|(Human|AI)\|\]")


def medical_instruction(row: dict) -> list[dict]:
    """Mohammed-Altaf/medical-instruction-120k: Conversation, '[|Human|] ... [|AI|] ...' turns."""
    conv = _text(row, "Conversation", "empty_question")
    parts = _BAIZE.split(conv)
    # parts = [preamble, 'Human', text, 'AI', text, ...]
    msgs = []
    for speaker, text in zip(parts[1::2], parts[2::2]):
        text = text.strip()
        if text:
            msgs.append({"role": "user" if speaker == "Human" else "assistant", "content": text})
    return _check_conversation(msgs)


def _check_conversation(msgs: list[dict]) -> list[dict]:
    body = [m for m in msgs if m["role"] != "system"]
    if not body or body[0]["role"] != "user" or body[-1]["role"] != "assistant":
        raise BadRow("unparseable_conversation", "needs user first and assistant last")
    for a, b in zip(body, body[1:]):
        if a["role"] == b["role"]:
            raise BadRow("unparseable_conversation", "turns must alternate user/assistant")
    return msgs


_SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


def sharegpt(row: dict) -> list[dict]:
    """openchat/openchat_sharegpt_v3 (sharegpt_gpt4.json): items [{from, value}], model."""
    items = _get(row, "items")
    if not isinstance(items, list):
        raise BadRow("unparseable_conversation", "items must be a list")
    msgs = []
    for it in items:
        role = _SHAREGPT_ROLES.get((it or {}).get("from"))
        value = (it or {}).get("value")
        if role is None or not isinstance(value, str):
            raise BadRow("unparseable_conversation", f"turn {it!r:.60}")
        if value.strip():
            msgs.append({"role": role, "content": value.strip()})
    return _check_conversation(msgs)


def openorca(row: dict) -> list[dict]:
    """Open-Orca/OpenOrca: id ('t0.123', 'flan.9', 'cot.4', 'niv.7'), system_prompt, question, response."""
    q = _text(row, "question", "empty_question")
    return _turns(q, _text(row, "response", "empty_answer"), row.get("system_prompt"))


def ultrachat(row: dict) -> list[dict]:
    """HuggingFaceH4/ultrachat_200k (train_sft): prompt, prompt_id, messages [{content, role}]."""
    raw = _get(row, "messages")
    if not isinstance(raw, list):
        raise BadRow("unparseable_conversation", "messages must be a list")
    msgs = []
    for m in raw:
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant") or not isinstance(m.get("content"), str):
            raise BadRow("unparseable_conversation", f"message {m!r:.60}")
        if m["content"].strip():
            msgs.append({"role": m["role"], "content": m["content"].strip()})
    return _check_conversation(msgs)


# ---------------------------------------------------------------- clinical notes
def aci_bench(row: dict) -> list[dict]:
    """ACI-Bench CSV (github.com/wyim/aci-bench): dataset, encounter_id, dialogue, note."""
    dialogue = _text(row, "dialogue", "empty_question")
    user = f"Write the clinical note for this doctor-patient encounter.\n\n{dialogue}"
    return _turns(user, _text(row, "note", "empty_answer"))


def mts_dialog(row: dict) -> list[dict]:
    """MTS-Dialog CSV (github.com/abachaa/MTS-Dialog): ID, section_header, section_text, dialogue."""
    dialogue = _text(row, "dialogue", "empty_question")
    header = _text(row, "section_header", "empty_question")
    user = f"Write the {header} section of the clinical note for this conversation.\n\n{dialogue}"
    return _turns(user, _text(row, "section_text", "empty_answer"))
