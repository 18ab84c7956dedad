"""Shared parts of the SFT and DPO throughput benchmarks: params for a config, a Llama of given widths and
depth, a step timer (a TrainerCallback with CUDA synchronisation), compile counting, the per-layer fit and
the table. Both benchmarks build their trainers through the project's own config builders."""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from med42_utils import estimates  # noqa: E402
from med42_utils.params import Params, load_params  # noqa: E402

# A matrix of configs (issue 11's table): params overrides on top of the size's params. Each stage's
# switches live under <stage>.speed; the attention kernel under model.
ATTN, STRATEGY = "model.attn_implementation", "packing.strategy"


def speed_overrides(stage: str, liger: bool, compile_: bool) -> dict:
    return {f"{stage}.speed.liger_kernel": liger, f"{stage}.speed.torch_compile": compile_}


def one_gpu_overrides(stage: str, micro_batch: int, seq: int) -> dict:
    """One process, no accumulation, so one trainer step is one timed micro-batch."""
    hw = {f"{stage}.hardware.nodes": 1, f"{stage}.hardware.gpus_per_node": 1,
          f"{stage}.hardware.launcher": "inprocess", f"{stage}.gradient_accumulation_steps": 1,
          f"{stage}.micro_batch_size": micro_batch}
    if stage == "sft":
        hw["sft.tokens_per_step"] = micro_batch * seq
    else:
        hw["dpo.batch_size"] = micro_batch
    return hw


def load_config_params(size: str, base: dict, overrides: dict) -> Params:
    return load_params(size, {**base, **overrides})


def cpu_shape(layers: int) -> estimates.ModelShape:
    """The CPU run's small Llama: wide enough that a layer's time stands out from the trainer's per-step overhead."""
    return estimates.ModelShape("small (CPU)", hidden=512, layers=layers, heads=8, kv_heads=2, intermediate=1536,
                                vocab=2048)


def typical(times: list[float], cuda: bool) -> float:
    """Seconds per step: the median on a GPU; on a shared CPU the minimum (other jobs only ever add time)."""
    s = sorted(times)
    if not cuda:
        return s[0]
    return s[len(s) // 2] if len(s) % 2 else (s[len(s) // 2 - 1] + s[len(s) // 2]) / 2


def quiet_libraries() -> None:
    """No progress bars or info logs between the table's rows."""
    from datasets.utils.logging import disable_progress_bar
    from transformers.utils import logging

    disable_progress_bar()
    logging.set_verbosity_error()


def quiet(trainer) -> None:
    """No per-run log dicts between the table's rows."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)


def build_llama(shape: estimates.ModelShape, layers: int, attn: str, dtype, device: str, max_positions: int):
    """Random weights in `shape`'s widths with `layers` decoder layers (the benchmark never needs the Hub)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(hidden_size=shape.hidden, intermediate_size=shape.intermediate, num_hidden_layers=layers,
                      num_attention_heads=shape.heads, num_key_value_heads=shape.kv_heads, vocab_size=shape.vocab,
                      max_position_embeddings=max_positions, rope_theta=500000.0, tie_word_embeddings=False,
                      attn_implementation=attn)
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(cfg).to(dtype)
    model.config.use_cache = False
    return model


