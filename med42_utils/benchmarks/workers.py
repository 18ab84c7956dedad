"""05 at 8b on every GPU of the node: one model per GPU, each in its own process (CUDA_VISIBLE_DEVICES=i).

    slots = inference_plan.eval_slots(params)      # GPUs that can each take one model (1: one model at a time)
    run_workers(params, run_name, stages, slots)   # python -m med42_utils.benchmarks.job --only-model S, per GPU

A model that needs more than one GPU (70B: lm-eval spreads its layers over the node) runs alone, so the slots are 1
there. Each worker writes its model's files and done marker (run.DONE); the job then reads them back, so a killed
or requeued job finds every finished model and evaluates only the rest.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from ..params import Params


def worker_command(params: Params, run_name: str, stage: str, resume: bool, extra_args: list[str] | None = None) -> list[str]:
    """`python -m med42_utils.benchmarks.job --only-model STAGE` with the job's params overrides (extra_args)."""
    return [sys.executable, "-m", "med42_utils.benchmarks.job", "--size", params.size, "--run-name", run_name,
            "--only-model", stage, *(extra_args or []), *([] if resume else ["--force"])]


def run_workers(params: Params, run_name: str, stages: list[str], slots: int, resume: bool = True,
                log_dir: Path | None = None, poll: float = 2.0, extra_args: list[str] | None = None) -> None:
    """Evaluate `stages` with up to `slots` worker processes at once, worker k on GPU k (CUDA_VISIBLE_DEVICES).
    A failed worker stops the others and raises with its log's tail; the finished models stay done."""
    from ..paths import run_dir

    log_dir = Path(log_dir or run_dir(params.size, run_name) / "eval" / "raw")
    log_dir.mkdir(parents=True, exist_ok=True)
    queue, running = list(stages), {}  # gpu -> (stage, Popen, log path)
    print(f"one model per GPU: {len(stages)} model(s) on {slots} GPU(s): {', '.join(stages)}", flush=True)
    try:
        while queue or running:
            for gpu in range(slots):
                if gpu not in running and queue:
                    stage = queue.pop(0)
                    log = log_dir / f"{stage}.worker.log"
                    env = dict(os.environ, CUDA_VISIBLE_DEVICES=str(gpu))
                    with open(log, "w") as f:
                        proc = subprocess.Popen(worker_command(params, run_name, stage, resume, extra_args), stdout=f,
                                                stderr=subprocess.STDOUT, env=env)
                    running[gpu] = (stage, proc, log)
                    print(f"[{stage}] started on GPU {gpu} (log {log})", flush=True)
            time.sleep(poll)
            for gpu, (stage, proc, log) in list(running.items()):
                rc = proc.poll()
                if rc is None:
                    continue
                del running[gpu]
                if rc != 0:
                    tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
                    raise RuntimeError(f"evaluating {stage} on GPU {gpu} failed (exit {rc}); log {log}:\n{tail}")
                print(f"[{stage}] done on GPU {gpu}", flush=True)
    finally:
        for stage, proc, _ in running.values():
            proc.terminate()
        for stage, proc, _ in running.values():
            proc.wait()
