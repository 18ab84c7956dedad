"""06 through OpenAI-compatible servers the job code starts (`transformers serve` on CPU standing in for
`vllm serve`): the same counts and caching as the in-process route, one server per model, none when cached."""
from __future__ import annotations

import json
import shutil
import uuid

import pytest

import fakeslurm

pytestmark = pytest.mark.slow

SERVED = ["judge.backend=openai", "judge.answers_backend=openai", "judge.server=transformers",
          "judge.server_timeout_s=300", "judge.concurrency=4"]
IN_PROCESS = ["judge.backend=transformers", "judge.answers_backend=transformers"]
COMMON = ['judge.models=["base","sft"]', "judge.num_questions=2", "extra_models=[]", "judge.model=tiny",
          "judge.batch_size=4", "judge.sampling.max_new_tokens=12", "judge.judge_sampling.max_new_tokens=12"]


@pytest.fixture
def runs(tmp_path, monkeypatch):
    """Two tiny runs in a temporary root, each with a copy of the base model standing in for a trained SFT."""
    from med42_utils.cli import parse_override_args
    from med42_utils.manifest import write_manifest
    from med42_utils.notebook import start
    from med42_utils.tiny_model import resolve_base_model

    fakeslurm.use_tmp_root(tmp_path, monkeypatch)
    out = []
    for sets in (SERVED, IN_PROCESS):
        run = start("tiny", f"pytest-serve-{uuid.uuid4().hex[:6]}", parse_override_args(COMMON + sets))
        shutil.copytree(resolve_base_model(run.params), run.dir / "sft" / "model")
        write_manifest(run.dir / "sft", "03_sft", run.params)
        out.append((run, sets))
    return out


def _job(run, sets, capsys):
    from med42_utils.judging import job

    args = ["--size", "tiny", "--run-name", run.run_name]
    for s in COMMON + sets:
        args += ["--set", s]
    assert job.main(args) == 0
    out = capsys.readouterr().out
    judge_dir = run.stage_dir("06_elo_judging")
    return json.loads((judge_dir / job.JOB_RECORD).read_text()), judge_dir, out


def _answers(judge_dir):
    return {p.stem: [json.loads(l) for l in p.read_text().splitlines()] for p in (judge_dir / "answers").glob("*.jsonl")}


def test_06_job_through_started_servers_matches_the_in_process_route(runs, capsys):
    (served_run, served), (local_run, local) = runs
    rec, judge_dir, out = _job(served_run, served, capsys)
    ref, ref_dir, _ = _job(local_run, local, capsys)

    # the same work: 2 answers per model, 2 questions x 1 pair x 2 orders judged
    assert rec["counts"] == ref["counts"] == {"tasks": 4, "from_cache": 0, "judged_now": 4}
    got, want = _answers(judge_dir), _answers(ref_dir)
    assert sorted(got) == sorted(want) == ["base", "sft"]
    for m in got:
        assert [a["question_id"] for a in got[m]] == [a["question_id"] for a in want[m]]
        assert all(a["new_tokens"] >= 1 for a in got[m])  # counted by the server (usage.completion_tokens)
    assert rec["judge"] == "openai:tiny+ties"
    # one server per model and one for the judge, each started and stopped by the job
    logs = sorted(p.name for p in (judge_dir / "servers").glob("*.log"))
    assert logs == ["server-base.log", "server-judge.log", "server-sft.log"]
    assert "POST /v1/chat/completions" in (judge_dir / "servers" / "server-judge.log").read_text()
    for p in (judge_dir / "servers").glob("*.log"):
        p.unlink()

    # re-run: everything cached, no server started at all
    rec2, _, out2 = _job(served_run, served, capsys)
    assert rec2["counts"] == {"tasks": 4, "from_cache": 4, "judged_now": 0}
    assert not list((judge_dir / "servers").glob("*.log")), "a server was started for cached work"
    assert _answers(judge_dir) == got
