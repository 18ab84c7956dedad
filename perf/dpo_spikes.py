"""Where 04's DPO loss spikes at size tiny come from: one DPO round retrained from the same starting model on
the same batches (same seed, same order) with one setting changed at a time; prints each variant's largest
loss and gradient norm, and the step they occur at.

    python -m med42_utils.runner --size tiny --run-name demo     # once: a finished tiny run (SFT + rounds 1-2)
    python perf/dpo_spikes.py --run-name demo [--round round3] [--variants rmsprop adamw ...]

Variants (everything else is tiny.yaml's dpo section): rmsprop (tiny's Table 3 optimizer, lr 1e-4, 2 pairs a
step), rmsprop_lr_half (lr 5e-5), rmsprop_alpha_0.9 (a faster-warming squared-gradient average),
rmsprop_no_last_single (drop the 1-pair batch that ends each epoch), rmsprop_batch_8 (4 steps of gradient
accumulation: 8 pairs a step), adamw (AdamW, momentum 0.9, bias-corrected, same lr).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VARIANTS = {
    "rmsprop": ({}, {}),
    "rmsprop_lr_half": ({"dpo.learning_rate": 5e-5}, {}),
    "rmsprop_alpha_0.9": ({}, {"optim_args": "alpha=0.9"}),
    "rmsprop_no_last_single": ({}, {"dataloader_drop_last": True}),
    "rmsprop_batch_8": ({"dpo.gradient_accumulation_steps": 4, "dpo.batch_size": 8}, {}),
    "adamw": ({}, {"optim": "adamw_torch"}),
}


def run_variant(run_name: str, name: str, overrides: dict, config: dict, out: Path) -> dict:
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    from med42_utils.dpo.round_models import resolve_init
    from med42_utils.dpo.train import build_trainer, prepare_round_data
    from med42_utils.models import load_tokenizer
    from med42_utils.params import load_params

    params = load_params("tiny", {**overrides, "training_logs.report_to": "none"})
    init = resolve_init(params, run_name, name)
    tok = load_tokenizer(params, init)
    ds, _ = prepare_round_data(params, run_name, name, init, tok)
    trainer = build_trainer(params, init, ds, out, tokenizer=tok, report_to=[], **config)
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    worst = max(logs, key=lambda h: h["grad_norm"])
    top = max(logs, key=lambda h: h["loss"])
    after = [h["grad_norm"] for h in logs if h["learning_rate"] > 0 and h["step"] > 2]
    return {"steps": len(logs), "max loss": top["loss"], "at step": top["step"], "max grad norm": worst["grad_norm"],
            "grad-norm step": worst["step"], "median grad norm": sorted(after)[len(after) // 2],
            "final margin": logs[-1]["rewards/margins"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-name", required=True, help="a finished tiny run (outputs/tiny/<run>/)")
    ap.add_argument("--round", default="round3")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    a = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import pandas as pd

    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for v in a.variants:
            overrides, config = VARIANTS[v]
            rows[v] = run_variant(a.run_name, a.round, overrides, config, Path(tmp) / v)
            print(f"{v}: {rows[v]}", flush=True)
    table = pd.DataFrame(rows).T
    base = table.loc["rmsprop", "max grad norm"] if "rmsprop" in table.index else None
    if base:
        table["max grad norm / rmsprop's"] = (table["max grad norm"] / base).round(2)
    print(table.to_string(float_format=lambda x: f"{x:.3f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
