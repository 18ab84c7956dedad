"""Round orchestration for 04_dpo: which rounds run, skip-if-done, chaining, launching, logs.

Round 1 starts from SFT; round N>1 starts from (and references) round N-1's saved model.
A finished round (manifest + saved model, built from the current manifest of the model it starts
from) is skipped unless force=True: retraining SFT or a round re-runs every round after it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..manifest import read_manifest, stage_done, write_manifest
from ..params import Params
from . import onpolicy_job
from .onpolicy_job import is_onpolicy
from ..stages import init_stage, round_names, round_spec
from .round_models import init_dir, resolve_init, round_dir
from .train import LOG_HISTORY
from ..paths import shown

MODULE = "med42_utils.dpo.train"


def generate_where_gpus_are(params: Params, run_name: str, name: str, force: bool = False, dry_run: bool = False,
                            wait: bool = True) -> None:
    """Make the round's on-policy pairs before its training launch (dpo.onpolicy_job): in this kernel at tiny,
    else a job on a GPU node (launch.run_job), whose model and scorer the inference loader places on that node's
    GPUs (sampling on every GPU, one worker each, when the model fits one: onpolicy_job.sampling_slots). dry_run prints the job's plan. wait=False raises launch.JobPending after submitting."""
    from ..hardware import in_kernel
    from ..cli import override_args
    from ..launch import params_overrides, plan_job, render_plan, run_job

    job, out, pairs = onpolicy_job.job_name(name), round_dir(params, run_name, name), onpolicy_job.pairs_dir(params, run_name, name)
    if dry_run:
        if not in_kernel(params):
            args = ["--round", name, *override_args(params_overrides(params))]
            print(render_plan(plan_job(params, job, run_name, out, onpolicy_job.MODULE, args)))
        return
    if not force and onpolicy_job.pairs_ready(params, run_name, name):
        print(f"{name}: on-policy pairs already made in {pairs} (reused)")
        return
    if in_kernel(params):
        doc = onpolicy_job.make_pairs(params, run_name, name, force=True)
        print(f"{name}: {doc['pairs']} on-policy pairs sampled from {doc['sampled_from']}")
        return
    run_job(params, job, run_name, out, onpolicy_job.MODULE, ["--round", name, *(["--force"] if force else [])],
            wait=wait, outputs=[pairs / onpolicy_job.META], inputs=[init_dir(params, run_name, name)])
    if not onpolicy_job.pairs_ready(params, run_name, name):
        raise RuntimeError(f"the on-policy job for {name} finished without writing {pairs}")


@dataclass
class RoundPlan:
    name: str
    datasets: list[str]
    init_stage: str
    out_dir: Path
    done: bool
    action: str  # "train" | "skip"


def round_done(params: Params, run_name: str, name: str) -> bool:
    """Trained with the same params from the current model it starts from (manifest.stage_done), model saved."""
    d = round_dir(params, run_name, name)
    return stage_done(d, params, inputs=[init_dir(params, run_name, name)]) and (d / "model" / "config.json").is_file()


def select_rounds(params: Params, round: str | int | None) -> list[str]:
    """None -> every round in params order; a name ("round2") or a number (2) -> just that round."""
    names = round_names(params)
    if round is None:
        return names
    if isinstance(round, int) and not isinstance(round, bool):
        if not 1 <= round <= len(names):
            raise ValueError(f"DPO round number {round} is out of range; rounds are 1..{len(names)}: {', '.join(names)}")
        return [names[round - 1]]
    round_spec(params, round)
    return [round]


def plan_rounds(params: Params, run_name: str, round: str | int | None = None, force: bool = False) -> list[RoundPlan]:
    plans, earlier_retrains = [], False
    for name in select_rounds(params, round):
        # a round after one that (re)trains starts from a new model, so it is not done either
        done = round_done(params, run_name, name) and not earlier_retrains
        earlier_retrains = earlier_retrains or force or not done
        plans.append(RoundPlan(name, round_spec(params, name).datasets, init_stage(params, name),
                               round_dir(params, run_name, name), done, "train" if force or not done else "skip"))
    return plans


def launch_plan(params: Params, run_name: str, name: str, overrides: Mapping[str, Any] | None = None,
                force: bool = False):
    """The shared launcher's plan (med42_utils.launch) for one round of `python -m med42_utils.dpo.train`
    (force: the round discards its checkpoints and starts at step 0)."""
    from ..launch import override_args, plan_launch
    from ..progress import PROGRESS

    args = ["--round", name, *override_args(overrides), *(["--force"] if force else [])]
    return plan_launch(params, "dpo", run_name, MODULE, args, job=f"dpo_{name}",
                       progress_file=round_dir(params, run_name, name) / PROGRESS)


