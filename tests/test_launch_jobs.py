"""05's lm-eval, 06's answers + judging and the sample answers of 03/04 run as jobs where the GPUs are;
the notebook then reads what the job wrote. Here the "GPU node" is a node of the real test cluster
(tests/realslurm.py) running the job module on CPU (tiny model labelled as needing an H100)."""
from __future__ import annotations

import json
import shutil
import uuid

import pytest

import fakeslurm
from med42_utils.hardware import in_kernel
from med42_utils.launch import params_overrides
from med42_utils.params import load_params

from realslurm import SINGLE_CPU_CONFIG as SINGLE  # noqa: E402


@pytest.fixture
def gpu_labelled_run(tmp_path, monkeypatch, real_slurm):
    """A temporary repo root, the real test cluster, and a tiny run whose GPU work is placed on 1 H100."""
    from med42_utils.manifest import write_manifest
    from med42_utils.notebook import start
    from med42_utils.tiny_model import resolve_base_model

    fakeslurm.use_tmp_root(tmp_path, monkeypatch)
    real_slurm.use(monkeypatch, poll_seconds=0.5)
    cfg = tmp_path / "single.yaml"
    cfg.write_text(SINGLE)
    ov = {"sft.hardware.accelerator": "h100", "sft.hardware.launcher": "accelerate",
          "sft.hardware.accelerate_config": str(cfg), "eval.models": ["base", "sft"], "eval.limit": 2,
          "eval.tasks": ["med42_pubmedqa", "med42_usmle_sa"],
          "judge.models": ["base", "sft"], "judge.num_questions": 2,
          "extra_models": []}  # the stages only: the tests count their jobs and answers
    run = start("tiny", f"pytest-jobs-{uuid.uuid4().hex[:6]}", ov)
    # the SFT stage's model: a copy of the base model stands in for a trained one
    sft = run.dir / "sft"
    shutil.copytree(resolve_base_model(run.params), sft / "model")
    write_manifest(sft, "03_sft", run.params)
    yield run
    real_slurm.cancel_all()


def test_overrides_travel_to_the_job():
    p = load_params("tiny", {"eval.limit": 3, "judge.models": ["base", "sft"], "sft.hardware.accelerator": "h100"})
    assert params_overrides(p) == {"eval.limit": 3, "judge.models": ["base", "sft"], "sft.hardware.accelerator": "h100"}
    assert params_overrides(load_params("tiny")) == {}
    assert in_kernel(load_params("tiny")) and not in_kernel(p) and not in_kernel(load_params("8b"))


def test_recorded_judge_reads_verdicts_and_never_judges(tmp_path):
    from med42_utils.judging.job import RecordedJudge, notebook_judge

    p = load_params("8b")
    with pytest.raises(FileNotFoundError, match="judging job has not finished"):
        notebook_judge(p, tmp_path)
    (tmp_path / "job.json").write_text(json.dumps({"judge": "vllm:prometheus"}))
    judge = notebook_judge(p, tmp_path)
    assert isinstance(judge, RecordedJudge) and judge.name == "vllm:prometheus"
    with pytest.raises(RuntimeError, match="missing from the cache"):
        judge.compare_many([("q", "a", "b", None)])


@pytest.mark.slow
@pytest.mark.slurm
def test_eval_job_writes_what_the_notebook_shows(gpu_labelled_run, real_slurm, capsys):
    """05: lm-eval in the job; the notebook reads results.csv and the manifest; a re-run submits nothing.
    (06's judging and 03/04's sample answers: test_slurm_jobs_real.py.)"""
    from med42_utils.benchmarks.job import evaluate, overview_frame
    from med42_utils.manifest import read_manifest

    run = gpu_labelled_run
    params = run.params
    first = real_slurm.next_job_id()
    eval_dir = run.stage_dir("05_benchmarks")
    evaluate(run, overview_frame(params))
    m = read_manifest(eval_dir)
    assert set(m["models"]) == {"base", "sft"} and (eval_dir / "results.csv").is_file()
    assert real_slurm.next_job_id() == first + 1
    assert f"[job {first} COMPLETED]" in capsys.readouterr().out
    script = (eval_dir / "launch_eval.slurm").read_text()
    assert "python -m med42_utils.benchmarks.job --size tiny" in script and 'eval.models=["base", "sft"]' in script
    assert "#SBATCH --nodes=1" in script and "#SBATCH --gres=gpu:1" in script
    evaluate(run, overview_frame(params))  # done: nothing submitted
    assert real_slurm.next_job_id() == first + 1


@pytest.mark.slurm
def test_dpo_rounds_wait_false_submits_one_round_and_a_rerun_waits_for_it(gpu_labelled_run, real_slurm, capsys):
    """A GPU-placed DPO from a login node: wait=False submits round1 only and stops with JobPending;
    the re-run finds round1's job still queued or running and waits for it (no second sbatch), and when the job
    is cancelled from outside (scancel) the re-run raises CANCELLED with the job id."""
    import threading
    import time

    from med42_utils import slurm
    from med42_utils.dpo.rounds import run_rounds
    from med42_utils.launch import JobPending
    from med42_utils.params import load_params

    run = gpu_labelled_run
    cfg = run.params.sft.hardware.accelerate_config
    ov = {**{k: v for k, v in params_overrides(run.params).items()}, "dpo.hardware.accelerator": "h100",
          "dpo.hardware.launcher": "accelerate", "dpo.hardware.accelerate_config": cfg}
    params = load_params("tiny", ov)
    first = real_slurm.next_job_id()
    with pytest.raises(JobPending, match=f"SLURM job {first}") as e:
        run_rounds(params, run.run_name, overrides=ov, wait=False)
    assert e.value.job.script.endswith("dpo/launch_dpo_round1.slurm")

    def cancel_while_waited_for():
        while "waiting for it" not in capsys.readouterr().out and time.time() - t0 < 60:
            time.sleep(0.2)
        real_slurm.run(["scancel", str(first)])

    t0 = time.time()
    threading.Thread(target=cancel_while_waited_for, daemon=True).start()
    with pytest.raises(slurm.SlurmError, match=rf"(?s)SLURM job {first} \(med42-dpo_round1-tiny\) ended CANCELLED"):
        run_rounds(params, run.run_name, overrides=ov)
    assert real_slurm.next_job_id() == first + 1
