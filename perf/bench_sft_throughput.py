"""SFT throughput of what users run: SFTTrainer built by this repo's build_sft_config (and lora_config),
for a matrix of speed configs in one run, with ratios against the previous 8b default (wrapped + sdpa).

For each config and each layer count it trains a Llama of the chosen widths (random weights, no Hub) on
synthetic pre-tokenized samples of chat-like lengths, times every step after warm-up end to end with CUDA
synchronisation (a TrainerCallback), fits seconds/step = a + b * layers and projects tokens/s per GPU
(non-padding tokens) and MFU (6N + attention, estimates.flops_per_token at the chunk length) to full
depth (32 layers for 8B, 80 for 70B). Peak memory is measured per layer count; `recompiles` counts
graphs torch.compile built after warm-up (flex_attention's kernels included): it should be 0.
One process, so no FSDP communication in these figures.

    python perf/bench_sft_throughput.py                        # GPU: 8B widths, layers 2 4, seq 8192, all configs
    python perf/bench_sft_throughput.py --width 70b --layers 1 2
    python perf/bench_sft_throughput.py --method lora --layers 32 --configs "wrapped + sdpa" default
    python perf/bench_sft_throughput.py --cpu                  # small shape on CPU (what the tests run)

On CPU the GPU-only switches (flex/flash, Liger, torch.compile) are ignored with one notice, so every
config runs sdpa: the CPU run checks the code path, not the speed-ups.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import trainer_timing as tt  # noqa: E402

from med42_utils import estimates, speed  # noqa: E402

BASELINE = "wrapped + sdpa"  # the 8b/70b default before issue 11
CONFIGS = {
    BASELINE: {tt.STRATEGY: "wrapped", tt.ATTN: "sdpa", **tt.speed_overrides("sft", False, False)},
    "bfd + sdpa": {tt.STRATEGY: "bfd", tt.ATTN: "sdpa", **tt.speed_overrides("sft", False, False)},
    "bfd + flex_attention": {tt.STRATEGY: "bfd", tt.ATTN: "flex_attention", **tt.speed_overrides("sft", False, False)},
    "wrapped + sdpa + Liger": {tt.STRATEGY: "wrapped", tt.ATTN: "sdpa", **tt.speed_overrides("sft", True, False)},
    "bfd + flex_attention + Liger": {tt.STRATEGY: "bfd", tt.ATTN: "flex_attention", **tt.speed_overrides("sft", True, False)},
    "bfd + flex_attention + torch.compile": {tt.STRATEGY: "bfd", tt.ATTN: "flex_attention",
                                             **tt.speed_overrides("sft", False, True)},
    "wrapped + sdpa + Liger + torch.compile": {tt.STRATEGY: "wrapped", tt.ATTN: "sdpa", **tt.speed_overrides("sft", True, True)},
    "default": {},  # the size's params as they are (8b/70b: bfd + flash_attention_2, flex without flash-attn, + Liger)
}
WIDTHS = tt.WIDTHS
H100_PEAK = estimates.H100_BF16_PEAK_FLOPS


def synthetic_samples(n_tokens: int, seq: int, vocab: int, pad_id: int, seed: int = 0):
    """Pre-tokenized rows (input_ids, labels) with chat-like, log-normal lengths (median seq/12, clipped to
    [16, seq]); the first 30% of each sample (the prompt) carries no loss. No token equals the pad id."""
    import numpy as np
    from datasets import Dataset

    rng = np.random.default_rng(seed)
    rows, total = [], 0
    while total < n_tokens:
        n = int(np.clip(rng.lognormal(math.log(seq / 12), 0.9), 16, seq))
        ids = rng.integers(0, vocab - 1, n)
        ids[ids >= pad_id] += 1  # skip the pad id
        ids = ids.tolist()
        cut = max(1, int(0.3 * n))
        rows.append({"input_ids": ids, "labels": [-100] * cut + ids[cut:]})
        total += n
    return Dataset.from_list(rows)


def run_config(name: str, overrides: dict, a, shape, layers: int, tokenizer, cuda: bool) -> tt.LayerRun:
    import torch
    from trl import SFTTrainer

    from med42_utils.sft.train import build_sft_config
    from med42_utils.training import lora_config

    fixed = {"packing.max_length": a.seq, "sft.method": a.method, "sft.max_steps": a.warmup + a.steps,
             "sft.gradient_checkpointing": cuda, **tt.one_gpu_overrides("sft", a.micro_batch, a.seq)}
    params = tt.load_config_params(a.size, fixed, overrides)
    st = speed.stage_speed(params, "sft")
    if cuda:
        speed.require_packages(params, "sft")
    dtype = torch.float32 if a.method == "full" else torch.bfloat16  # as training.load_for_training does for SFT on one process
    tt.reset_peak(cuda)
    model = tt.build_llama(shape, layers, st.attn_implementation, dtype, "cuda" if cuda else "cpu", a.seq)
    tokens_needed = int((a.warmup + a.steps) * a.micro_batch * a.seq * 4)  # a partial last row is rarely drawn
    data = synthetic_samples(tokens_needed, a.seq, shape.vocab, tokenizer.pad_token_id)
    timer = tt.step_timer(a.warmup, cuda)
    with tempfile.TemporaryDirectory() as out:
        cfg = build_sft_config(params, Path(out), save_strategy="no", logging_steps=10**6, disable_tqdm=True,
                               include_num_input_tokens_seen="non_padding", dataset_num_proc=None,
                               **({} if cuda else {"bf16": False, "use_cpu": True}))
        trainer = SFTTrainer(model=model, args=cfg, train_dataset=data, processing_class=tokenizer,
                             peft_config=lora_config(params, "sft") if a.method == "lora" else None, callbacks=[timer])
        tt.quiet(trainer)
        trainer.train()
    if len(timer.times) < 1:
        raise SystemExit(f"{name}: no timed steps (the data ran out before warm-up ended); raise the sample count")
    eff = {"packing": params.packing.strategy, "attn": st.attn_implementation, "liger": st.liger_kernel,
           "compile": st.torch_compile, "pad_to": st.pad_to_multiple_of}
    run = tt.LayerRun(layers, tt.typical(timer.times, cuda), sum(timer.tokens) / len(timer.tokens),
                      tt.peak_gib(cuda), timer.recompiles, eff)
    del trainer, model
    tt.reset_peak(cuda)
    return run


def bench(a) -> list[dict]:
    cuda, shape, tokenizer, names = tt.setup(a, CONFIGS, BASELINE)
    run_config(BASELINE, CONFIGS[BASELINE], a, shape, min(a.layers), tokenizer, cuda)  # process warm-up, untimed
    rows, a.skipped = tt.run_matrix(names, lambda name, n: run_config(name, CONFIGS[name], a, shape, n, tokenizer, cuda),
                                    a.layers, lambda name, runs: tt.project(name, runs, shape, a.seq, H100_PEAK))
    return tt.add_ratios(rows, BASELINE)


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu", action="store_true", help="small shape on CPU (the tests' path)")
    ap.add_argument("--width", choices=sorted(WIDTHS), default="8b", help="GPU: Llama 3 widths to time")
    ap.add_argument("--method", choices=["full", "lora"], default="full")
    ap.add_argument("--layers", type=int, nargs="+", default=None, help="layer counts to fit (8B: 2 4, 70B: 1 2)")
    ap.add_argument("--full-layers", type=int, default=None, help="CPU: depth to project to (default 8)")
    ap.add_argument("--seq", type=int, default=None, help="chunk length (GPU 8192, CPU 256)")
    ap.add_argument("--micro-batch", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (compiles happen here)")
    ap.add_argument("--steps", type=int, default=8, help="timed steps per run")
    ap.add_argument("--configs", nargs="+", default=None, help=f"subset of {list(CONFIGS)}")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    a = ap.parse_args(argv)
    a.size = "tiny" if a.cpu else a.width
    a.layers = a.layers or ([1, 4] if a.cpu else {"8b": [2, 4], "70b": [1, 2]}[a.width])
    a.seq = a.seq or (256 if a.cpu else 8192)
    a.full_depth = (a.full_layers or 8) if a.cpu else WIDTHS[a.width].layers
    return a


def main(argv=None) -> list[dict]:
    a = parse(argv)
    rows = bench(a)
    where = "CPU, small shape" if a.cpu else f"one GPU, Llama 3 {a.width} widths"
    tt.print_table(rows, BASELINE, f"SFT ({a.method}) throughput, {where}, seq {a.seq}, "
                                   f"layers {a.layers} fitted and projected to {a.full_depth}", skipped=a.skipped)
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1, default=str))
    return rows


if __name__ == "__main__":
    main()
