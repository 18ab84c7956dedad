"""What 04_dpo shows: per-round training curves from the trainer logs, and answers from each stage's model."""
from __future__ import annotations

from ..chat import SYSTEM_PROMPT
from ..inference import load_for_inference
from ..models import resolve_model
from ..params import Params

CURVES = [
    ("loss", ["loss"], "DPO loss (red circles: gradient-norm spikes)"),
    ("rewards", ["rewards/chosen", "rewards/rejected"], "implicit rewards β·log(π/π_ref)"),
    ("margins", ["rewards/margins"], "reward margin (chosen − rejected)"),
    ("accuracies", ["rewards/accuracies"], "reward accuracy (chosen > rejected)"),
    ("grad_norm", ["grad_norm"], "gradient norm before clipping (log scale)"),
    ("learning_rate", ["learning_rate"], "learning rate"),
]


def plot_rounds(curves: dict, source: str = ""):
    """2x3 figure over the steps of every round, in order: loss (spikes circled), rewards, margins, accuracies,
    gradient norm and learning rate. `curves`: round name -> DataFrame by step (training_logs.curves)."""
    import matplotlib.pyplot as plt

    from ..training_logs import spikes

    fig, axes = plt.subplots(2, 3, figsize=(14, 6.5), sharex=True)
    curves = {n: df for n, df in curves.items() if not df.empty}
    if not curves:
        fig.suptitle("no DPO round has finished yet")
        return fig
    offset, starts, frames = 0, [], []
    for name, df in curves.items():
        df = df.assign(x=df.index + offset)
        starts.append((offset, name))
        offset = int(df["x"].max())
        frames.append(df)
    colors = {"loss": "C0", "rewards/chosen": "C2", "rewards/rejected": "C3", "rewards/margins": "C1",
              "rewards/accuracies": "C4", "grad_norm": "C5", "learning_rate": "C6"}
    for ax, (key, cols, title) in zip(axes.flat, CURVES):
        for i, df in enumerate(frames):
            for c in cols:
                if c in df:
                    ax.plot(df["x"], df[c], marker="o", ms=2.5, lw=1, color=colors[c], label=c if i == 0 else None)
            if key in ("loss", "grad_norm"):
                sp = spikes(df)
                if key in sp:
                    ax.scatter(sp["x"], sp[key], s=70, facecolors="none", edgecolors="red", zorder=3)
        for x0, name in starts:
            ax.axvline(x0 + 0.5, color="grey", lw=0.8, ls="--")
            ax.text(x0 + 0.6, 1.0, name, transform=ax.get_xaxis_transform(), va="top", fontsize=8, color="grey")
        if key == "grad_norm":
            ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        if len(cols) > 1:
            ax.legend(fontsize=8)
    for ax in axes[1]:
        ax.set_xlabel("optimizer step (rounds in sequence)")
    if source:
        fig.suptitle(f"from {source}", fontsize=8, color="grey")
    fig.tight_layout()
    return fig


def sample_answers(params: Params, run_name: str, question: str, stages: list[str], seed: int = 0):
    """One answer per stage's model to the same question, with the system prompt and the card's sampling."""
    import pandas as pd
    import torch

    s = params.judge.sampling
    messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": question}]
    rows = []
    for stage in stages:
        model, tok, _ = load_for_inference(params, resolve_model(params, run_name, stage), what=f"{stage} model")
        enc = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                      return_dict=True).to(model.device)
        torch.manual_seed(seed)
        with torch.no_grad():
            out = model.generate(**enc, do_sample=True, temperature=s.temperature, top_k=s.top_k, top_p=s.top_p,
                                 max_new_tokens=s.max_new_tokens, pad_token_id=tok.pad_token_id)
        rows.append({"model": stage, "answer": tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)})
        del model, out  # one stage's model at a time on the GPUs
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return pd.DataFrame(rows)


def dpo_expectations(dpo_dir, curves: dict, rounds_table):
    """04's checks: each round starts at log 2 from the previous round's model and ends preferring the chosen."""
    import math

    from ..expectations import expect, show_expectations
    from ..narrate import say

    if rounds_table.empty:
        return say("No DPO round has finished yet: nothing to check.")
    names = list(rounds_table.index)
    firsts = {n: float(df["loss"].iloc[0]) for n, df in curves.items() if not df.empty}
    starts = list(rounds_table["starts from"])
    chain = ["sft"] + [f"dpo_{n}" for n in names[:-1]]
    margins, accs = rounds_table["margin (last-epoch mean)"], rounds_table["accuracy (last-epoch mean)"]
    items = [
        expect("every round starts at loss log 2 = 0.693 (its policy equals its reference)",
               firsts and all(abs(v - math.log(2)) < 0.02 for v in firsts.values()),
               ", ".join(f"{n} {v:.3f}" for n, v in firsts.items())),
        expect("each round starts from (and is anchored to) the model before it", starts == chain,
               ", ".join(f"{n} from {s}" for n, s in zip(names, starts))),
        expect("every round ends with the chosen answer's reward above the rejected one's (margin > 0)",
               len(margins) and (margins > 0).all(), ", ".join(f"{n} {v:.2f}" for n, v in margins.items())),
        expect("in the last epoch the chosen reward is higher in most pairs (accuracy > 0.5)",
               len(accs) and (accs > 0.5).all(), ", ".join(f"{n} {v:.2f}" for n, v in accs.items())),
    ]
    return show_expectations(dpo_dir, "04_dpo", items)


def preference_rows(d, dry_run: bool):
    """04 section 3: load every round's preference data (counting dropped rows per source and reason), print one
    pair of round 1, and return the per-source counts."""
    import pandas as pd

    from .preference_data import DropReport, load_preferences

    if d.data_source == "hub" and dry_run:
        print("dry run with Hub data: nothing downloaded here")
        return pd.DataFrame()
    report, example = DropReport(), None
    for r in d.rounds:
        ds, rep = load_preferences(r.datasets, d.data_source, d.data_dir, d.max_samples_per_source, seed=d.seed)
        report.merge(rep)
        example = example or ds[0]
    print("one pair (round 1):")
    print("  prompt  :", example["prompt"][-1]["content"][:200])
    print("  chosen  :", example["chosen"][0]["content"][:200])
    print("  rejected:", example["rejected"][0]["content"][:200])
    return pd.DataFrame(report.rows()).fillna(0).set_index("source").astype(int)


def onpolicy_demo(params: Params, run_name: str, current: str):
    """04 section 7: on-policy pairs for the last round's prompts, sampled from `current` and ranked by the scorer."""
    import pandas as pd

    from .onpolicy import onpolicy_pairs
    from .scorers import make_scorer

    d, op = params.dpo, params.dpo.onpolicy
    pairs, op_report = onpolicy_pairs(params, resolve_model(params, run_name, current), d.rounds[-1].datasets,
                                      make_scorer(params))
    print(f"{op.k} samples per prompt from {current}, scorer {op.scorer}; rows: {op_report.as_dict()}")
    return pd.DataFrame({
        "prompt": [p[-1]["content"] for p in pairs["prompt"]],
        "chosen": [c[0]["content"] for c in pairs["chosen"]], "score_chosen": pairs["score_chosen"],
        "rejected": [r[0]["content"] for r in pairs["rejected"]], "score_rejected": pairs["score_rejected"],
    })