def compiled_graphs() -> int:
    """Graphs torch.compile (dynamo) has built so far in this process; a rise after warm-up is a recompile."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def step_timer(warmup: int, cuda: bool):
    """A TrainerCallback timing each optimizer step (end to end, synchronised), its non-padding tokens, and
    the graphs compiled after warm-up."""
    import torch
    from transformers import TrainerCallback

    sync = torch.cuda.synchronize if cuda else (lambda: None)

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times, self.tokens = [], []
            self.graphs_after_warmup = None
            self._t = self._seen = None

        def on_train_begin(self, args, state, control, **kw):
            sync()
            self._t, self._seen = time.perf_counter(), state.num_input_tokens_seen

        def on_step_end(self, args, state, control, **kw):
            sync()
            now = time.perf_counter()
            if state.global_step > warmup:
                self.times.append(now - self._t)
                self.tokens.append(state.num_input_tokens_seen - self._seen)
            elif state.global_step == warmup:
                self.graphs_after_warmup = compiled_graphs()
            self._t, self._seen = now, state.num_input_tokens_seen

        @property
        def recompiles(self) -> int:
            return compiled_graphs() - (self.graphs_after_warmup or 0)

    return StepTimer()


def reset_peak(cuda: bool) -> None:
    import gc

    import torch

    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gib(cuda: bool) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if cuda else None


@dataclass
class LayerRun:
    layers: int
    seconds_per_step: float
    tokens_per_step: float
    peak_gib: float | None
    recompiles: int
    effective: dict = field(default_factory=dict)
    precompute_s_per_pair: float = 0.0  # DPO with precompute_ref_log_probs


def fit(runs: list[LayerRun]) -> tuple[float, float]:
    """Least-squares seconds_per_step = a + b * layers."""
    if len({r.layers for r in runs}) < 2:
        raise SystemExit("give at least two different --layers values to fit time per layer")
    x = [r.layers for r in runs]
    y = [r.seconds_per_step for r in runs]
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    b = sum((xi - mx) * (yi - my) for xi, yi in zip(x, y)) / sum((xi - mx) ** 2 for xi in x)
    return my - b * mx, b


def project(name: str, runs: list[LayerRun], shape: estimates.ModelShape, seq: int, peak_flops: float,
            reference_forward: bool = False) -> dict:
    """Full-depth tokens/s per GPU from the per-layer fit, and MFU (6N + attention, see estimates.flops_per_token)."""
    a, b = fit(runs)
    tokens = sum(r.tokens_per_step for r in runs) / len(runs)
    seconds = a + b * shape.layers
    # Step time that does not grow with depth is noise (a loaded CPU, too few steps): no projection then.
    resolved = b > 0 and seconds > 0
    tps = tokens / seconds if resolved else None
    return {
        "config": name,
        "tokens_per_s": tps,
        "mfu": tps * estimates.flops_per_token(shape, seq, reference_forward) / peak_flops if resolved else None,
        "note": "" if resolved else (f"unresolved: step time did not grow with depth ({b * 1e3:+.2f} ms per layer); "
                                     "re-run with more --steps or --layers further apart"),
        "seconds_fixed": a,
        "seconds_per_layer": b,
        "tokens_per_step": tokens,
        "peak_gib": {r.layers: r.peak_gib for r in runs},
        "seconds_per_step": {r.layers: r.seconds_per_step for r in runs},
        "recompiles_after_warmup": sum(r.recompiles for r in runs),
        "effective": runs[0].effective,
    }


def run_matrix(names: list[str], run_one, layers: list[int], project_one) -> tuple[list[dict], list[str]]:
    """Every config at every layer count; a config whose package is missing (liger-kernel, flash-attn) is
    skipped with its reason instead of stopping the whole matrix."""
    rows, skipped = [], []
    for name in names:
        try:
            runs = [run_one(name, n) for n in layers]
        except ModuleNotFoundError as e:
            skipped.append(f"{name}: {e}")
            continue
        rows.append(project_one(name, runs))
    return rows, skipped


def add_ratios(rows: list[dict], baseline: str) -> list[dict]:
    """tokens/s of each row over the baseline's; None where either projection is unresolved."""
    base = next(r for r in rows if r["config"] == baseline)["tokens_per_s"]
    for r in rows:
        r["ratio"] = r["tokens_per_s"] / base if base and r["tokens_per_s"] else None
    return rows


def _num(value, spec: str, width: int) -> str:
    return f"{'-':>{width}s}" if value is None else f"{format(value, spec):>{width}s}"


def print_table(rows: list[dict], baseline: str, title: str, extra: tuple[tuple[str, str, str], ...] = (),
                skipped: list[str] = ()) -> None:
    """extra: (key, header, format) columns after the standard ones."""
    print(title)
    layers = sorted({n for r in rows for n in r["peak_gib"]})
    head = (f"{'config':44s} {'tok/s/GPU':>10s} {'MFU':>6s} {'x base':>7s} "
            + " ".join(f"{'peak GiB L' + str(n):>12s}" for n in layers)
            + f" {'recompiles':>10s}" + "".join(f" {h:>12s}" for _, h, _ in extra) + "  effective")
    print(head)
    for r in rows:
        peaks = " ".join(f"{(r['peak_gib'].get(n) or 0):12.1f}" if r["peak_gib"].get(n) is not None else f"{'-':>12s}"
                         for n in layers)
        cols = "".join(f" {_num(r[k], f, 12)}" for k, _, f in extra)
        eff = ", ".join(f"{k}={v}" for k, v in r["effective"].items())
        print(f"{r['config']:44s} {_num(r['tokens_per_s'], '.1f', 10)} {_num(r['mfu'], '.1%', 6)} "
              f"{_num(r['ratio'], '.2f', 7)} {peaks} {r['recompiles_after_warmup']:10d}{cols}  {eff}")
        if r.get("note"):
            print(f"  {r['config']}: {r['note']}")
    print(f"ratios against '{baseline}', measured in this run")
    for line in skipped:
        print(f"skipped {line}")


WIDTHS = {"8b": estimates.LLAMA3_8B, "70b": estimates.LLAMA3_70B}


def setup(a, configs: dict, baseline: str):
    """What both benchmarks start with: device check, model shape, CPU threads, the tiny tokenizer (it only supplies
    the pad token; the data are token ids < 2048, which every width accepts) and the configs to run, baseline first.
    Returns (cuda, shape, tokenizer, names)."""
    import torch

    from med42_utils.models import load_tokenizer
    from med42_utils.tiny_model import resolve_base_model

    cuda = not a.cpu
    quiet_libraries()
    if cuda and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run on an H100 node, or pass --cpu for the small CPU shape")
    shape = cpu_shape(a.full_depth) if a.cpu else WIDTHS[a.width]
    if a.cpu:
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))  # 2 cores, unless the caller set fewer
    tiny = load_params("tiny")
    tokenizer = load_tokenizer(tiny, resolve_base_model(tiny))
    names = a.configs or list(configs)
    unknown = [n for n in names if n not in configs]
    if unknown:
        raise SystemExit(f"unknown config(s) {unknown}; choose from {list(configs)}")
    return cuda, shape, tokenizer, names if baseline in names else [baseline, *names]
