"""The tiny offline model: deterministic build, Llama 3 tokens, official template, assistant mask."""
from __future__ import annotations

import json

import pytest
import torch

from med42_utils.chat import CHAT_TEMPLATE, LLAMA3_SPECIAL_TOKENS, SYSTEM_PROMPT, TRAINING_CHAT_TEMPLATE, render, with_system_prompt
from med42_utils.models import load_model_and_tokenizer, resolve_model
from med42_utils.tiny_model import build_model, build_tokenizer, ensure_tiny_model, resolve_base_model

CONV = [
    {"role": "user", "content": "What are the symptoms of diabetes?"},
    {"role": "assistant", "content": "Polyuria, polydipsia and fatigue."},
]


def test_build_is_deterministic(tiny_params):
    cfg = tiny_params.model.tiny
    t1, t2 = build_tokenizer(cfg.vocab_size), build_tokenizer(cfg.vocab_size)
    assert t1.get_vocab() == t2.get_vocab()
    text = "A 54-year-old man presents with chest pain radiating to the left arm."
    assert t1(text).input_ids == t2(text).input_ids
    m1, m2 = build_model(cfg, t1), build_model(cfg, t2)
    s1, s2 = m1.state_dict(), m2.state_dict()
    assert s1.keys() == s2.keys() and all(torch.equal(s1[k], s2[k]) for k in s1)
    other = build_model(cfg.model_copy(update={"seed": cfg.seed + 1}), t1)
    assert not torch.equal(other.state_dict()["model.embed_tokens.weight"], s1["model.embed_tokens.weight"])


def test_size_and_architecture(tiny_model_path, tiny_params):
    model, tok = load_model_and_tokenizer(tiny_params, tiny_model_path)
    n = sum(p.numel() for p in model.parameters())
    assert 100_000 <= n <= 5_000_000
    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.config.vocab_size == len(tok)
    info = json.loads(open(f"{tiny_model_path}/build_info.json").read())
    assert info["parameters"] == n


def test_llama3_special_tokens_are_single_tokens(tiny_model_path, tiny_params):
    _, tok = load_model_and_tokenizer(tiny_params, tiny_model_path)
    for special in LLAMA3_SPECIAL_TOKENS:
        ids = tok(special, add_special_tokens=False).input_ids
        assert len(ids) == 1 and tok.convert_ids_to_tokens(ids[0]) == special
    assert tok.bos_token == "<|begin_of_text|>" and tok.eos_token == "<|eot_id|>"
    assert tok("hello").input_ids[0] == tok.bos_token_id  # BOS added like Llama 3's tokenizer
    assert tok.decode(tok("The patient has diabetes.", add_special_tokens=False).input_ids) == "The patient has diabetes."


def test_chat_template_renders_llama3_format(tiny_model_path, tiny_params):
    _, tok = load_model_and_tokenizer(tiny_params, tiny_model_path)
    assert tok.chat_template == CHAT_TEMPLATE
    text = render(tok, with_system_prompt(CONV), add_generation_prompt=False)
    assert text == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n" + SYSTEM_PROMPT + "<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nWhat are the symptoms of diabetes?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nPolyuria, polydipsia and fatigue.<|eot_id|>"
    )
    prompt = render(tok, CONV[:1], add_generation_prompt=True)
    assert prompt.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_training_template_masks_assistant_tokens_only(tiny_model_path, tiny_params):
    _, tok = load_model_and_tokenizer(tiny_params, tiny_model_path)
    enc = tok.apply_chat_template(
        with_system_prompt(CONV), chat_template=TRAINING_CHAT_TEMPLATE, return_dict=True, return_assistant_tokens_mask=True
    )
    masked = [t for t, m in zip(enc["input_ids"], enc["assistant_masks"]) if m]
    assert tok.decode(masked) == "Polyuria, polydipsia and fatigue.<|eot_id|>"
    # the training template renders the same tokens as the inference template
    assert enc["input_ids"] == tok.apply_chat_template(with_system_prompt(CONV), return_dict=True)["input_ids"]


def test_system_prompt_is_the_model_cards(repo_seed_card):
    assert SYSTEM_PROMPT.replace("\u2019", "'") in repo_seed_card.replace("\u2019", "'").replace('"\n"', "")


@pytest.fixture
def repo_seed_card():
    from med42_utils.paths import repo_root

    for cand in (repo_root().parent / "shared" / "seeds", repo_root() / "shared" / "seeds"):
        f = cand / "med42-v2-model-card.md"
        if f.is_file():
            # the card writes the prompt as adjacent Python string literals: join them
            import re

            return re.sub(r'"\s*\n\s*"', "", f.read_text())
    pytest.skip("shared/seeds not checked out beside the repo")


def test_cache_reuses_and_rebuilds(tmp_path, tiny_params):
    d = ensure_tiny_model(tiny_params.model.tiny, tmp_path / "m")
    stamp = (d / "model.safetensors").stat().st_mtime_ns
    assert ensure_tiny_model(tiny_params.model.tiny, tmp_path / "m") == d
    assert (d / "model.safetensors").stat().st_mtime_ns == stamp
    ensure_tiny_model(tiny_params.model.tiny, tmp_path / "m", rebuild=True)
    assert (d / "config.json").is_file()


def test_gpu_sizes_resolve_to_hub_ids():
    from med42_utils.params import load_params

    assert resolve_base_model(load_params("8b")) == "meta-llama/Meta-Llama-3-8B-Instruct"
    assert resolve_base_model(load_params("70b")) == "meta-llama/Meta-Llama-3-70B-Instruct"


def test_missing_stage_names_the_notebook(tiny_params):
    from med42_utils.manifest import StageMissingError

    with pytest.raises(StageMissingError, match="03_sft.ipynb"):
        resolve_model(tiny_params, "no-such-run", "sft")
    with pytest.raises(StageMissingError, match="04_dpo.ipynb"):
        resolve_model(tiny_params, "no-such-run", "dpo_round2")
    with pytest.raises(ValueError, match="valid stages: base, sft, dpo_round1"):
        resolve_model(tiny_params, "no-such-run", "dpo_round9")
