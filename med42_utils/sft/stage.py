"""Notebook-facing helpers of 03_sft: the launch plan, running it, plots, a sample generation."""
from __future__ import annotations

from ..chat import SYSTEM_PROMPT
from ..hardware import check_hardware as check_notebook_hardware
from ..launch import JobPending, LaunchPlan, execute, override_args, plan_launch
from ..manifest import stage_done
from ..params import Params
from ..paths import run_dir

MODULE = "med42_utils.sft.train"


def sft_plan(params: Params, run_name: str, overrides: dict | None = None, force: bool = False) -> LaunchPlan:
    """The launch plan of SFT for these params (overrides travel to the entry point as --set). An interrupted
    run continues from its last checkpoint on its own; force=True starts again at step 0."""
    extra = override_args(overrides) + (["--force"] if force else [])
    return plan_launch(params, "sft", run_name, MODULE, extra)


def check_hardware(params: Params, dry_run: bool) -> None:
    """Fail fast on a machine that cannot run this size, unless only the plan is wanted."""
    check_notebook_hardware(params, "03_sft", dry_run)


def run_sft(plan: LaunchPlan, params: Params | None = None, run_name: str | None = None, force: bool = False,
            wait: bool = True) -> None:
    """Run the plan where this machine can (in-process, accelerate, srun, or sbatch and wait for the job).

    With params and run_name, a finished SFT (same params) is not launched again. wait=False on a login
    node submits the job and raises JobPending, which says how to continue (re-run the notebook)."""
    if params is not None and run_name is not None and not force:
        out = run_dir(params.size, run_name) / "sft"
        if stage_done(out, params):
            print(f"03_sft already done with these params in {out} (force=True re-trains)")
            return
    job = execute(plan, wait=wait)
    if job is not None and not wait:
        raise JobPending(job)


def plot_training(curves, source: str = ""):
    """Loss, learning rate and gradient norm against step (a DataFrame by step: training_logs.curves)."""
    import matplotlib.pyplot as plt

    from ..training_logs import spikes

    fig, (a, b, c) = plt.subplots(1, 3, figsize=(13, 3.6))
    steps = curves.index
    a.plot(steps, curves["loss"], marker="o", ms=3)
    a.set(xlabel="step", ylabel="training loss (assistant tokens)", title="SFT loss")
    b.plot(steps, curves["learning_rate"], marker=".", color="tab:orange")
    b.set(xlabel="step", ylabel="learning rate", title="linear warmup, cosine decay")
    if "grad_norm" in curves:
        c.plot(steps, curves["grad_norm"], marker=".", color="tab:green")
        sp = spikes(curves)
        a.scatter(sp.index, sp["loss"], s=80, facecolors="none", edgecolors="red", label="gradient-norm spike")
        c.set(xlabel="step", ylabel="gradient norm (before clipping)", title="gradient norm")
        if len(sp):
            a.legend(fontsize=8)
    if source:
        fig.suptitle(f"from {source}", fontsize=8, color="grey")
    fig.tight_layout()
    return fig


def generate(params: Params, model_path: str, question: str, max_new_tokens: int = 48) -> str:
    """Greedy answer of a model to a clinical question, with the model card's system prompt."""
    import torch

    from ..inference import load_for_inference

    model, tok, _ = load_for_inference(params, model_path, what="SFT model")
    msgs = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": question}]
    enc = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt",
                                  return_dict=True).to(model.device)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tok.pad_token_id)
    return tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
