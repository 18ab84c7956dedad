"""Prometheus 2's own prompt, sampling, retries and result forms at the sizes whose judge is Prometheus 2, and the
judge path end to end on CPU through a Prometheus-format (Mixtral) chat template.

prometheus-eval is not a dependency (it requires litellm and an unrelated `fastchat<0.2`); its texts are carried in
judging/prometheus.py and compared here with the package's wherever it is installed or unpacked at
$PROMETHEUS_EVAL_SRC (e.g. `pip download --no-deps prometheus-eval` then unzip).
"""
from __future__ import annotations

import copy
import importlib.util
import json
import os
from pathlib import Path

import pytest

from med42_utils.judging import prometheus
from med42_utils.judging.parse import parse_verdict
from med42_utils.judging.prompt import CARD_RUBRIC_BODY, RUBRIC, build_prometheus_prompt, judge_messages
from med42_utils.params import load_params

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_SIZES = ("8b", "70b", "workshop")
Q, A, B = "What lowers LDL?", "Statins lower LDL cholesterol.", "Exercise helps."


def _package_file(name: str) -> Path | None:
    src = os.environ.get("PROMETHEUS_EVAL_SRC")
    if src and (Path(src) / "prometheus_eval" / name).exists():
        return Path(src) / "prometheus_eval" / name
    spec = importlib.util.find_spec("prometheus_eval")  # finds the package without importing it (it needs vllm)
    if spec and spec.submodule_search_locations:
        path = Path(list(spec.submodule_search_locations)[0]) / name
        return path if path.exists() else None
    return None


