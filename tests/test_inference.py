"""The one inference loader (med42_utils.inference): placement by the memory figures it reads (GPU count and
memory as parameters, no GPU), tiny on the CPU, and every inference site loading through it (an AST walk)."""
from __future__ import annotations

import ast
import warnings
from collections import Counter
from pathlib import Path

import pytest

from med42_utils.inference import (
    GIB, PlacementError, count_parameters, load_for_inference, placement_for, plan_placement, usable_gib,
)
from med42_utils.params import load_params

H100 = 80 * 10**9 / GIB  # "80 GB" as GiB, the unit torch reports total_memory in (74.5 GiB)


def _llama(hidden, inter, layers, heads, kv, vocab=128256):
    from transformers import LlamaConfig

    return LlamaConfig(hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                       num_attention_heads=heads, num_key_value_heads=kv, vocab_size=vocab, tie_word_embeddings=False)


# The published config.json values: meta-llama/Meta-Llama-3-8B-Instruct, -70B-Instruct, and
# prometheus-eval/prometheus-8x7b-v2.0 (Mixtral-8x7B's shape: 8 experts, 2 per token, vocab 32000).
@pytest.fixture(scope="module")
def configs():
    from transformers import MixtralConfig

    return {
        "8b": _llama(4096, 14336, 32, 32, 8),
        "70b": _llama(8192, 28672, 80, 64, 8),
        "8x7b": MixtralConfig(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                              num_key_value_heads=8, num_local_experts=8, num_experts_per_tok=2, vocab_size=32000,
                              tie_word_embeddings=False),
    }


@pytest.fixture(scope="module")
def sizes(configs):
    return {k: count_parameters(c) for k, c in configs.items()}


def test_parameter_counts_match_the_published_sizes(sizes):
    assert round(sizes["8b"] / 1e9, 2) == 8.03
    assert round(sizes["70b"] / 1e9, 2) == 70.55
    assert round(sizes["8x7b"] / 1e9, 1) == 46.7


def test_8b_goes_on_one_gpu_per_replica(sizes):
    one = placement_for(sizes["8b"], 2, 1, H100)
    assert (one.mode, one.device, one.gpus_per_replica, one.replicas) == ("one_gpu", "cuda:0", 1, 1)
    assert one.from_pretrained_kwargs() == {"device_map": {"": "cuda:0"}}
    eight = placement_for(sizes["8b"], 2, 8, H100, local_rank=3)
    assert (eight.mode, eight.device, eight.gpus_per_replica, eight.replicas) == ("one_gpu", "cuda:3", 1, 8)
    assert 14.9 < eight.weights_gib < 15.0


@pytest.mark.parametrize("model", ["70b", "8x7b"])
def test_too_big_for_one_gpu_is_refused_with_the_fix(sizes, model):
    with pytest.raises(PlacementError, match=r"hardware\.gpus_per_node") as e:
        placement_for(sizes[model], 2, 1, H100, what=model)
    assert "GiB of weights need 2 GPUs" in str(e.value) if model == "8x7b" else "need 3 GPUs" in str(e.value)


@pytest.mark.parametrize("model", ["70b", "8x7b"])
def test_big_models_spread_over_the_node_and_accelerate_keeps_them_on_the_gpus(configs, sizes, model):
    """The cap the loader gives from_pretrained, fed to accelerate's own infer_auto_device_map on the real
    module tree (meta device): every layer lands on one of the 8 GPUs, none on CPU or disk, and no GPU's cap
    exceeds what it can spare beside activations and KV cache."""
    import torch
    from accelerate.utils import infer_auto_device_map
    from transformers import AutoModelForCausalLM

    p = placement_for(sizes[model], 2, 8, H100, configs[model].num_hidden_layers)
    assert (p.mode, p.gpus_per_replica, p.replicas) == ("spread", 8, 1)
    kw = p.from_pretrained_kwargs()
    assert kw["device_map"] == "auto" and sorted(kw["max_memory"]) == list(range(8))
    cap = float(kw["max_memory"][0].removesuffix("GiB"))
    assert p.weights_gib / 8 < cap <= usable_gib(H100)
    with torch.device("meta"):
        m = AutoModelForCausalLM.from_config(configs[model])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Device k is not available": this machine has no GPU, the map is arithmetic
        dm = infer_auto_device_map(m, max_memory=kw["max_memory"], no_split_module_classes=m._no_split_modules,
                                   dtype=torch.bfloat16)
    used = Counter(dm.values())
    assert set(used) <= set(range(8)) and len(used) >= 2, used  # no "cpu", no "disk"


