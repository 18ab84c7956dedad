"""Finished work is not submitted again, counted on a real SLURM controller (tests/realslurm.py).

03/04's sample answers and 06's judging run as jobs where the GPUs are (here: the tiny model labelled as needing an
H100, so this CPU machine must submit them). With wait=False the notebook stops after submitting; re-running it
waits for the job while it runs and, once the job has written its outputs for the same request, submits nothing.
"""
from __future__ import annotations

import shutil
import uuid

import pytest

import fakeslurm

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

from realslurm import SINGLE_CPU_CONFIG as SINGLE  # noqa: E402


@pytest.fixture
def gpu_labelled_run(tmp_path, monkeypatch, real_slurm):
    """A temporary repo root and a tiny run whose GPU jobs are placed on 1 H100 (submitted to the real cluster)."""
    from med42_utils.manifest import write_manifest
    from med42_utils.notebook import start
    from med42_utils.tiny_model import resolve_base_model

    real_slurm.use(monkeypatch, poll_seconds=1)
    fakeslurm.use_tmp_root(tmp_path, monkeypatch)
    cfg = tmp_path / "single.yaml"
    cfg.write_text(SINGLE)
    ov = {"sft.hardware.accelerator": "h100", "sft.hardware.launcher": "accelerate",
          "sft.hardware.accelerate_config": str(cfg), "judge.models": ["base", "sft"], "judge.num_questions": 2,
          "extra_models": []}  # the stages only: the tests count their jobs and answers
    run = start("tiny", f"pytest-jobs-{uuid.uuid4().hex[:6]}", ov)
    sft = run.dir / "sft"   # a copy of the base model stands in for a trained one
    shutil.copytree(resolve_base_model(run.params), sft / "model")
    write_manifest(sft, "03_sft", run.params)
    yield run
    real_slurm.cancel_all()   # leave the cluster empty for the next test


def _rerun_until_done(call, timeout=400):
    """Re-run a notebook cell with wait=False until it no longer stops at JobPending; how many re-runs stopped."""
    import time

    from med42_utils.launch import JobPending

    t0, pending = time.time(), 0
    while time.time() - t0 < timeout:
        try:
            return call(), pending
        except JobPending:
            pending += 1
            time.sleep(1)
    raise TimeoutError("the job did not finish")


def test_reruns_after_wait_false_submit_each_job_once(real_slurm, gpu_labelled_run, capsys):
    from med42_utils.dpo.samples_job import answers_where_gpus_are
    from med42_utils.judging.job import answer_and_judge, notebook_judge
    from med42_utils.launch import JobPending

    run = gpu_labelled_run
    params, q = run.params, "What is sepsis?"
    first = real_slurm.next_job_id()
    samples = lambda question=q: answers_where_gpus_are(params, run.run_name, question, ["base", "sft"],  # noqa: E731
                                                        stage="sft", wait=False)

    # 03's sample answers: the first run submits and stops; re-runs stop again while the job runs, then show it
    with pytest.raises(JobPending):
        samples()
    assert real_slurm.next_job_id() == first + 1
    df, pending = _rerun_until_done(samples)
    assert list(df["model"]) == ["base", "sft"] and pending >= 1
    again, _ = _rerun_until_done(samples)
    assert again.equals(df)
    assert "sft_samples: already done" in capsys.readouterr().out
    assert real_slurm.next_job_id() == first + 1, "re-runs submitted a job for answers already written"
    # another question is another request: one more job
    with pytest.raises(JobPending):
        samples("What is a stroke?")
    assert real_slurm.next_job_id() == first + 2

    # 06's answers and judging, by the notebook's own call
    judge_dir = run.stage_dir("06_elo_judging")
    judge = lambda: answer_and_judge(params, run.run_name, judge_dir, wait=False)  # noqa: E731
    with pytest.raises(JobPending):
        judge()
    _, pending = _rerun_until_done(judge)
    assert pending >= 1
    judge()
    assert "judge: already done" in capsys.readouterr().out
    assert real_slurm.next_job_id() == first + 3, "one job for each request, however often the notebook re-ran"

    # the notebook reads the job's answers and verdicts back without a model
    from med42_utils.judging.battles import judge_all, judgments_frame
    from med42_utils.judging.cache import JudgmentCache
    from med42_utils.judging.questions import questions_from_params
    from med42_utils.judging.stage import JUDGMENTS, answer_all

    questions, _ = questions_from_params(params)
    answers, info = answer_all(params, run.run_name, questions, judge_dir)
    assert list(info["generated"]) == [0, 0] and list(info["cached"]) == [2, 2]
    verdicts = notebook_judge(params, judge_dir)
    cache = JudgmentCache(judge_dir / JUDGMENTS)
    counts = judge_all(questions, answers, verdicts, cache, list(params.judge.models), batch_size=4)
    assert len(judgments_frame(cache, verdicts.name)) == 2 * 2  # 2 questions x 1 pair x 2 orders
    assert counts == {"tasks": 4, "from_cache": 4, "judged_now": 0}  # the notebook judged nothing itself
