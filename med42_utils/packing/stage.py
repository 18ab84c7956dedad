"""The 02_packing stage: curated conversations -> assistant-only labels -> packed chunks + stats."""
from __future__ import annotations

import json
from pathlib import Path

from .. import models
from ..manifest import require_stage, stage_done, write_manifest
from ..tiny_model import resolve_base_model
from .equivalence import loss_equivalence
from .labels import tokenize_dataset
from .pack import STRATEGIES, pack, packing_stats

TOKENIZED, STATS = "tokenized", "stats.json"


def packed_dir(stage_dir: Path, strategy: str) -> Path:
    return Path(stage_dir) / f"packed_{strategy}"


def load_curated(run):
    """The curated dataset written by 01_data_curation (clear error when it is missing)."""
    from datasets import load_from_disk

    data_dir = run.dir / "data"
    require_stage(data_dir, "01_data_curation.ipynb")
    path = data_dir / "curated"
    if not path.is_dir():
        raise FileNotFoundError(f"{path} not found although {data_dir}/manifest.json exists; re-run 01_data_curation.ipynb")
    return load_from_disk(str(path))


def load_tokenizer(params):
    """The base model's tokenizer (what 02 tokenizes with)."""
    return models.load_tokenizer(params, resolve_base_model(params))


TRAIN_STEPS, TRAIN_LENGTH = 30, 128  # brief training on 128-token chunks: the tiny model starts using its context


def equivalence_demo(params, curated, tokenized, max_samples: int = 4, train_steps: int = TRAIN_STEPS) -> dict:
    """Packed-vs-alone losses on one bfd chunk of several samples, on an untrained model and on the same model
    after `train_steps` of brief training on full 128-token `wrapped` chunks (where context matters), both masking routes.

    size tiny: the run's own base model and tokenized data. 8b/70b: the same mechanism on the tiny
    model (re-tokenizing the first conversations with its tokenizer), since a float32 8B/70B
    forward pass is not a notebook-cell job; the result does not depend on the model's size.
    """
    import torch
    from transformers import AutoModelForCausalLM

    from ..params import load_params
    from .equivalence import briefly_train, per_sample_losses

    if params.model.base == "tiny":
        demo_params, ds = params, tokenized
    else:
        demo_params = load_params("tiny")
        ds, _ = tokenize_dataset(curated.select(range(min(len(curated), 64))), load_tokenizer(demo_params))
    path = resolve_base_model(demo_params)
    L = demo_params.packing.max_length
    packed = pack(ds, L, "bfd")
    chunk = max(packed, key=lambda c: len(c["seq_lengths"]))
    lens = list(chunk["seq_lengths"])[:max_samples]
    ids, labels = list(chunk["input_ids"])[: sum(lens)], list(chunk["labels"])[: sum(lens)]
    if len(lens) < 2:
        raise ValueError("no bfd chunk holds two samples; lower max_samples or add data")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="sdpa")
    out = {"model": path if params.model.base == "tiny" else "tiny (demonstration)", "seq_lengths": lens,
           "train_steps": train_steps, "chunk": {"input_ids": ids, "labels": labels},
           "untrained": {**loss_equivalence(model, ids, lens).__dict__, **per_sample_losses(model, ids, lens)}}
    n = min(L, TRAIN_LENGTH)  # (8 CPU-seconds here; 256-token chunks cost 3.5x as much for the same lesson)
    full = [c["input_ids"] for c in pack(ds, n, "wrapped") if len(c["input_ids"]) == n]
    torch.manual_seed(demo_params.seed)
    briefly_train(model, full, train_steps, seed=demo_params.seed)
    for mode in ("position_ids", "block_mask"):
        out[mode] = loss_equivalence(model, ids, lens, mode=mode).__dict__
    out["trained"] = per_sample_losses(model, ids, lens)
    return out


