"""05 at 8b on every GPU of the node: one model per GPU, each in its own process (CUDA_VISIBLE_DEVICES=i).

    slots = inference_plan.eval_slots(params)      # GPUs that can each take one model (1: one model at a time)
    run_workers(params, run_name, stages, slots)   # python -m med42_utils.benchmarks.job --only-model S, per GPU

A model that needs more than one GPU (70B: lm-eval spreads its layers over the node) runs alone, so the slots are 1
there. Each worker writes its model's files and done marker (run.DONE); the job then reads them back, so a killed
or requeued job finds every finished model and evaluates only the rest.
"""
from __future__ import annotations

import sys
from pathlib import Path

from ..gpu_workers import run_on_gpus
from ..params import Params


def worker_command(params: Params, run_name: str, stage: str, resume: bool,
                   extra_args: list[str] | None = None) -> list[str]:
    """`python -m med42_utils.benchmarks.job --only-model STAGE` with the job's params overrides (extra_args)."""
    return [sys.executable, "-m", "med42_utils.benchmarks.job", "--size", params.size, "--run-name", run_name,
            "--only-model", stage, *(extra_args or []), *([] if resume else ["--force"])]


def run_workers(params: Params, run_name: str, stages: list[str], slots: int, resume: bool = True,
                log_dir: Path | None = None, poll: float = 2.0, extra_args: list[str] | None = None) -> None:
    """Evaluate `stages` with up to `slots` worker processes at once, each on its own GPU (gpu_workers.run_on_gpus).
    A failed worker stops the others and raises with its log's tail; the finished models stay done."""
    from ..paths import run_dir

    log_dir = Path(log_dir or run_dir(params.size, run_name) / "eval" / "raw")
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f"one model per GPU: {len(stages)} model(s) on {slots} GPU(s): {', '.join(stages)}", flush=True)
    run_on_gpus([(s, worker_command(params, run_name, s, resume, extra_args), log_dir / f"{s}.worker.log")
                 for s in stages], slots, what="evaluating", poll=poll)
