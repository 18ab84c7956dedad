"""Every conversation each stage sends, rendered through the published chat template of every model a params file
names or the README suggests (tests/fixtures/chat_templates/published.json, sources named there).

Roles are found by rendering (chat.takes_system_turn): Mistral/Mixtral's 2023 template raises on a system turn, so
the system text must reach the model inside the first user turn; Llama 3's keeps its system turn.
"""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import jinja2
import pytest

from med42_utils import chat
from med42_utils.chat import SYSTEM_PROMPT, fit_roles, render, takes_system_turn, with_system_prompt
from med42_utils.dpo.scorers import scorer_conversation
from med42_utils.judging.answers import _conv as answer_conversation
from med42_utils.judging.prometheus import REL_SYSTEM_PROMPT
from med42_utils.judging.prompt import CARD_RUBRIC_BODY, JUDGE_SYSTEM_PROMPT, judge_messages

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = json.loads((ROOT / "tests/fixtures/chat_templates/published.json").read_text(encoding="utf-8"))

QUESTION = "A 54-year-old man has crushing chest pain for 40 minutes. What is the first test to order?"
ANSWER_A = "A 12-lead ECG within ten minutes of arrival."
ANSWER_B = "Troponin, then a chest X-ray."
REFERENCE = "An ECG within 10 minutes."


def template_text(name: str) -> str:
    t = FIXTURE["templates"][name]
    if "trl" in t:
        import trl

        return (Path(trl.__file__).parent / "chat_templates" / t["trl"]).read_text(encoding="utf-8")
    return t["chat_template"]


TEMPLATES = sorted(FIXTURE["templates"])


@pytest.fixture(scope="module")
def base_tokenizer(tiny_model_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_path)


def with_template(tokenizer, name: str):
    tok = copy.deepcopy(tokenizer)
    tok.chat_template = template_text(name)
    return tok


# The conversations each stage sends, and the texts each must carry to the model.
def stage_conversations():
    out = []
    for style, ties, ref in (("prometheus2", False, None), ("prometheus2", False, REFERENCE), ("course", False, None),
                             ("course", True, REFERENCE)):
        system = REL_SYSTEM_PROMPT if style == "prometheus2" else JUDGE_SYSTEM_PROMPT
        must = [system, CARD_RUBRIC_BODY, QUESTION, ANSWER_A, ANSWER_B] + ([REFERENCE] if ref else [])
        out.append((f"06 judge {style}{'+ties' if ties else ''}{'+ref' if ref else ''}",
                    judge_messages(QUESTION, ANSWER_A, ANSWER_B, ref, allow_ties=ties, style=style), True, must))
    out.append(("06 answers", answer_conversation(QUESTION), True, [SYSTEM_PROMPT, QUESTION]))
    out.append(("04 on-policy sampling", with_system_prompt([{"role": "user", "content": QUESTION}]), True,
                [SYSTEM_PROMPT, QUESTION]))
    out.append(("04 on-policy reward scorer", scorer_conversation(QUESTION, ANSWER_A), False, [QUESTION, ANSWER_A]))
    return out


STAGES = stage_conversations()


def test_fixture_names_every_model_params_and_readme_name():
    """Every Hub model id in params/*.yaml (values and comments), the README and docs/ has its published template here."""
    text = "\n".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "params").glob("*.yaml")))
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text += doc.read_text(encoding="utf-8")
    # model ids only (these orgs also publish datasets, e.g. prometheus-eval/Feedback-Collection)
    model_id = r"\b((?:meta-llama/|prometheus-eval/prometheus-|Skywork/Skywork-Reward-|mistralai/)[A-Za-z0-9_.-]+[A-Za-z0-9])"
    named = set(re.findall(model_id, text))
    assert {"prometheus-eval/prometheus-8x7b-v2.0", "prometheus-eval/prometheus-7b-v2.0",
            "meta-llama/Meta-Llama-3-8B-Instruct", "Skywork/Skywork-Reward-Llama-3.1-8B-v0.2"} <= named
    missing = sorted(named - set(FIXTURE["models"]))
    assert not missing, f"no published chat template fixture for {missing}: add it to published.json"
    for model, entry in FIXTURE["models"].items():
        assert entry["templates"] and set(entry["templates"]) <= set(FIXTURE["templates"]), model
    for name, t in FIXTURE["templates"].items():
        assert t["source"], name
        assert "{" in template_text(name), name