def run_packing(run, force: bool = False, max_length: int | None = None) -> dict:
    """Tokenize, pack with both strategies, save datasets + stats + manifest; skip when done."""

    out = run.stage_dir("02_packing")
    if stage_done(out, run.params, inputs=[run.dir / "data"]) and not force:
        print(f"02_packing already done in {out} (force=True re-runs it)")
        return json.loads((out / STATS).read_text())
    p = run.params
    L = max_length or p.packing.max_length
    curated = load_curated(run)
    tok = load_tokenizer(p)
    tokenized, drops = tokenize_dataset(curated, tok, num_proc=p.data.num_proc)
    if len(tokenized) == 0:
        raise ValueError(f"no trainable conversations in {run.dir / 'data' / 'curated'} (dropped: {drops})")
    tokenized.save_to_disk(str(out / TOKENIZED))
    packed = {s: pack(tokenized, L, s) for s in STRATEGIES}
    for s, ds in packed.items():
        ds.save_to_disk(str(packed_dir(out, s)))
    stats = packing_stats(tokenized, packed, L, p.sft.micro_batch_size)
    stats["dropped"] = drops
    stats["strategy"] = p.packing.strategy
    stats["equivalence"] = equivalence_demo(p, curated, tokenized)
    (out / STATS).write_text(json.dumps(stats, indent=2))
    write_manifest(
        out, "02_packing", p, inputs=[run.dir / "data"],
        strategy=p.packing.strategy, max_length=L, samples=stats["samples"], tokens=stats["tokens"],
        label_tokens=stats["label_tokens"], dropped=drops,
        chunks={s: v["chunks"] for s, v in stats["strategies"].items()},
        efficiency={s: v["efficiency"] for s, v in stats["strategies"].items()},
        tokenized=TOKENIZED, packed={s: packed_dir(out, s).name for s in STRATEGIES},
        equivalence={m: {k: v for k, v in stats["equivalence"][m].items()} for m in ("position_ids", "block_mask")},
        truncated_samples=stats["strategies"]["bfd"]["truncated_samples"],
        split_samples=stats["strategies"]["wrapped"]["split_samples"],
        unpacked_padding_waste=stats["unpacked_padding_waste"],
    )
    return stats


def plot_packing(stats: dict, tokenized):
    """Chunk fill per strategy and sample lengths (top), tokens per source (bottom, one readable row each)."""
    import matplotlib.pyplot as plt

    src = stats["tokens_per_source"]
    names = sorted(src, key=lambda k: src[k]["tokens"])
    fig = plt.figure(figsize=(12, 4 + 0.28 * len(names)), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[3.2, 0.9 + 0.28 * len(names)])
    ax_fill, ax_len = top.subplots(1, 2)
    for s, v in stats["strategies"].items():
        ax_fill.hist(v["fill"], bins=20, range=(0, 1), alpha=0.6, label=f"{s} ({v['efficiency']:.1%} full)")
    ax_fill.set(xlabel="filled share of chunk", ylabel="chunks", title="packing efficiency")
    below = {"loc": "upper center", "bbox_to_anchor": (0.5, -0.2), "ncol": 2, "frameon": False}  # never over bars
    ax_fill.legend(**below)
    ax_len.hist(tokenized["length"], bins=30)
    ax_len.axvline(stats["max_length"], color="red", ls="--", label=f"max_length = {stats['max_length']}")
    ax_len.set(xlabel="tokens per conversation", ylabel="conversations", title="sample lengths")
    ax_len.legend(**below)
    ax = bottom.subplots()
    ax.barh(names, [src[k]["tokens"] for k in names], label="all tokens", color="0.75")
    ax.barh(names, [src[k]["label_tokens"] for k in names], label="assistant (loss) tokens", color="tab:blue")
    ax.set(xlabel="tokens", title="tokens per source")
    ax.tick_params(axis="y", labelsize=9)
    ax.margins(y=0.01)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return fig


def plot_chunk(eq: dict, tokenizer=None):
    """A picture of the demonstration's packed chunk: which sample each token belongs to (boundaries dashed), which
    tokens carry loss (assistant tokens), and how much concatenation changes each token's loss on the briefly
    trained model (|concatenated - alone|, in nats; 0 throughout the first sample, which has nothing before it)."""
    import matplotlib.pyplot as plt
    import numpy as np

    from . import IGNORE

    lens, ch = eq["seq_lengths"], eq["chunk"]
    n = sum(lens)
    seg = np.repeat(np.arange(len(lens)), lens)
    mask = np.array([lab != IGNORE for lab in ch["labels"]], dtype=float)
    diff = np.abs(np.array(eq["trained"]["diff_concatenated"]))
    fig, (a, b, c) = plt.subplots(3, 1, figsize=(12, 4.6), sharex=True, height_ratios=[1, 1, 2.2])
    a.imshow(seg[None, :], aspect="auto", cmap="tab10", vmin=0, vmax=9, interpolation="nearest",
             extent=(-0.5, n - 0.5, 0, 1))
    for k, (s0, L) in enumerate(zip(np.cumsum([0] + lens[:-1]), lens)):
        a.text(s0 + L / 2, 0.5, f"sample {k + 1}: {L} tokens", ha="center", va="center", fontsize=9, color="white")
    b.imshow(mask[None, :], aspect="auto", cmap="Greys", vmin=0, vmax=1.6, interpolation="nearest",
             extent=(-0.5, n - 0.5, 0, 1))
    c.bar(np.arange(n), diff, width=1.0, color="tab:red")
    for ax in (a, b, c):
        for x in np.cumsum(lens)[:-1]:
            ax.axvline(x - 0.5, color="black", ls="--", lw=1)
    a.set_yticks([]); a.set_ylabel("sample", rotation=0, ha="right", va="center")
    b.set_yticks([]); b.set_ylabel("loss mask\n(dark: trained on)", rotation=0, ha="right", va="center")
    c.set_ylabel("|concatenated - alone|\n(nats, trained model)", rotation=0, ha="right", va="center")
    c.set_xlabel("token position in the packed chunk (dashed: sample boundaries)")
    a.set_title(f"one packed chunk: {len(lens)} samples, {n} tokens")
    fig.tight_layout()
    return fig


