"""The Llama 3 Instruct chat template (reused from TRL) and the model card's system prompt."""
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


def with_system_prompt(messages: list[dict], system_prompt: str = SYSTEM_PROMPT) -> list[dict]:
    """Prepend the system prompt unless the conversation already has one."""
    if messages and messages[0].get("role") == "system":
        return list(messages)
    return [{"role": "system", "content": system_prompt}, *messages]


def render(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> str:
    """The exact text the model sees for a conversation."""
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
