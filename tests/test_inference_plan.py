"""Issue 27.4: 05's and 06's jobs planned from params alone (GPUs, memory = weights + KV cache, hours, script),
at 8b, 70b and workshop, on a machine with no data and no GPU; preflight refuses what cannot fit, naming the key."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from med42_utils import inference_plan, slurm_site
from med42_utils.estimates import GIB, LLAMA3_70B, LLAMA3_8B, MIXTRAL_8X7B

# 06 in the job's own process (the loader), instead of the 8b/70b params' vLLM servers
IN_PROCESS = {"judge.backend": "transformers", "judge.answers_backend": "transformers", "judge.server": "none"}
from med42_utils.params import load_params
from med42_utils.paths import repo_root, run_dir


@pytest.fixture(autouse=True)
def no_cluster_no_data(monkeypatch):
    """No sinfo of this machine, and any attempt to read a dataset or a model fails the test."""
    monkeypatch.setattr(slurm_site, "read_sinfo", lambda: None)
    import datasets
    import transformers

    def refuse(*a, **k):
        raise AssertionError(f"a plan read data or a model: {a[:1]}")

    monkeypatch.setattr(datasets, "load_dataset", refuse)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", refuse)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", refuse)


def test_model_memory_is_weights_plus_kv_cache_at_the_cards_lengths():
    p = load_params("70b", IN_PROCESS)
    fig = inference_plan.job_figures(p, "judge", 8)
    answers = next(m for m in fig.models if m.name == "sft")
    seq = inference_plan.ANSWER_PROMPT_TOKENS + p.judge.sampling.max_new_tokens  # the card's 512 new tokens
    assert answers.seq_tokens == seq and answers.batch == p.judge.batch_size
    assert answers.weights_gib == pytest.approx(2 * LLAMA3_70B.parameters / GIB)
    assert answers.kv_gib == pytest.approx(p.judge.batch_size * seq * LLAMA3_70B.kv_bytes_per_token() / GIB)
    assert answers.gpus == 3  # 146.4 GiB of weights + KV cache over 80 GB GPUs at 90%, less 1.5 GiB each
    assert answers.total_gib == pytest.approx(answers.weights_gib + answers.kv_gib + 3 * 1.5)  # overhead per GPU
    judge = fig.models[-1]
    assert judge.role == "judge" and judge.shape is MIXTRAL_8X7B
    assert 46.0e9 < judge.shape.parameters < 47.5e9 and judge.gpus == 2  # Prometheus 8x7B does not fit one H100


@pytest.mark.parametrize("size", ["8b", "70b"])
def test_served_models_hold_the_gpus_serve_gives_them(size):
    """judge.server vllm (the 8b/70b params): every answering model and the judge run in a vLLM server the job
    starts on its node, sized by serve.parallel_sizes (inference.fit) for judge.concurrency requests of
    judge.server_max_model_len tokens per replica: 8B 1 GPU x 8 replicas, 70B 4 x 2, the 8x7B judge 2 x 4."""
    from med42_utils.serve import parallel_sizes

    p = load_params(size)
    j = p.judge
    assert (j.backend, j.answers_backend, j.server) == ("openai", "openai", "vllm")
    fig = inference_plan.job_figures(p, "judge", 8)
    want = {"8b": (1, 8), "70b": (4, 2)}[size]
    for m in fig.models:
        assert m.route == inference_plan.SERVER and (m.batch, m.seq_tokens) == (j.concurrency, j.server_max_model_len)
        par = parallel_sizes(m.shape, 8, inference_plan.GPU_GIB, j.concurrency * j.server_max_model_len)
        assert (m.parallel.tensor, m.parallel.data) == (par.tensor, par.data)
        assert (par.tensor, par.data) == (want if m.role == "answers" else (2, 4))
        assert m.parallel.tensor >= m.gpus  # fit's count, rounded up to a power of two
    text = "\n".join(fig.lines())
    assert text.count("served by the job's vLLM server: vllm serve --tensor-parallel-size") == len(fig.models)
    assert "placed by the inference loader" not in text and fig.problems(8) == []
    # all GPUs busy: a served model's rate is the in-process one at its batch x TP x DP
    inproc = inference_plan.job_figures(load_params(size, IN_PROCESS), "judge", 8)
    assert fig.models[0].rate > inproc.models[0].rate
    # a node too small for 70B's server names the keys to change
    if size == "70b":
        small = inference_plan.job_figures(load_params(size, {"sft.hardware.gpus_per_node": 2,
                                                              "sft.gradient_accumulation_steps": 4}), "judge", 2)
        probs = small.problems(2)
        assert probs and "judge.concurrency or judge.server_max_model_len" in probs[0]
        one = inference_plan.job_figures(load_params(size, {"sft.hardware.gpus_per_node": 1,
                                                            "sft.gradient_accumulation_steps": 8}), "judge", 1)
        assert "sft.hardware.gpus_per_node, now 1" in one.problems(1)[0]


def test_a_remote_endpoint_puts_no_model_on_the_jobs_gpus():
    p = load_params("8b", {"judge.server": "none", "judge.api_base": "http://127.0.0.1:9/v1"})
    fig = inference_plan.job_figures(p, "judge", 8)
    assert fig.models == [] and any("judge.api_base" in n for n in fig.notes)


@pytest.mark.parametrize("size", ["8b", "70b", "workshop"])
def test_eval_and_judge_job_plans_render_from_params_alone(size, tmp_path):
    from med42_utils.benchmarks.job import MODULE as EVAL
    from med42_utils.judging.job import judge_plan
    from med42_utils.launch import job_plan, render_plan

    p = load_params(size)
    name = f"pytest-infplan-{uuid.uuid4().hex[:6]}"
    try:
        for plan in (job_plan(p, "eval", name, run_dir(size, name) / "eval", EVAL),
                     judge_plan(p, name, run_dir(size, name) / "judge")):
            text = render_plan(plan)
            assert plan.est_hours and plan.est_hours > 0 and plan.memory_gib["total"] > plan.memory_gib["weights (bf16)"]
            assert "#SBATCH --time=" in plan.slurm_script and "--signal=B:USR1@" in plan.slurm_script
            assert "GPU(s) of 80 GB" in text and "KV cache" in text and plan.capacity_problems == []
            if size == "workshop":
                assert "#SBATCH --mem=" in plan.slurm_script and "--mem=0" not in plan.slurm_script
    finally:
        import shutil

        shutil.rmtree(run_dir(size, name), ignore_errors=True)


def test_eval_plan_uses_every_gpu_at_8b_and_one_model_at_a_time_at_70b():
    f8 = inference_plan.job_figures(load_params("8b"), "eval", 8)
    f70 = inference_plan.job_figures(load_params("70b"), "eval", 8)
    assert f8.parallel == len(f8.models) == 6 and f8.hours == pytest.approx(max(m.hours for m in f8.models))
    assert f70.parallel == 1 and f70.hours == pytest.approx(sum(m.hours for m in f70.models))
    assert all(m.gpus == 2 for m in f70.models)


def test_a_request_that_cannot_fit_is_refused_naming_the_key():
    from med42_utils.launch import job_plan, readiness_problems

    p = load_params("70b", {"sft.hardware.gpus_per_node": 1, "sft.gradient_accumulation_steps": 8, **IN_PROCESS})
    plan = job_plan(p, "judge", "pytest-nofit", run_dir("70b", "pytest-nofit") / "judge", "med42_utils.judging.job")
    assert plan.capacity_problems and "sft.hardware.gpus_per_node, now 1" in plan.capacity_problems[0]
    assert any("sft.hardware.gpus_per_node" in x for x in readiness_problems(plan, "local"))
    two = load_params("70b", {"sft.hardware.gpus_per_node": 2, "sft.gradient_accumulation_steps": 4, **IN_PROCESS})
    # 70B's weights fit two GPUs; its KV cache at batch 64 does not: the fix is the batch
    assert "lower judge.batch_size" in inference_plan.job_figures(two, "judge", 2).problems(2)[0]
    kv = load_params("70b", {"judge.batch_size": 4096, **IN_PROCESS})  # 4,000 answers at once: a 0.9 TiB KV cache
    assert any("lower judge.batch_size" in x for x in inference_plan.job_figures(kv, "judge", 8).problems(8))
    assert inference_plan.job_figures(load_params("workshop"), "judge", 1).problems(1) == []


def _papermill(nb, out, *params):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "papermill", nb, str(out), *params], cwd=repo_root(),
                          capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.slow
@pytest.mark.parametrize("nb,size,marker", [("05_benchmarks", "8b", "Launch plan: eval"),
                                            ("06_elo_judging", "70b", "Launch plan: judge")])
def test_dry_run_notebook_renders_the_job_plan_without_data(nb, size, marker, tmp_path):
    """Before: 05 stopped on HubUnreachableError 'cais/mmlu', 06 on a missing questions file."""
    name = f"pytest-dry-{uuid.uuid4().hex[:6]}"
    r = _papermill(f"notebooks/{nb}.ipynb", tmp_path / "out.ipynb", "-p", "size", size, "-p", "run_name", name,
                   "-p", "dry_run", "True")
    text = (tmp_path / "out.ipynb").read_text()
    import shutil

    shutil.rmtree(run_dir(size, name), ignore_errors=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert marker in text and "KV cache" in text and "#SBATCH --time=" in text and "HubUnreachable" not in text
    if nb == "06_elo_judging":  # 70b's answers and judge in vLLM servers the job starts, sized to the node
        assert "vllm serve --tensor-parallel-size 4 --data-parallel-size 2" in text
        assert "vllm serve --tensor-parallel-size 2 --data-parallel-size 4" in text


def test_the_plan_shows_where_the_inference_loader_puts_each_model():
    """The plan's placement line is the loader's own arithmetic (inference.placement_for) for the job's node, so
    plan and job agree: 8B one GPU per replica, 70B spread over the node; a vLLM judge is sized by the server route."""
    from med42_utils.inference import placement_for

    for size, gpus in (("8b", 8), ("70b", 8), ("70b", 1)):
        p = load_params(size, IN_PROCESS)
        fig = inference_plan.job_figures(p, "judge", gpus)
        lines = fig.lines()
        answers = next(m for m in fig.models if m.role == "answers" and m.shape is not None)
        want = placement_for(answers.shape.parameters, 2, gpus, inference_plan.GPU_GIB,
                             num_layers=answers.shape.layers, kv_bytes_per_token=answers.shape.kv_bytes_per_token(),
                             kv_tokens=answers.batch * answers.seq_tokens).describe() if (size, gpus) != ("70b", 1) else None
        placed = [l for l in lines if l.startswith("  placed by the inference loader: ")]
        assert len(placed) == sum(m.loaded_by_transformers for m in fig.models if m.shape)
        if want is None:
            assert "cannot place" in placed[0] and "sft.hardware.gpus_per_node" in placed[0]
        else:
            assert placed[0].endswith(want)
            assert ("one GPU per replica" in want) == (size == "8b")
        judge = fig.models[-1]
        assert judge.loaded_by_transformers and judge.route == inference_plan.LOADER
        vllm_judge = inference_plan.job_figures(load_params(size, {**IN_PROCESS, "judge.backend": "vllm"}), "judge", gpus)
        assert vllm_judge.models[-1].route == inference_plan.IN_PROCESS_VLLM