def equivalence_table(eq: dict):
    """Per-sample mean loss, alone / boundary-aware / concatenated, on the untrained and the briefly trained model."""
    import pandas as pd

    rows = []
    for which, label in (("untrained", "untrained"), ("trained", f"trained {eq['train_steps']} steps")):
        for r in eq[which]["samples"]:
            rows.append({"model": label, "sample": r["sample"], "tokens": r["tokens"], "alone": r["alone"],
                         "boundary-aware": r["boundary_aware"], "concatenated": r["concatenated"],
                         "concatenated - alone": r["concatenated"] - r["alone"]})
    return pd.DataFrame(rows).set_index(["model", "sample"]).round(4)


def strategies_table(stats: dict):
    """The two strategies side by side, counts as integers and efficiency as a percentage."""
    import pandas as pd

    rows = {}
    for s, v in stats["strategies"].items():
        rows[s] = {"chunks": int(v["chunks"]), "tokens kept": int(v["tokens_kept"]),
                   "efficiency (filled share)": f"{v['efficiency']:.1%}", "truncated samples": int(v["truncated_samples"]),
                   "tokens lost to truncation": int(v["tokens_lost_to_truncation"]),
                   "split samples": int(v["split_samples"])}
    return pd.DataFrame(rows).astype(object)


def packing_story(eq: dict):
    """02 section 3, from this run's demonstration: how far concatenation moved the losses, which way, and why."""
    from ..narrate import say

    parts = []
    for which, label in (("untrained", "untrained model"), ("trained", f"model trained {eq['train_steps']} steps")):
        later = [r for r in eq[which]["samples"] if r["sample"] > 1]
        diffs = [r["concatenated"] - r["alone"] for r in later]
        if not diffs:
            continue
        way = "lowered" if all(d < 0 for d in diffs) else "raised" if all(d > 0 for d in diffs) else "moved"
        parts.append(f"On the {label}, concatenation {way} the mean loss of the samples after the first by "
                     f"{min(abs(d) for d in diffs):.4f} to {max(abs(d) for d in diffs):.4f} nats.")
    worst = max(eq[m]["max_abs_diff_concatenated"] for m in ("position_ids", "block_mask"))
    exact = max(eq[m]["max_abs_diff_boundary_aware"] for m in ("position_ids", "block_mask"))
    parts.append(f"On single tokens concatenation moved the loss by up to {worst:.2f} nats; boundary-aware packing by "
                 f"at most {exact:.1e}, rounding error.")
    if any(r["concatenated"] < r["alone"] for r in eq["trained"]["samples"] if r["sample"] > 1):
        parts.append("A lower loss is not a better model: the samples are from one clinical mixture, so the end of the "
                     "previous sample is useful context for the first tokens of the next one, context the sample "
                     "does not have when it is trained or used alone. Training on it teaches the model to lean on "
                     "text that will not be there.")
    return say(*parts)


def packing_expectations(out_dir, eq: dict, stats: dict):
    """02's checks: boundary-aware packing equals each sample alone; concatenation moves a model that uses its
    context more than an untrained one; `wrapped` fills chunks at least as full as `bfd`."""
    from ..expectations import expect, show_expectations

    exact = max(eq[m]["max_abs_diff_boundary_aware"] for m in ("position_ids", "block_mask"))
    shift = {w: max(abs(r["concatenated"] - r["alone"]) for r in eq[w]["samples"]) for w in ("untrained", "trained")}
    eff = {s: v["efficiency"] for s, v in stats["strategies"].items()}
    items = [
        expect("packed with boundaries (position ids or block mask) equals each sample run alone, within 1e-5",
               exact < 1e-5, f"largest per-token difference {exact:.1e} nats"),
        expect("concatenation changes the losses of a model that uses its context more than an untrained model's",
               shift["trained"] > 10 * shift["untrained"],
               f"largest change of a sample's mean loss: untrained {shift['untrained']:.4f}, trained {shift['trained']:.4f}"),
        expect("`wrapped` fills its chunks at least as full as `bfd`", eff.get("wrapped", 0) >= eff.get("bfd", 1),
               ", ".join(f"{s} {v:.1%}" for s, v in eff.items())),
    ]
    return show_expectations(out_dir, "02_packing", items)
