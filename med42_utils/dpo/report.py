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
