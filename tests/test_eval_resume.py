"""Issue 27.5: 05's eval job resumes per model after a kill or a time limit, and at 8b puts one model on each GPU."""
from __future__ import annotations

import json
import shutil
import uuid

import pytest

from med42_utils.benchmarks import run as bench
from med42_utils.manifest import write_manifest
from med42_utils.params import load_params
from med42_utils.paths import run_dir
from med42_utils.stages import stage_model_dir

OV = {"eval.limit": 1, "eval.tasks": ["med42_medqa_4options"], "eval.models": ["base", "sft", "dpo_round1"],
      "eval.letter_models": [], "extra_models": []}


@pytest.fixture
def three_models(tiny_model_path):
    """A tiny run whose sft and dpo_round1 are copies of the tiny base model (with their manifests)."""
    p = load_params("tiny")
    name = f"pytest-resume-{uuid.uuid4().hex[:6]}"
    for stage in ("sft", "dpo_round1"):
        d = stage_model_dir(p, name, stage)
        shutil.copytree(tiny_model_path, d)
        write_manifest(d.parent, f"standin-{stage}", p)
    yield name
    shutil.rmtree(run_dir("tiny", name), ignore_errors=True)


REAL_MAKE_LM = bench.make_lm


class Killed(BaseException):
    """What a SIGKILL or the time limit's requeue does to the job: it stops wherever it is, past any `except
    Exception`."""


def _count_loads(monkeypatch, fail_on: str | None = None) -> list[str]:
    loaded: list[str] = []
    real = REAL_MAKE_LM

    def make_lm(params, path):
        loaded.append(str(path))
        if fail_on is not None and fail_on in str(path):
            # stands in for SIGKILL / the time limit's requeue while the third model is being evaluated: nothing
            # of it is on disk (its done marker is written only after its files)
            raise Killed()
        return real(params, path)

    monkeypatch.setattr(bench, "make_lm", make_lm)
    return loaded


def test_eval_killed_after_its_second_model_resumes_at_the_third(three_models, tmp_path, monkeypatch):
    p = load_params("tiny", OV)
    loaded = _count_loads(monkeypatch, fail_on="round1")
    with pytest.raises(Killed):
        bench.run_models(p, three_models, tmp_path)
    assert len(loaded) == 3
    assert sorted(x.name for x in (tmp_path / "raw").glob(f"*{bench.DONE}")) == [f"base{bench.DONE}", f"sft{bench.DONE}"]

    loaded = _count_loads(monkeypatch)  # the requeued job
    out = bench.run_models(p, three_models, tmp_path)
    assert len(loaded) == 1 and "round1" in loaded[0], loaded  # base and sft kept, only the third evaluated
    assert list(out) == ["base", "sft", "dpo_round1"]
    assert out["base"]["scores"] == out["dpo_round1"]["scores"]  # same weights, same scores: the kept results hold

    loaded = _count_loads(monkeypatch)
    bench.run_models(p, three_models, tmp_path)
    assert loaded == []  # all done: nothing redone
    bench.run_models(p, three_models, tmp_path, resume=False)
    assert len(loaded) == 3  # force: every model again


def test_a_changed_model_or_setting_is_evaluated_again(three_models, tmp_path, monkeypatch):
    p = load_params("tiny", OV)
    bench.run_models(p, three_models, tmp_path)
    write_manifest(stage_model_dir(p, three_models, "sft").parent, "standin-sft-retrained", p)  # sft retrained
    loaded = _count_loads(monkeypatch)
    bench.run_models(p, three_models, tmp_path)
    assert len(loaded) == 1 and "sft" in loaded[0]
    loaded = _count_loads(monkeypatch)
    bench.run_models(load_params("tiny", {**OV, "eval.limit": 2}), three_models, tmp_path)
    assert len(loaded) == 3  # another row sample: every model again
    marker = json.loads((tmp_path / "raw" / f"base{bench.DONE}").read_text())
    assert marker["request"]["eval"]["limit"] == 2 and marker["result"]["scores"]


def test_parallel_slots_one_model_per_gpu_at_8b_one_at_a_time_at_70b():
    from med42_utils.inference_plan import eval_slots

    assert eval_slots(load_params("8b"), gpus=8) == 6   # 5 stages + the Med42-v2-8B release, 18.5 GiB each
    assert eval_slots(load_params("8b"), gpus=1) == 1
    assert eval_slots(load_params("70b"), gpus=8) == 1  # 138 GiB: spread over the node, one model at a time


@pytest.mark.slow
def test_workers_evaluate_one_model_each_and_the_job_reads_them_back(three_models, monkeypatch):
    """Two real worker processes (CUDA_VISIBLE_DEVICES 0 and 1; on this CPU machine the variable is set and unused),
    each `python -m med42_utils.benchmarks.job --only-model`; then the job evaluates nothing itself."""
    from med42_utils.benchmarks.workers import run_workers, worker_command

    p = load_params("tiny", OV)
    cmd = worker_command(p, three_models, "sft", True, ["--set", "eval.limit=1"])
    assert cmd[cmd.index("--only-model") + 1] == "sft" and "--force" not in cmd and cmd[-2:] == ["--set", "eval.limit=1"]
    out_dir = run_dir("tiny", three_models) / "eval"
    from med42_utils.cli import override_args
    from med42_utils.launch import params_overrides

    run_workers(p, three_models, ["base", "sft"], slots=2, log_dir=out_dir / "raw", poll=0.5,
                extra_args=override_args(params_overrides(p)))  # the workers evaluate with these same params
    assert (out_dir / "raw" / f"base{bench.DONE}").is_file() and (out_dir / "raw" / f"sft{bench.DONE}").is_file()
    assert "started on GPU" not in (out_dir / "raw" / "base.worker.log").read_text()
    loaded = _count_loads(monkeypatch)
    out = bench.run_models(p, three_models, out_dir)
    assert len(loaded) == 1 and "round1" in loaded[0]  # the workers' two models were read back
    assert out["base"]["scores"] == out["sft"]["scores"]
