"""gpu_workers: the worker processes 05 (one model per GPU) and the on-policy sampling (one replica per GPU) start,
each on its own GPU of the node. Real processes; no GPU needed (only the variable each one is given is checked)."""
from __future__ import annotations

import sys
import time

import pytest

from med42_utils.gpu_workers import node_gpu_ids, run_on_gpus


def test_slots_take_the_allocations_own_gpu_numbers(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert node_gpu_ids(3) == ["0", "1", "2"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5, 6,7")  # SLURM's list without a device cgroup
    assert node_gpu_ids(4) == ["4", "5", "6", "7"]


def _print_gpu(tag: str) -> list[str]:
    return [sys.executable, "-c", f"import os; print('{tag}', os.environ['CUDA_VISIBLE_DEVICES'])"]


def test_each_task_runs_on_its_slots_gpu_at_most_slots_at_once(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "6,7")
    tasks = [(f"t{i}", _print_gpu(f"t{i}"), tmp_path / f"t{i}.log") for i in range(3)]
    run_on_gpus(tasks, slots=2, what="testing", poll=0.05)
    gpus = {i: (tmp_path / f"t{i}.log").read_text().split() for i in range(3)}
    assert gpus[0] == ["t0", "6"] and gpus[1] == ["t1", "7"] and gpus[2][1] in ("6", "7")
    assert capsys.readouterr().out.count("done on GPU") == 3


def test_a_failed_task_stops_the_others_and_names_itself_with_its_log(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    slow = tmp_path / "slow.log"
    tasks = [("slow", [sys.executable, "-c", "import time; time.sleep(60)"], slow),
             ("bad", [sys.executable, "-c", "raise SystemExit('no model here')"], tmp_path / "bad.log")]
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match=r"(?s)testing bad on GPU 1 failed \(exit 1\); log .*bad\.log:\n.*no model"):
        run_on_gpus(tasks, slots=2, what="testing", poll=0.05)
    assert time.monotonic() - t0 < 30  # the sleeping task was stopped, not waited for
