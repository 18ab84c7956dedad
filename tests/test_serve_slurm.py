"""06's judging job on the tests' real SLURM (tests/realslurm.py) with answers and judge on the OpenAI-compatible
route: the job's script runs on the allocated node and starts `transformers serve` there, one server per model
and one for the judge, and stops each (the CPU stand-in for `vllm serve` on a GPU node)."""
from __future__ import annotations

import json
import shutil
import uuid

import pytest

import fakeslurm

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

from realslurm import SINGLE_CPU_CONFIG as SINGLE  # noqa: E402


def test_judging_job_starts_its_servers_on_the_allocated_node(tmp_path, monkeypatch, real_slurm):
    from med42_utils.judging.job import JOB_RECORD, answer_and_judge
    from med42_utils.manifest import write_manifest
    from med42_utils.notebook import start
    from med42_utils.tiny_model import resolve_base_model

    real_slurm.use(monkeypatch, poll_seconds=1)
    fakeslurm.use_tmp_root(tmp_path, monkeypatch)
    cfg = tmp_path / "single.yaml"
    cfg.write_text(SINGLE)
    ov = {"sft.hardware.accelerator": "h100", "sft.hardware.launcher": "accelerate",  # labelled GPU: submitted
          "sft.hardware.accelerate_config": str(cfg), "judge.models": ["base", "sft"], "judge.num_questions": 2,
          "extra_models": [], "judge.backend": "openai", "judge.model": "tiny", "judge.answers_backend": "openai",
          "judge.server": "transformers", "judge.server_timeout_s": 300, "judge.concurrency": 2}
    run = start("tiny", f"pytest-serve-{uuid.uuid4().hex[:6]}", ov)
    shutil.copytree(resolve_base_model(run.params), run.dir / "sft" / "model")  # stands in for a trained SFT
    write_manifest(run.dir / "sft", "03_sft", run.params)
    first = real_slurm.next_job_id()
    judge_dir = run.stage_dir("06_elo_judging")
    try:
        answer_and_judge(run.params, run.run_name, judge_dir, wait=True)
    finally:
        real_slurm.cancel_all()
    assert real_slurm.next_job_id() == first + 1  # one job did it all
    rec = json.loads((judge_dir / JOB_RECORD).read_text())
    assert rec["judge"] == "openai:tiny+ties"
    assert rec["counts"] == {"tasks": 4, "from_cache": 0, "judged_now": 4}  # 2 questions x 1 pair x 2 orders
    logs = {p.name: p.read_text() for p in (judge_dir / "servers").glob("*.log")}
    assert sorted(logs) == ["server-base.log", "server-judge.log", "server-sft.log"]
    assert all("POST /v1/chat/completions" in t for t in logs.values())
    for m in ("base", "sft"):
        lines = (judge_dir / "answers" / f"{m}.jsonl").read_text().splitlines()
        assert len(lines) == 2 and all(json.loads(l)["new_tokens"] >= 1 for l in lines)
