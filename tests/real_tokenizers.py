"""The real tokenizers the params name, built without the Hub from files that packages on the package index ship
(`make test` downloads and unpacks them into .venv/reference/tokenizers; MED42_TOKENIZER_PACKAGES points there):

- Llama 3 / 3.1: llama_models/llama3/tokenizer.model of Meta's `llama-models` (tiktoken BPE), converted with
  transformers' TikTokenConverter and Meta's own split pattern and 256 special tokens (llama_models/llama3/tokenizer.py);
- Mixtral 8x7B / Prometheus 2 8x7B: mistral_common/data/tokenizer.model.v1 of `mistral-common` (SentencePiece,
  32,000 ids), loaded as the Llama-style tokenizer Mixtral's tokenizer_config.json names.

Nothing from those packages is imported. Without the files the tests skip with the reason; with
MED42_REQUIRE_REAL_TOKENIZERS=1 (.ci/run) they fail instead.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LLAMA3_MODEL = "llama_models/llama3/tokenizer.model"
MISTRAL_V1_MODEL = "mistral_common/data/tokenizer.model.v1"
# Meta's pattern (llama_models/llama3/tokenizer.py, pat_str)
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                  r"\s*[\r\n]+|\s+(?!\S)|\s+")


def llama31_special_tokens() -> list[str]:
    """The 256 special tokens after the 128,000 text tokens, in order, as llama_models/llama3/tokenizer.py names them
    (the Llama 3.1 naming)."""
    named = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|reserved_special_token_1|>",
             "<|finetune_right_pad_id|>", "<|step_id|>", "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>",
             "<|eot_id|>", "<|python_tag|>", "<|image|>"]
    return named + [f"<|reserved_special_token_{2 + i}|>" for i in range(256 - len(named))]


def llama3_special_tokens() -> list[str]:
    """Meta-Llama-3-*-Instruct's naming of the same ids: reserved_special_token_N everywhere but the begin/end of
    text, the header markers (128006/128007) and <|eot_id|> (128009)."""
    named = {0: "<|begin_of_text|>", 1: "<|end_of_text|>", 6: "<|start_header_id|>", 7: "<|end_header_id|>",
             9: "<|eot_id|>"}
    out, n = [], 0
    for i in range(256):
        if i in named:
            out.append(named[i])
        else:
            out.append(f"<|reserved_special_token_{n}|>")
            n += 1
    return out


def packages_dir() -> Path:
    return Path(os.environ.get("MED42_TOKENIZER_PACKAGES") or ROOT / ".venv" / "reference" / "tokenizers")


def require(rel: str) -> Path:
    """The path of a packaged tokenizer file, or a skip (a failure under MED42_REQUIRE_REAL_TOKENIZERS=1)."""
    path = packages_dir() / rel
    missing = [] if path.is_file() else [f"{rel} not under {packages_dir()}"]
    for module in ("tiktoken", "sentencepiece"):
        try:
            __import__(module)
        except ImportError:
            missing.append(f"the {module} package is not installed")
    if missing:
        why = ("real tokenizers unavailable: " + "; ".join(missing) + " (`make test` downloads llama-models and "
               "mistral-common and unpacks them there; or set MED42_TOKENIZER_PACKAGES)")
        if os.environ.get("MED42_REQUIRE_REAL_TOKENIZERS") == "1":
            pytest.fail(why + ", and MED42_REQUIRE_REAL_TOKENIZERS=1 says these tests must run")
        pytest.skip(why)
    return path


def build_llama3(naming: str = "3.1"):
    """A fast Llama 3 tokenizer from Meta's tiktoken file: 128,000 BPE tokens + 256 special tokens, <|begin_of_text|>
    added in front as the published tokenizer.json's post-processor does, eos <|eot_id|> as the Instruct models'
    tokenizer_config.json and generation_config.json say, no pad token (the published Instruct tokenizers have none)."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    specials = llama31_special_tokens() if naming == "3.1" else llama3_special_tokens()
    conv = TikTokenConverter(vocab_file=str(require(LLAMA3_MODEL)), pattern=LLAMA3_PATTERN,
                             extra_special_tokens=specials)
    backend = conv.converted()
    backend.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
                                      special_tokens=[("<|begin_of_text|>", 128000)]),
    ])
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                                   clean_up_tokenization_spaces=True, model_max_length=8192 if naming == "3" else 131072)


def build_mixtral(tmp: Path, chat_template: str):
    """Mixtral-8x7B-Instruct-v0.1's tokenizer: Mistral's v1 SentencePiece model under its usual file name, with the
    tokenizer_config.json fields Mixtral publishes (LlamaTokenizer, <s>/</s>/<unk>, bos added, legacy) and its template."""
    from transformers import AutoTokenizer

    tmp.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(require(MISTRAL_V1_MODEL), tmp / "tokenizer.model")
    (tmp / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
        "add_bos_token": True, "add_eos_token": False, "legacy": True, "model_max_length": 32768,
        "chat_template": chat_template,
    }))
    return AutoTokenizer.from_pretrained(tmp)