def test_the_loader_counts_the_kv_cache_its_caller_needs(sizes):
    """placement_for sizes through inference.fit (the rule the vLLM server and the plans use): weights plus the KV
    cache of the caller's batch x sequence decide one GPU or a spread."""
    from med42_utils.estimates import LLAMA3_8B
    from med42_utils.inference import fit

    kv = LLAMA3_8B.kv_bytes_per_token()
    assert placement_for(sizes["8b"], 2, 8, H100, kv_bytes_per_token=kv, kv_tokens=8 * 4096).mode == "one_gpu"
    big = placement_for(sizes["8b"], 2, 8, H100, kv_bytes_per_token=kv, kv_tokens=512 * 4096)  # a 256 GiB KV cache
    assert big.mode == "spread" and fit(sizes["8b"], kv, 512 * 4096, H100).gpus == 5
    with pytest.raises(PlacementError, match="KV cache"):
        placement_for(sizes["8b"], 2, 1, H100, kv_bytes_per_token=kv, kv_tokens=512 * 4096)


def test_cpu_without_gpus_and_tiny_stays_on_cpu(tiny_model_path):
    assert placement_for(8.03e9, 2, 0, 0).mode == "cpu"
    model, tok, p = load_for_inference(load_params("tiny"), tiny_model_path, gpus=8, gpu_mem_gib=H100)
    assert p.mode == "cpu" and p.from_pretrained_kwargs() == {}
    assert str(model.device) == "cpu" and not model.training and tok.pad_token is not None


def test_gpu_smoke_is_placed_on_the_gpu_it_is_given(tiny_model_path):
    """gpu_smoke is the tiny model on a CUDA GPU: the loader asks from_pretrained for that GPU (no GPU here to load)."""
    p = plan_placement(load_params("gpu_smoke"), tiny_model_path, gpus=1, gpu_mem_gib=H100)
    assert p.from_pretrained_kwargs() == {"device_map": {"": "cuda:0"}}


def test_reward_model_loads_through_the_loader(tiny_model_path):
    model, _, p = load_for_inference(load_params("tiny"), tiny_model_path, kind="sequence_classification", seed=1)
    assert p.mode == "cpu" and model.config.num_labels == 1 and type(model).__name__.endswith("SequenceClassification")


def test_lm_eval_gets_the_gpus_the_placement_gives(sizes):
    """05 keeps lm-eval's own placement: HFLM's model_args are spread (parallelize + the cap) when the model needs it."""
    from med42_utils.benchmarks.run import hflm_args

    p70 = load_params("70b")
    a = hflm_args(p70, "m", placement_for(sizes["70b"], 2, 8, H100))
    assert a["parallelize"] is True and a["max_memory_per_gpu"].endswith("GiB") and "device" not in a
    a = hflm_args(load_params("8b"), "m", placement_for(sizes["8b"], 2, 8, H100))
    assert a["parallelize"] is False and a["device"] == "cuda:0"


def test_bad_input_names_the_thing():
    with pytest.raises(ValueError, match="gpu_mem_gib"):
        placement_for(8e9, 2, 8, 0)
    with pytest.raises(ValueError, match="kind"):
        plan_placement(load_params("tiny"), "x", kind="seq2seq")


# --- every inference site loads through the loader -------------------------------------------------------------

PKG = Path(__file__).resolve().parents[1] / "med42_utils"
# Where a model may be loaded otherwise, and why: the loader itself and the function it calls; training, which
# FSDP/accelerate places; the tiny model's builder; 02's packing equivalence check, a CPU fp32 loss comparison
# at tiny sizes (not inference).
ALLOWED = {
    "inference.py": "the loader",
    "models.py": "load_model, which the loader calls",
    "training.py": "the training core, for SFT and DPO (rank 0 loads, FSDP/accelerate place the shards)",
    "tiny_model.py": "builds the tiny model",
    "packing/stage.py": "02's CPU equivalence check of packed losses",
}
MODEL_LOADERS = {"load_model", "load_model_and_tokenizer"}


def _model_loads(tree: ast.AST) -> list[tuple[int, str]]:
    """Calls that load model weights: X.from_pretrained where X is not a tokenizer/config/processor class,
    and models.load_model / load_model_and_tokenizer."""
    hits = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Attribute) and f.attr == "from_pretrained":
            owner = ast.unparse(f.value)
            if not any(w in owner for w in ("Tokenizer", "Config", "Processor", "tokenizer", "config")):
                hits.append((node.lineno, ast.unparse(f)))
        name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
        if name in MODEL_LOADERS:
            hits.append((node.lineno, ast.unparse(f)))
    return hits


def test_the_walk_finds_loads_written_every_way():
    src = ("from transformers import AutoModelForCausalLM as A\nA.from_pretrained('x')\n"
           "import transformers\ntransformers.AutoModelForSequenceClassification.from_pretrained('x')\n"
           "models.load_model(p, 'x')\nload_model_and_tokenizer(p, 'x')\nAutoTokenizer.from_pretrained('x')\n")
    assert [line for line, _ in _model_loads(ast.parse(src))] == [2, 4, 5, 6]


def test_every_inference_site_loads_through_the_loader():
    offenders = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).as_posix()
        if rel in ALLOWED:
            continue
        offenders += [f"{rel}:{line}: {call}" for line, call in _model_loads(ast.parse(path.read_text()))]
    assert not offenders, ("load models for inference with med42_utils.inference.load_for_inference "
                           "(it places them on the job's GPUs):\n" + "\n".join(offenders))