def _load(name: str):
    path = _package_file(name)
    if path is None:
        why = "prometheus-eval is not installed here (set PROMETHEUS_EVAL_SRC to an unpacked wheel; `make test` does)"
        if os.environ.get("MED42_REQUIRE_PROMETHEUS_EVAL") == "1":
            pytest.fail(why + ", and MED42_REQUIRE_PROMETHEUS_EVAL=1 says these comparisons must run")
        pytest.skip(why)
    spec = importlib.util.spec_from_file_location(f"_official_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_carried_texts_equal_the_packages():
    official = _load("prompts.py")
    assert prometheus.REL_SYSTEM_PROMPT == official.REL_SYSTEM_PROMPT
    assert prometheus.RELATIVE_PROMPT == official.RELATIVE_PROMPT
    assert prometheus.RELATIVE_PROMPT_WO_REF == official.RELATIVE_PROMPT_WO_REF


def test_carried_sampling_and_retries_equal_the_packages():
    import inspect

    _load("prompts.py")  # skips (or fails where required) without the package
    src = _package_file("utils.py")
    text = src.read_text(encoding="utf-8")
    assert '"repetition_penalty": 1.03' in text and '"temperature": 1.0' in text and '"top_p": 0.9' in text
    assert '"max_tokens": 1024' in text and "max_retries: int = 10" in text
    assert prometheus.OFFICIAL_SAMPLING["repetition_penalty"] == 1.03 and prometheus.OFFICIAL_MAX_RETRIES == 10
    assert inspect.isfunction(_load("parser.py")._parse_output_relative)


@pytest.mark.parametrize("size", PROMETHEUS_SIZES)
def test_gpu_sizes_send_prometheus_own_prompt_sampling_and_retries(size):
    p = load_params(size)
    j = p.judge
    assert j.model.startswith("prometheus-eval/prometheus-") and j.prompt == "prometheus2" and not j.allow_ties
    s = j.judge_sampling
    assert (s.temperature, s.top_p, s.max_new_tokens, s.repetition_penalty) == (1.0, 0.9, 1024, 1.03)
    assert s.top_k == 0 and j.max_retries == prometheus.OFFICIAL_MAX_RETRIES
    conv = judge_messages(Q, A, B, style=j.prompt)
    assert conv == [{"role": "system", "content": prometheus.REL_SYSTEM_PROMPT},
                    {"role": "user", "content": prometheus.RELATIVE_PROMPT_WO_REF.format(
                        instruction=Q, response_A=A, response_B=B, rubric=CARD_RUBRIC_BODY)}]


def test_the_prompt_equals_prometheus_eval_relative_grade_with_the_cards_rubric():
    """What PrometheusEval.relative_grade builds (same .format call) with the card's rubric dropped in word for word:
    the card's block under the template's own '###Score Rubric:' heading."""
    official = _load("prompts.py")
    text = build_prometheus_prompt(Q, A, B)
    assert text == official.RELATIVE_PROMPT_WO_REF.format(instruction=Q, response_A=A, response_B=B,
                                                          rubric=CARD_RUBRIC_BODY, reference_answer=None)
    assert build_prometheus_prompt(Q, A, B, "ref") == official.RELATIVE_PROMPT.format(
        instruction=Q, response_A=A, response_B=B, rubric=CARD_RUBRIC_BODY, reference_answer="ref")


def test_the_cards_rubric_goes_in_word_for_word():
    text = build_prometheus_prompt(Q, A, B)
    assert RUBRIC == "### Score Rubric:\n" + CARD_RUBRIC_BODY
    assert "###Score Rubric:\n" + CARD_RUBRIC_BODY + "\n\n###Feedback: " in text
    assert text.count("Score Rubric") == 1
    card = ROOT.parent.parent / "shared/seeds/med42-v2-model-card.md"
    if card.exists():
        assert CARD_RUBRIC_BODY in card.read_text(encoding="utf-8")


def test_prometheus_prompt_has_no_tie_and_says_so():
    with pytest.raises(ValueError, match="allow_ties: false"):
        judge_messages(Q, A, B, allow_ties=True, style="prometheus2")
    with pytest.raises(ValueError, match="style"):
        judge_messages(Q, A, B, style="mine")


OFFICIAL_FORMS = [
    ("Feedback text. [RESULT] A", "A"),
    ("Response B is more complete. [RESULT] B", "B"),
    ("Both are relevant, but B covers risks.\n[RESULT: B]", "B"),
    ("A is clearer. [RESULT: A]", "A"),
    ("The first answer is precise. [Response A]", "A"),
    ("Judging by safety... [Response B]", "B"),
    ("Better on completeness.\nResult: A", "A"),
    ("Better on completeness.\nResult B", "B"),
    ("The feedback... [Result] Response B", "B"),
    ("The feedback... [Result: A", "A"),
    ("feedback [result] b", "B"),
]


@pytest.mark.parametrize("text,winner", OFFICIAL_FORMS)
def test_parser_accepts_the_official_forms(text, winner):
    p = parse_verdict(text)
    assert p.winner == winner and p.reason is None and "[" not in p.feedback[-3:]


@pytest.mark.parametrize("text,winner", OFFICIAL_FORMS)
def test_parser_agrees_with_prometheus_evals_own(text, winner):
    official = _load("parser.py")
    assert official._parse_output_relative(text)[1] == winner


@pytest.mark.parametrize("text", ["I prefer [Response A] for its tone, but B is safer overall.",
                                  "Result: the answers are similar", "no verdict here", ""])
def test_parser_still_refuses_what_is_not_a_verdict(text):
    assert parse_verdict(text).winner is None


# ---- end to end on CPU: 06's judging through a Prometheus-format (Mixtral) template ----

def _mixtral_template() -> str:
    fixture = json.loads((ROOT / "tests/fixtures/chat_templates/published.json").read_text(encoding="utf-8"))
    return fixture["templates"]["mistral_alternating"]["chat_template"]


def _judge_06(tiny_params, tiny_model_path, backend: str, max_new_tokens: int, max_retries: int):
    """06's judging (make_judge, judge_all, to_battles) at 8b's judge settings, on the tiny model whose tokenizer
    carries Mixtral's published template. Cut for CPU minutes, and only these: max_new_tokens and max_retries."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from med42_utils.judging.battles import judge_all, judgments_frame, to_battles
    from med42_utils.judging.cache import JudgmentCache
    from med42_utils.judging.judge import make_judge

    p = tiny_params.model_copy(deep=True)
    p.judge = load_params("8b").judge.model_copy(deep=True)
    p.judge.backend = backend
    p.judge.judge_sampling.max_new_tokens = max_new_tokens
    p.judge.max_retries = max_retries
    tok = AutoTokenizer.from_pretrained(tiny_model_path)
    tok.chat_template = _mixtral_template()
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path).eval()
    judge = make_judge(p, model=model, tokenizer=tok, batch_size=4)
    questions = [{"id": "q1", "question": "What lowers LDL?"}, {"id": "q2", "question": "Signs of sepsis?"}]
    answers = {"base": {"q1": "Diet.", "q2": "Fever."},
               "sft": {"q1": "Statins lower LDL.", "q2": "Fever, fast heart rate, low blood pressure."}}
    return judge, tok, questions, answers, judge_all, judgments_frame, to_battles, JudgmentCache


def test_06_judging_through_mixtral_template_records_parsed_verdicts(tiny_params, tiny_model_path, tmp_path):
    """The logprob judge reads P('A') vs P('B') after Prometheus' prompt and '[RESULT] ': every pair parsed."""
    judge, tok, qs, ans, judge_all, frame, to_battles, Cache = _judge_06(tiny_params, tiny_model_path, "logprob",
                                                                         1024, 10)
    assert judge.style == "prometheus2" and judge.name.endswith("+prometheus2")
    from med42_utils.judging.judge import _prompt_texts

    text = _prompt_texts(tok, [judge.messages(("q", "a", "b", None))])[0]
    assert text.startswith(f"{tok.bos_token}[INST] {prometheus.REL_SYSTEM_PROMPT}\n###Task Description:")
    assert len(tok(text, add_special_tokens=False)["input_ids"]) < judge.max_length  # nothing cut from the left
    cache = Cache(tmp_path / "judgments.jsonl")
    counts = judge_all(qs, ans, judge, cache, ["base", "sft"], batch_size=4)
    df = frame(cache, judge.name)
    battles, dropped = to_battles(df)
    assert counts["judged_now"] == 4 and len(battles) == 4 and len(dropped) == 0
    assert set(df["winner_pos"]) <= {"A", "B"}


def test_06_generative_judge_through_mixtral_template_never_errors_per_pair(tiny_params, tiny_model_path, tmp_path):
    """Generation with Prometheus' sampling (T 1.0, top_p 0.9, repetition_penalty 1.03): the untrained tiny model
    writes no verdict, so each pair is counted unparseable with the parser's reason, never a backend error."""
    judge, tok, qs, ans, judge_all, frame, to_battles, Cache = _judge_06(tiny_params, tiny_model_path,
                                                                         "transformers", 8, 1)
    assert judge.sampling["repetition_penalty"] == 1.03 and judge.style == "prometheus2"
    cache = Cache(tmp_path / "judgments.jsonl")
    judge_all(qs, ans, judge, cache, ["base", "sft"], batch_size=4)
    df = frame(cache, judge.name)
    assert len(df) == 4
    assert not df["reason"].fillna("").str.startswith("backend error").any(), df["reason"].tolist()
    battles, dropped = to_battles(df)
    assert len(battles) + int(dropped["judgments"].sum() if len(dropped) else 0) == 4
    parsed = df["winner_pos"].notna()
    assert (df.loc[~parsed, "attempts"] == 2).all()  # unparseable ones were asked again (max_retries 1 here)


def test_repetition_penalty_reaches_generate(tiny_params):
    from med42_utils.judging.judge import _hf_sampling

    s = load_params("8b").judge.judge_sampling.model_dump()
    assert _hf_sampling(s)["repetition_penalty"] == 1.03
    assert "repetition_penalty" not in _hf_sampling(tiny_params.judge.judge_sampling.model_dump())
    assert copy.deepcopy(s) == s
