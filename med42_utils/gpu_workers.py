"""Worker processes, one per GPU of the node: 05's one model per GPU (benchmarks.workers) and the on-policy
sampling's one replica per GPU (dpo.onpolicy_job) both start theirs here.

    run_on_gpus([(name, command, log path), ...], slots=8, what="evaluating")
"""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path


def node_gpu_ids(slots: int) -> list[str]:
    """The CUDA_VISIBLE_DEVICES value of each slot: the slot's entry of this process's own CUDA_VISIBLE_DEVICES when
    set (SLURM sets it; without a device cgroup it holds the node's own numbers, e.g. 4,5,6,7), else its index."""
    visible = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return [visible[i] if i < len(visible) else str(i) for i in range(slots)]


def run_on_gpus(tasks: list[tuple[str, list[str], Path]], slots: int, what: str, poll: float = 1.0) -> None:
    """Run each task (name, command, log) in its own process, at most `slots` at once, each on its own GPU
    (node_gpu_ids). A failed task stops the others and raises `<what> <name> on GPU g failed` with its log's tail."""
    gpus = node_gpu_ids(slots)
    queue, running = list(tasks), {}  # slot -> (name, Popen, log path)
    try:
        while queue or running:
            for slot in range(slots):
                if slot not in running and queue:
                    name, command, log = queue.pop(0)
                    with open(log, "w") as f:
                        proc = subprocess.Popen(command, stdout=f, stderr=subprocess.STDOUT,
                                                env=dict(os.environ, CUDA_VISIBLE_DEVICES=gpus[slot]))
                    running[slot] = (name, proc, log)
                    print(f"[{name}] started on GPU {gpus[slot]} (log {log})", flush=True)
            time.sleep(poll)
            for slot, (name, proc, log) in list(running.items()):
                rc = proc.poll()
                if rc is None:
                    continue
                del running[slot]
                if rc != 0:
                    tail = "\n".join(Path(log).read_text(errors="replace").splitlines()[-30:])
                    raise RuntimeError(f"{what} {name} on GPU {gpus[slot]} failed (exit {rc}); log {log}:\n{tail}")
                print(f"[{name}] done on GPU {gpus[slot]}", flush=True)
    finally:
        for _, proc, _ in running.values():
            proc.terminate()
        for _, proc, _ in running.values():
            proc.wait()