def test_mistral_template_refuses_the_system_turn_the_judge_used_to_send(base_tokenizer):
    """The failure at 8b/70b: the raw [system, user] judge conversation through Mixtral's template raises."""
    tok = with_template(base_tokenizer, "mistral_alternating")
    conv = judge_messages(QUESTION, ANSWER_A, ANSWER_B, style="prometheus2")
    with pytest.raises(jinja2.exceptions.TemplateError, match="Conversation roles must alternate"):
        tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)


@pytest.mark.parametrize("name", TEMPLATES)
def test_takes_system_turn_is_found_by_rendering(base_tokenizer, name):
    tok = with_template(base_tokenizer, name)
    expected = FIXTURE["templates"][name].get("takes_system_turn", True)
    assert takes_system_turn(tok) is expected
    assert takes_system_turn(tok) is expected  # remembered per template text
    tok.chat_template = template_text("mistral_alternating")  # a new template is probed again
    assert takes_system_turn(tok) is False


def test_a_template_that_drops_the_system_text_counts_as_no_system_turn(base_tokenizer):
    tok = copy.deepcopy(base_tokenizer)
    tok.chat_template = ("{% for m in messages %}{% if m['role'] != 'system' %}<{{ m['role'] }}>{{ m['content'] }}"
                         "{% endif %}{% endfor %}")
    assert takes_system_turn(tok) is False
    out = render(tok, [{"role": "system", "content": "SYS"}, {"role": "user", "content": "hi"}])
    assert out == "<user>SYS\nhi"


@pytest.mark.parametrize("name", TEMPLATES)
@pytest.mark.parametrize("stage", STAGES, ids=[s[0] for s in STAGES])
def test_every_stage_conversation_renders_through_every_template(base_tokenizer, name, stage):
    label, conv, generation_prompt, must = stage
    tok = with_template(base_tokenizer, name)
    text = render(tok, conv, add_generation_prompt=generation_prompt)
    for piece in must:
        assert piece in text, f"{label} through {name}: {piece[:50]!r} missing from the rendered text"
    if not takes_system_turn(tok) and conv[0]["role"] == "system":
        # the system text sits first in the one user turn, as prometheus-eval's own Mistral prompt places it
        assert f"[INST] {conv[0]['content']}{chat.SYSTEM_JOIN}{conv[1]['content']} [/INST]" in text


def test_prometheus_prompt_through_mixtral_template_is_the_official_layout(base_tokenizer):
    """prometheus-eval (vLLM path) builds FastChat's 'mistral' prompt: '[INST] ' + system + '\\n' + user + ' [/INST]'
    after the tokenizer's BOS. Through Mixtral's own template with the system text fitted, the judge sees the same."""
    tok = with_template(base_tokenizer, "mistral_alternating")
    conv = judge_messages(QUESTION, ANSWER_A, ANSWER_B, style="prometheus2")
    text = render(tok, conv, add_generation_prompt=True)
    assert text == f"{tok.bos_token}[INST] {REL_SYSTEM_PROMPT}\n{conv[1]['content']} [/INST]"


def test_fit_roles_leaves_llama_conversations_alone(base_tokenizer):
    tok = with_template(base_tokenizer, "llama3")
    conv = answer_conversation(QUESTION)
    assert fit_roles(tok, conv) == conv
    assert "<|start_header_id|>system<|end_header_id|>" in render(tok, conv)


def test_05_lm_eval_keeps_the_system_prompt_on_a_template_without_system_turn(base_tokenizer, tiny_model_path):
    """lm-eval drops the system message where a template raises on it; fit_lm_roles puts it in the user turn."""
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoModelForCausalLM

    from med42_utils.benchmarks.run import fit_lm_roles

    history = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": QUESTION}]
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    for name in TEMPLATES:
        tok = with_template(base_tokenizer, name)
        lm = HFLM(pretrained=model, tokenizer=tok, batch_size=1)
        plain = lm.apply_chat_template(list(history))
        fitted = fit_lm_roles(lm).apply_chat_template(list(history))
        assert fit_lm_roles(lm) is lm  # wrapping twice changes nothing
        assert SYSTEM_PROMPT in fitted and QUESTION in fitted, name
        if FIXTURE["templates"][name].get("takes_system_turn", True):
            assert fitted == plain, name
        else:
            assert SYSTEM_PROMPT not in plain, name  # what lm-eval alone would send