def run_rounds(params: Params, run_name: str, round: str | int | None = None, force: bool = False,
               overrides: Mapping[str, Any] | None = None, dry_run: bool = False, wait: bool = True) -> list[RoundPlan]:
    """Train the selected rounds in order, skipping finished ones; in-process for tiny, else via the launcher.

    `overrides` are the params overrides the caller used; they are passed on to launched processes.
    wait=False (login node): submits the next unfinished round and raises JobPending; re-runs go on from there.
    """
    from ..launch import JobPending, execute, render_plan
    from .train import train_round

    plans = plan_rounds(params, run_name, round, force)
    for p in plans:
        # decided again here: retraining an earlier round in this loop makes the later ones out of date
        if not force and round_done(params, run_name, p.name):
            print(f"{p.name}: already trained in {shown(p.out_dir)} (skipped; force=True retrains it)")
            continue
        onpolicy = is_onpolicy(params, p.name)
        if dry_run:
            if onpolicy:  # its pairs' generation job comes first
                generate_where_gpus_are(params, run_name, p.name, dry_run=True)
            print(render_plan(launch_plan(params, run_name, p.name, overrides, force)))
            continue
        init = resolve_init(params, run_name, p.name)  # fails early, naming a missing previous round
        if onpolicy:  # pairs sampled where the GPUs are, written once, before the training launch reads them
            generate_where_gpus_are(params, run_name, p.name, force=force, wait=wait)
        print(f"{p.name}: training on {', '.join(p.datasets)} from {shown(init)} (also the frozen reference)")
        if params.dpo.hardware.launcher == "inprocess":
            if "stopped_at" in train_round(params, run_name, p.name, force=force):
                print(f"{p.name}: stopped at a checkpoint before its last step; run again to continue from it")
                return plans
        else:
            job = execute(launch_plan(params, run_name, p.name, overrides, force), wait=wait)
            if job is not None and not wait:
                raise JobPending(job)
        stale = stale_after(params, run_name, p.name, [q.name for q in plans])
        if stale:
            print(f"note: {', '.join(stale)} were trained from the previous {p.name}; the next run of all rounds retrains them")
    if not dry_run and all(round_done(params, run_name, n) for n in round_names(params)):
        write_stage_manifest(params, run_name)
    return plans


def stale_after(params: Params, run_name: str, name: str, being_run: list[str]) -> list[str]:
    """Rounds after `name` that this call does not retrain although they were trained (from the old `name`)."""
    names = round_names(params)
    later = names[names.index(name) + 1:]
    return [n for n in later if n not in being_run and (round_dir(params, run_name, n) / "manifest.json").is_file()]


def write_stage_manifest(params: Params, run_name: str, **extra: Any) -> Path:
    """dpo/manifest.json: one summary per round (pairs, rows dropped, final metrics, chaining)."""
    rounds = {}
    for n in round_names(params):
        m = read_manifest(round_dir(params, run_name, n))
        rounds[n] = {k: m.get(k) for k in ("init_stage", "init_from", "reference", "model_dir", "train_pairs", "rows",
                                           "global_steps", "train_loss", "final", "world_size", "onpolicy")}
    return write_manifest(round_dir(params, run_name, round_names(params)[0]).parent, "04_dpo", params,
                          inputs=[round_dir(params, run_name, n) for n in round_names(params)], rounds=rounds, round_names=round_names(params), **extra)


def round_curves(params: Params, run_name: str) -> tuple[dict, str]:
    """Each finished round's curves by step (its TensorBoard event files, or its log history without them)
    -> ({round: DataFrame}, where they came from)."""
    from ..training_logs import curves

    out, sources = {}, set()
    for n in round_names(params):
        d = round_dir(params, run_name, n)
        f = d / LOG_HISTORY
        if not f.is_file():
            continue
        out[n], src = curves(d, json.loads(f.read_text()))
        sources.add("TensorBoard event files in dpo/<round>/tensorboard/" if src.startswith("TensorBoard") else src)
    return out, "; ".join(sorted(sources))


def compare_rounds(params: Params, run_name: str):
    """One row per finished round: pairs, steps, and the round's metrics as MEANS over its steps (a single
    2-pair step says little); the margin and accuracy also over the last epoch, where the round ends up."""
    import pandas as pd

    from ..training_logs import spikes

    rows = []
    for n in round_names(params):
        if not round_done(params, run_name, n):
            continue
        d = round_dir(params, run_name, n)
        m = read_manifest(d)
        logs = pd.DataFrame([h for h in json.loads((d / LOG_HISTORY).read_text()) if "loss" in h]).set_index("step")
        last = logs[logs["epoch"] > logs["epoch"].max() - 1]  # the final epoch's steps
        dropped = sum(sum(c.values()) for c in m["rows"]["dropped"].values())
        sp = spikes(logs)
        rows.append({"round": n, "starts from": m["init_stage"], "pairs": m["train_pairs"], "rows dropped": dropped,
                     "steps": m["global_steps"], "loss (round mean)": logs["loss"].mean(),
                     "margin (round mean)": logs["rewards/margins"].mean(),
                     "margin (last-epoch mean)": last["rewards/margins"].mean(),
                     "accuracy (last-epoch mean)": last["rewards/accuracies"].mean(),
                     "spikes (grad norm > 10x round median)": _spike_note(sp)})
    return pd.DataFrame(rows).set_index("round") if rows else pd.DataFrame()


def _spike_note(sp) -> str:
    if sp.empty:
        return "none"
    step, r = max(sp.iterrows(), key=lambda t: t[1]["grad_norm"])
    return f"{len(sp)}; largest at step {step}: loss {r['loss']:.2f}, grad norm {r['grad_norm']:.0f}"


def round_manifests(params: Params, run_name: str) -> dict[str, dict]:
    """The manifests of the finished rounds, by round name."""
    return {n: read_manifest(round_dir(params, run_name, n)) for n in round_names(params) if round_done(params, run_name, n)}
