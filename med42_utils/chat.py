"""The Llama 3 Instruct chat template (reused from TRL), the model card's system prompt, and roles that fit
each model's own template.

Whether a template takes a system turn is found by rendering it, never assumed: Mistral-7B-Instruct-v0.2's and
Mixtral-8x7B-Instruct-v0.1's published templates raise on a system turn ("Conversation roles must alternate
user/assistant/..."), Llama 3's keep it. Where a template raises, or renders without the system text, the system
text goes into the first user turn, separated by a newline as prometheus-eval's own Mistral prompt places it.
"""
from __future__ import annotations

from trl.chat_template_utils import llama3_chat_template, llama3_training_chat_template

# Verbatim from the model card's "Run the model" example (../shared/seeds/med42-v2-model-card.md).
SYSTEM_PROMPT = (
    "You are a helpful, respectful and honest medical assistant. You are a second version of Med42 "
    "developed by the AI team at M42, UAE. "
    "Always answer as helpfully as possible, while being safe. "
    "Your answers should not include any harmful, unethical, racist, sexist, toxic, dangerous, or illegal content. "
    "Please ensure that your responses are socially unbiased and positive in nature. If a question does not make "
    "any sense, or is not factually coherent, explain why instead of answering something not correct. "
    "If you don\u2019t know the answer to a question, please don\u2019t share false information."
)

# The official Llama 3 Instruct template, and its variant with {% generation %} markers that
# `return_assistant_tokens_mask=True` (TRL's assistant_only_loss) needs.
CHAT_TEMPLATE = llama3_chat_template
TRAINING_CHAT_TEMPLATE = llama3_training_chat_template

LLAMA3_SPECIAL_TOKENS = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>",
    "<|reserved_special_token_2|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eom_id|>",
    "<|eot_id|>",
    "<|python_tag|>",
]


def stop_ids(tokenizer) -> list[int]:
    """The ids generation stops at: eos and Llama 3's <|eot_id|> (a vocabulary without it maps it to the unknown
    token, which is no stop id), for 06's answers and the judge alike."""
    ids = {tokenizer.eos_token_id}
    eot = tokenizer.convert_tokens_to_ids("<|eot_id|>")
    if isinstance(eot, int) and eot != tokenizer.unk_token_id:
        ids.add(eot)
    return [i for i in ids if i is not None]


def with_system_prompt(messages: list[dict], system_prompt: str = SYSTEM_PROMPT) -> list[dict]:
    """Prepend the system prompt unless the conversation already has one."""
    if messages and messages[0].get("role") == "system":
        return list(messages)
    return [{"role": "system", "content": system_prompt}, *messages]


SYSTEM_JOIN = "\n"  # system text + this + first user text, where a template takes no system turn
_PROBE = "system-probe-7f3a"


def _render_raw(tokenizer, messages: list[dict], add_generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def takes_system_turn(tokenizer) -> bool:
    """True when the tokenizer's chat template renders a system turn and keeps its text (found by rendering).

    A template that raises (jinja's raise_exception) or silently drops the system text answers False.
    Remembered per template text on the tokenizer.
    """
    template = getattr(tokenizer, "chat_template", None)
    cache = getattr(tokenizer, "_med42_takes_system", None)
    if cache is not None and cache[0] == template:
        return cache[1]
    probe = [{"role": "system", "content": _PROBE}, {"role": "user", "content": "hello"}]
    try:
        ok = _PROBE in _render_raw(tokenizer, probe, True)
    except Exception:  # jinja2 TemplateError from raise_exception, or any template failure on a system turn
        ok = False
    try:
        tokenizer._med42_takes_system = (template, ok)
    except AttributeError:  # pragma: no cover - a tokenizer that refuses attributes: probe again next time
        pass
    return ok


def merge_system(messages: list[dict]) -> list[dict]:
    """The conversation without system turns: their text goes before the first user turn's (SYSTEM_JOIN)."""
    system = [m["content"] for m in messages if m.get("role") == "system"]
    rest = [dict(m) for m in messages if m.get("role") != "system"]
    if not system:
        return rest
    text = SYSTEM_JOIN.join(system)
    for m in rest:
        if m.get("role") == "user":
            m["content"] = text + SYSTEM_JOIN + m["content"]
            return rest
    return [{"role": "user", "content": text}, *rest]


def fit_roles(tokenizer, messages: list[dict]) -> list[dict]:
    """The conversation in roles the tokenizer's template takes: unchanged where it takes a system turn,
    else with the system text in the first user turn."""
    if not any(m.get("role") == "system" for m in messages) or takes_system_turn(tokenizer):
        return list(messages)
    return merge_system(messages)


def render(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> str:
    """The exact text the model sees for a conversation, in roles its template takes (fit_roles)."""
    return _render_raw(tokenizer, fit_roles(tokenizer, messages), add_generation_prompt)
