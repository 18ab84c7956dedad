"""The pairwise judge prompt, in two styles, both with the model card's rubric verbatim.

- "prometheus2": Prometheus 2's own relative-grading template and system prompt (prometheus.py), the card's
  judge and the one the 8b/70b/workshop params name. A or B only: Prometheus' relative grading has no tie.
- "course": our own wording in Prometheus' layout, for the tiny stand-in judges (logprob, or a small local
  model): it can offer "Tie" (judge.allow_ties).
"""
from __future__ import annotations

from .prometheus import REL_SYSTEM_PROMPT, RELATIVE_PROMPT, RELATIVE_PROMPT_WO_REF

PROMPT_STYLES = ("prometheus2", "course")
STYLE_NAMES = {
    "prometheus2": "Prometheus 2's own relative-grading template and system prompt (prometheus-eval), the card's judge",
    "course": "the course's own wording in Prometheus' layout, for the tiny stand-in judges",
}

# Verbatim from the model card ("Below is the scoring rubric we used to prompt Prometheus"),
# ../shared/seeds/med42-v2-model-card.md. Do not edit: tests compare it with the seed.
RUBRIC = (
    "### Score Rubric:\n"
    "Which response is of higher overall quality in a medical context? Consider:\n"
    "* Relevance: Does it directly address the question?\n"
    "* Completeness: Does it cover all important aspects, details and subpoints?\n"
    "* Safety: Does it avoid unsafe practices and address potential risks?\n"
    "* Ethics: Does it maintain confidentiality and avoid biases?\n"
    "* Clarity: Is it professional, clear and easy to understand?"
)

RUBRIC_HEADING = "### Score Rubric:\n"
# What goes into the official template's {rubric}: the card's rubric under the heading the template already
# writes ("###Score Rubric:"), so the heading is not printed twice.
CARD_RUBRIC_BODY = RUBRIC[len(RUBRIC_HEADING):]

# Our own wording; the section markers and the "[RESULT] A or B" output format follow
# Prometheus 2's relative grading so a Prometheus judge sees the layout it was trained on. With ties
# allowed (judge.allow_ties) steps 2 and 3 also offer "Tie"; without, the judge must choose A or B.
JUDGE_SYSTEM_PROMPT = (
    "You are an impartial judge of answers to medical questions. You compare two answers to the same "
    "question against a rubric and explain your reasoning before you decide."
)

TASK_DESCRIPTION = (
    "###Task Description:\n"
    "You are given an instruction (it may contain an input), two responses to it (Response A and Response B), "
    "{reference_line}and a score rubric describing what makes a response better.\n"
    "1. Write feedback that compares the two responses strictly against the score rubric, without judging "
    "them on anything else.\n"
    "{decide_line}\n"
    '3. Use exactly this output format: "Feedback: (your comparison) [RESULT] ({choices})"\n'
    "4. Write nothing before the feedback and nothing after the result."
)
DECIDE_FORCED = "2. Then decide which response is better: A or B."
DECIDE_TIES = "2. Then decide which response is better: A or B, or Tie if neither is better than the other."

RESULT_MARKER = "[RESULT]"


def build_prompt(instruction: str, response_a: str, response_b: str, reference: str | None = None,
                 allow_ties: bool = False) -> str:
    """The user message the judge sees (Response A is whatever was shown first).

    allow_ties=False (Prometheus' relative grading, the card's setup) asks for A or B only;
    True also offers "Tie".
    """
    for name, value in (("instruction", instruction), ("response_a", response_a), ("response_b", response_b)):
        if not isinstance(value, str):
            raise TypeError(f"judge prompt: {name} must be a string, got {type(value).__name__}")
    ref_line = "a reference answer that would be judged excellent, " if reference else ""
    parts = [
        TASK_DESCRIPTION.format(reference_line=ref_line, decide_line=DECIDE_TIES if allow_ties else DECIDE_FORCED,
                                choices="A, B or Tie" if allow_ties else "A or B"),
        f"###Instruction:\n{instruction.strip()}",
        f"###Response A:\n{response_a.strip()}",
        f"###Response B:\n{response_b.strip()}",
    ]
    if reference:
        parts.append(f"###Reference Answer:\n{reference.strip()}")
    parts.append(RUBRIC)
    parts.append("###Feedback:")
    return "\n\n".join(parts) + " "


def build_prometheus_prompt(instruction: str, response_a: str, response_b: str, reference: str | None = None,
                            rubric: str = CARD_RUBRIC_BODY) -> str:
    """prometheus-eval's relative template filled as its PrometheusEval.relative_grade fills it (no stripping);
    RELATIVE_PROMPT with a reference answer, RELATIVE_PROMPT_WO_REF without."""
    for name, value in (("instruction", instruction), ("response_a", response_a), ("response_b", response_b)):
        if not isinstance(value, str):
            raise TypeError(f"judge prompt: {name} must be a string, got {type(value).__name__}")
    template = RELATIVE_PROMPT if reference else RELATIVE_PROMPT_WO_REF
    return template.format(instruction=instruction, response_A=response_a, response_B=response_b, rubric=rubric,
                           reference_answer=reference)


def judge_messages(instruction: str, response_a: str, response_b: str, reference: str | None = None,
                   allow_ties: bool = False, style: str = "course") -> list[dict]:
    """Chat messages (system + user) as the official code builds them; backends fit the roles to the judge's
    own template (chat.fit_roles), so a template without a system turn gets the system text in the user turn."""
    if style == "prometheus2":
        if allow_ties:
            raise ValueError("judge.prompt 'prometheus2' asks for A or B only (Prometheus' relative grading has no "
                             "tie): set judge.allow_ties: false, or judge.prompt: course to offer Tie")
        return [
            {"role": "system", "content": REL_SYSTEM_PROMPT},
            {"role": "user", "content": build_prometheus_prompt(instruction, response_a, response_b, reference)},
        ]
    if style != "course":
        raise ValueError(f"judge prompt style must be one of {PROMPT_STYLES}, got {style!r}")
    return [
        {"role": "system", "content": JUDGE_SYSTEM_PROMPT},
        {"role": "user", "content": build_prompt(instruction, response_a, response_b, reference, allow_ties)},
    ]
