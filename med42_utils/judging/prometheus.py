"""Prometheus 2's own relative-grading prompt, system prompt, sampling and retries: interface facts.

Prometheus 2 (prometheus-eval/prometheus-7b-v2.0, prometheus-8x7b-v2.0) was trained on these texts; a judge
prompted otherwise is not the judge its paper measured. Carried here as data, exactly as published in
prometheus-eval 0.1.20 (PyPI `prometheus-eval`, file prometheus_eval/prompts.py: REL_SYSTEM_PROMPT, RELATIVE_PROMPT,
RELATIVE_PROMPT_WO_REF; sampling and retries in prometheus_eval/utils.py, batch_completions_with_retries).
The package itself is not a dependency: it requires litellm and `fastchat<0.2` (an unrelated PyPI name, not
FastChat's `fschat`). tests/test_judging_prometheus.py compares these texts with the package's where it is
installed (or unpacked at $PROMETHEUS_EVAL_SRC).

Placement of the system prompt: prometheus-eval sends [system, user] messages to API models and, for vLLM, folds
them into FastChat's "mistral" conversation: "[INST] " + system + "\n" + user + " [/INST]", i.e. the system text
first in the one user turn. chat.fit_roles does the same wherever the judge's own template takes no system turn.
"""
from __future__ import annotations

# prometheus_eval/prompts.py, REL_SYSTEM_PROMPT (0.1.20)
REL_SYSTEM_PROMPT = (
    "You are a fair judge assistant assigned to deliver insightful feedback that compares individual "
    "performances, highlighting how each stands relative to others within the same cohort."
)

# prometheus_eval/prompts.py, RELATIVE_PROMPT (0.1.20): with a reference answer
RELATIVE_PROMPT = """###Task Description:
An instruction (might include an Input inside it), a response to evaluate, a reference answer, and a score rubric representing a evaluation criteria are given.
1. Write a detailed feedback that assess the quality of two responses strictly based on the given score rubric, not evaluating in general.
2. After writing a feedback, choose a better response between Response A and Response B. You should refer to the score rubric.
3. The output format should look as follows: "(write a feedback for criteria) [RESULT] (A or B)"
4. Please do not generate any other opening, closing, and explanations.

###Instruction:
{instruction}

###Response A:
{response_A}

###Response B:
{response_B}

###Reference Answer:
{reference_answer}

###Score Rubric:
{rubric}

###Feedback: """

# prometheus_eval/prompts.py, RELATIVE_PROMPT_WO_REF (0.1.20): without one (the card's questions carry none)
RELATIVE_PROMPT_WO_REF = """###Task Description:
An instruction (might include an Input inside it), a response to evaluate, and a score rubric representing a evaluation criteria are given.
1. Write a detailed feedback that assess the quality of two responses strictly based on the given score rubric, not evaluating in general.
2. After writing a feedback, choose a better response between Response A and Response B. You should refer to the score rubric.
3. The output format should look as follows: "(write a feedback for criteria) [RESULT] (A or B)"
4. Please do not generate any other opening, closing, and explanations.

###Instruction:
{instruction}

###Response A:
{response_A}

###Response B:
{response_B}

###Score Rubric:
{rubric}

###Feedback: """

# prometheus_eval/utils.py, batch_completions_with_retries (0.1.20): the default params and max_retries
OFFICIAL_SAMPLING = {"temperature": 1.0, "top_p": 0.9, "max_new_tokens": 1024, "repetition_penalty": 1.03}
OFFICIAL_MAX_RETRIES = 10
