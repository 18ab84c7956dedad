"""The tiny offline model: a seeded LlamaForCausalLM and a byte-level BPE tokenizer with Llama 3's
special tokens and chat template, built locally so size=tiny never needs the Hub."""
from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from importlib import metadata
from pathlib import Path

from .chat import CHAT_TEMPLATE, LLAMA3_SPECIAL_TOKENS
from .params import Params
from .params.base import TinyModelConfig
from .paths import RESOURCES, outputs_root

CORPUS = RESOURCES / "tiny_corpus.txt"
BUILD_INFO = "build_info.json"
# Llama 3's pre-tokenizer split (its tokenizer.json), then byte-level encoding of each piece.
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def build_tokenizer(vocab_size: int, corpus: Path = CORPUS):
    """Train a byte-level BPE on the bundled corpus and wrap it like Llama 3's tokenizer."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=LLAMA3_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
        show_progress=False,
    )
    tok.train_from_iterator(corpus.read_text(encoding="utf-8").splitlines(), trainer)
    bos = "<|begin_of_text|>"
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos,
        eos_token="<|eot_id|>",
        pad_token="<|finetune_right_pad_id|>",
        chat_template=CHAT_TEMPLATE,
        model_max_length=1_000_000,
        clean_up_tokenization_spaces=False,
    )


def build_model(cfg: TinyModelConfig, tokenizer):
    """A randomly initialised (seeded) Llama-architecture causal LM sized by `cfg`."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    eot = tokenizer.convert_tokens_to_ids("<|eot_id|>")
    eos = tokenizer.convert_tokens_to_ids("<|end_of_text|>")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads,
        max_position_embeddings=cfg.max_position_embeddings,
        rope_theta=500000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=[eot, eos],
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(cfg.seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=[eot, eos], pad_token_id=tokenizer.pad_token_id
    )
    return model


def _fingerprint(cfg: TinyModelConfig) -> str:
    blob = json.dumps(
        {
            "cfg": cfg.model_dump(),
            "corpus": hashlib.sha256(CORPUS.read_bytes()).hexdigest(),
            "template": hashlib.sha256(CHAT_TEMPLATE.encode()).hexdigest(),
            "transformers": metadata.version("transformers"),
            "tokenizers": metadata.version("tokenizers"),
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def tiny_model_dir() -> Path:
    return outputs_root() / "tiny" / "base_model"


def ensure_tiny_model(cfg: TinyModelConfig, directory: Path | None = None, rebuild: bool = False) -> Path:
    """Build (or reuse, when its fingerprint matches) the tiny model and tokenizer in `directory`."""
    directory = Path(directory or tiny_model_dir())
    fp = _fingerprint(cfg)
    info_path = directory / BUILD_INFO
    if not rebuild and info_path.is_file() and json.loads(info_path.read_text()).get("fingerprint") == fp:
        return directory
    tokenizer = build_tokenizer(cfg.vocab_size)
    model = build_model(cfg, tokenizer)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=directory.parent))
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    n_params = sum(p.numel() for p in model.parameters())
    (tmp / BUILD_INFO).write_text(json.dumps({"fingerprint": fp, "parameters": n_params, "vocab": len(tokenizer)}))
    if directory.exists():
        shutil.rmtree(directory, ignore_errors=True)
    try:
        tmp.rename(directory)
    except OSError:  # another process finished first with the same fingerprint
        shutil.rmtree(tmp, ignore_errors=True)
    return directory


def tiny_model_info(cfg: TinyModelConfig) -> dict:
    """What the built tiny model is (built if needed): {"parameters": counted, "vocab": the tokenizer's size}.

    The tokenizer's vocabulary is what the BPE trainer learned from the bundled corpus, at most
    `cfg.vocab_size`: every notebook and plan states this figure, never the params' cap.
    """
    info = json.loads((ensure_tiny_model(cfg) / BUILD_INFO).read_text())
    return {"parameters": int(info["parameters"]), "vocab": int(info["vocab"])}


def resolve_base_model(params: Params) -> str:
    """What from_pretrained should load: the tiny model's folder (built if needed) or the Hub id."""
    if params.model.base == "tiny":
        return str(ensure_tiny_model(params.model.tiny))
    return params.model.base


def resolve_named(params: Params, name: str) -> str:
    """A model a params key names (judge.model, dpo.onpolicy.reward_model): 'tiny' is resolve_base_model's tiny
    model, anything else a Hub id or folder as given."""
    return resolve_base_model(params) if name == "tiny" else name


def _release_cfg(params: Params, seed: int) -> TinyModelConfig:
    return params.model.tiny.model_copy(update={"seed": seed})


def release_fingerprint(params: Params, seed: int) -> str:
    return _fingerprint(_release_cfg(params, seed))


def ensure_tiny_release(params: Params, seed: int, directory: Path) -> Path:
    """A second tiny model, initialised with another seed (same tokenizer, same shape): tiny's stand-in for a
    released model in 05 and 06 (params extra_models, tiny_seed). Built once, reused while unchanged."""
    if params.model.tiny is None:
        raise ValueError("extra_models tiny_seed needs model.base 'tiny'")
    return ensure_tiny_model(_release_cfg(params, seed), directory)
