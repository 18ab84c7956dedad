"""Issue 29.7/29.8: each line a cluster user reads in a plan, from params alone (no data, no GPU, no cluster)."""
from __future__ import annotations

import json
import sys

import pytest

from med42_utils import cluster_plan, estimates, preflight, slurm_site
from med42_utils.launch import plan_launch, render_plan
from med42_utils.params import load_params
from med42_utils.params.slurm import SlurmOptions


@pytest.fixture(autouse=True)
def no_sinfo(monkeypatch):
    """The machine's own cluster is never read: every test that wants partitions passes them."""
    monkeypatch.setattr(slurm_site, "read_sinfo", lambda: None)


def test_70b_sft_time_adds_communication_and_checkpoints_at_stated_bandwidth():
    p = load_params("70b")
    t = cluster_plan.sft_time(p)
    n = estimates.LLAMA3_70B.parameters
    # 3,549 steps x 1 micro-batch: 2 bf16 all-gathers + 1 fp32 reduce-scatter = 8N bytes, x 47/48, at 50 GB/s
    expect = 3549 * 8 * n * 47 / 48 / 50e9 / 3600
    assert t.communication == pytest.approx(expect)
    assert 9 < t.communication < 12 and 10 < t.compute < 11.5  # the 9-12 s per step against ~10.8 s compute
    assert t.checkpoints > 0 and t.final_save > 0
    assert t.total == pytest.approx(t.compute + t.communication + t.checkpoints + t.final_save)
    assert any("50 GB/s per GPU" in n for n in t.notes) and any("14 x 846.6 GB" in n for n in t.notes)
    assert cluster_plan.slurm_time_hours(t.slurm_time) >= 1.2 * t.total  # a ceiling, not the docs' 14:00:00


def test_one_node_communication_runs_at_nvlink_and_one_gpu_has_none():
    s = estimates.LLAMA3_8B
    assert cluster_plan.comm_hours(s, 100, 1, 1) == 0
    one_node = cluster_plan.comm_hours(s, 100, 8, 1)
    two_nodes = cluster_plan.comm_hours(s, 100, 16, 2)
    assert two_nodes / one_node == pytest.approx(cluster_plan.INTRANODE_GBPS / cluster_plan.INTERNODE_GBPS * (15 / 16) / (7 / 8))


@pytest.mark.parametrize("hours,expect", [(0.1, "0:30:00"), (1.0, "1:30:00"), (21.8, "1-02:30:00")])
def test_suggested_time(hours, expect):
    assert cluster_plan.suggested_time(hours) == expect


def test_every_stage_plan_has_a_time_and_the_script_a_default_time():
    for size in ("8b", "70b", "workshop"):
        for stage, mod in (("sft", "med42_utils.sft.train"), ("dpo", "med42_utils.dpo.train")):
            plan = plan_launch(load_params(size), stage, "pytest-plans", mod, [])
            assert plan.est_hours is not None and plan.est_hours > 0, (size, stage)
            assert f"#SBATCH --time={cluster_plan.suggested_time(plan.est_hours)}" in plan.slurm_script, (size, stage)
            assert any(n.startswith("disk: up to") and "MED42_OUTPUTS=/scratch" in n for n in plan.notes)


def test_a_site_time_wins_over_the_plan_and_the_partition_limit_caps_it():
    p = load_params("70b", {"slurm.sft.time": "2:00:00"})
    plan = plan_launch(p, "sft", "pytest-plans", "med42_utils.sft.train", [])
    assert "#SBATCH --time=2:00:00" in plan.slurm_script
    hw = load_params("70b").sft.hardware
    parts = slurm_site.parse_sinfo("gpu*|8|96|gpu:8|2-00:00:00|h100\n")
    req = slurm_site.site_request(SlurmOptions(), hw, parts, default_time="3-00:00:00", stage="sft")
    assert req.options.time == "2-00:00:00" and "above partition gpu's limit" in " ".join(req.notes)


def test_dpo_round_job_plans_its_own_rounds_pairs():
    from med42_utils.dpo.rounds import launch_plan

    p = load_params("70b")
    r1, r2 = launch_plan(p, "pytest-plans", "round1"), launch_plan(p, "pytest-plans", "round2")
    assert r1.est_hours > r2.est_hours > 0  # round1: 61,100 + 19,800 pairs; round2: 20,000
    assert any("DPO pairs of round2 (this job): 20,000" in n for n in r2.notes)


def test_disk_counts_retained_checkpoints_and_the_bf16_final_model():
    p = load_params("70b")
    from med42_utils.checkpoints import checkpoint_bytes

    d = cluster_plan.disk_bytes(p, "sft")
    assert d["checkpoints"] == (p.sft.save_total_limit + 1) * checkpoint_bytes(p, "sft")
    assert d["final model"] == 2 * estimates.LLAMA3_70B.parameters


def test_epochs_the_fixed_steps_cover_are_stated(tmp_path, monkeypatch):
    """29.7: with bfd rows the fixed max_steps is not num_train_epochs; the plan says how many epochs it is."""
    monkeypatch.setenv("MED42_OUTPUTS", str(tmp_path))
    p = load_params("70b")
    assert "once 02 has packed" in cluster_plan.epochs_covered(p, None)
    pack = tmp_path / "70b" / "r" / "packing"
    pack.mkdir(parents=True)
    (pack / "manifest.json").write_text(json.dumps({"chunks": {"bfd": 90_000, "wrapped": 85_176}}))
    rows = cluster_plan.packed_rows(p, "r")
    assert rows == 90_000
    line = cluster_plan.epochs_covered(p, rows)
    assert "1.89 epochs of 02's 90,000 packed rows" in line
    assert "set sft.max_steps=3750" in line  # 2 x 90,000 / 48 rows per step
    exact = load_params("70b", {"sft.max_steps": 3750})
    assert "set sft.max_steps" not in cluster_plan.epochs_covered(exact, rows)
    plan = plan_launch(p, "sft", "r", "med42_utils.sft.train", [])
    assert any("1.89 epochs" in n for n in plan.notes)


def test_one_gpu_jobs_ask_for_memory_whole_nodes_take_all():
    w = plan_launch(load_params("workshop"), "sft", "pytest-plans", "med42_utils.sft.train", [])
    gib = cluster_plan.host_memory_gib(estimates.LLAMA3_8B)
    assert f"#SBATCH --mem={gib}G" in w.slurm_script and gib >= 2 * estimates.LLAMA3_8B.parameters / 2**30
    big = plan_launch(load_params("70b"), "sft", "pytest-plans", "med42_utils.sft.train", [])
    assert "#SBATCH --mem=0" in big.slurm_script and "G\n" not in big.slurm_script.split("--mem=")[1][:3]
    own = plan_launch(load_params("workshop", {"slurm.extra": ["--mem=200G"]}), "sft", "pytest-plans",
                      "med42_utils.sft.train", [])
    assert "--mem=200G" in own.slurm_script and f"--mem={gib}G" not in own.slurm_script


def test_dry_run_warns_when_the_plan_cannot_fit_the_cluster(monkeypatch):
    monkeypatch.setattr(slurm_site, "read_sinfo", lambda: slurm_site.parse_sinfo("gpu*|1|96|gpu:8|infinite|h100\n"))
    plan = plan_launch(load_params("70b"), "sft", "pytest-plans", "med42_utils.sft.train", [])
    text = render_plan(plan)
    assert plan.warnings and "WARNING" in text and "6 node(s) x 8 GPUs" in text and "sft.hardware" in text
    fits = slurm_site.parse_sinfo("gpu*|8|96|gpu:8|infinite|h100\n")
    monkeypatch.setattr(slurm_site, "read_sinfo", lambda: fits)
    assert plan_launch(load_params("70b"), "sft", "pytest-plans", "med42_utils.sft.train", []).warnings == []


def test_00_says_no_for_a_plan_bigger_than_the_partition():
    from med42_utils.hardware import can_run, runnable_sizes

    login = {"cuda": False, "gpus": [], "sbatch": True, "slurm_nodes": None, "sinfo": "gpu*|1|96|gpu:8|infinite|h100"}
    ok, why = can_run(load_params("70b").sft.hardware, login)
    assert not ok and "does not fit" in why and "6 node(s)" in why
    assert runnable_sizes(login)["70b"]["sft"].startswith("no: ")
    assert runnable_sizes({**login, "sinfo": "gpu*|8|96|gpu:8|infinite|h100"})["70b"]["sft"].startswith("yes: ")


def test_preflight_refuses_a_cpu_build_of_torch_and_missing_backend_packages():
    p = load_params("8b")
    cpu_torch = preflight.JobPython("/env/bin/python", None, [])
    out = preflight.environment_problems(p, "sft", "h100", cpu_torch)
    assert len(out) == 1 and "CPU build" in out[0] and "/env/bin/python" in out[0]
    assert preflight.environment_problems(p, "sft", "h100", preflight.JobPython("x", "12.8", [])) == []
    assert preflight.environment_problems(p, "sft", "cpu", cpu_torch) == []  # a CPU job needs no CUDA
    in_process_vllm = load_params("8b", {"judge.backend": "vllm", "judge.answers_backend": "transformers"})
    need = preflight.job_packages(in_process_vllm, "judge")
    assert need == {"vllm": "judge.backend is vllm"}
    out = preflight.environment_problems(in_process_vllm, "judge", "h100", preflight.JobPython("x", "12.8", ["vllm"]))
    assert out and "judge.backend is vllm but vllm is not installed" in out[0]
    assert "liger_kernel" in preflight.job_packages(load_params("70b"), "sft")


def test_preflight_refuses_a_served_judging_job_without_its_server_or_endpoint(monkeypatch):
    """8b/70b serve every model of 06 with vLLM from its own venv: no vllm module in the job's Python, the vllm
    executable ($MED42_VLLM); a remote endpoint needs its URL and its key's variable (never the key's value)."""
    p = load_params("8b")
    assert preflight.job_packages(p, "judge") == {}
    ok = preflight.JobPython("x", "12.8", [], vllm="/venvs/med42-vllm/bin/vllm")
    assert preflight.environment_problems(p, "judge", "h100", ok) == []
    out = preflight.environment_problems(p, "judge", "h100", preflight.JobPython("x", "12.8", []))
    assert len(out) == 1 and "environment-vllm.txt" in out[0] and "MED42_VLLM" in out[0]
    remote = load_params("8b", {"judge.server": "none"})
    out = preflight.environment_problems(remote, "judge", "h100", preflight.JobPython("x", "12.8", []))
    assert len(out) == 1 and "judge.api_base" in out[0]  # no vLLM needed, but a URL is
    monkeypatch.delenv("MED42_PYTEST_KEY", raising=False)
    keyed = load_params("8b", {"judge.server": "none", "judge.api_base": "http://10.0.0.1:8000/v1",
                               "judge.api_key_env": "MED42_PYTEST_KEY"})
    out = preflight.environment_problems(keyed, "judge", "h100", preflight.JobPython("x", "12.8", []))
    assert len(out) == 1 and "export MED42_PYTEST_KEY=" in out[0]
    monkeypatch.setenv("MED42_PYTEST_KEY", "sk-secret-value")
    assert preflight.environment_problems(keyed, "judge", "h100", preflight.JobPython("x", "12.8", [])) == []
    # what the job reads from the Hub cache: the judge's weights when its server runs on the node, not when remote
    assert ("prometheus-eval/prometheus-8x7b-v2.0", "judge model") in preflight.stage_needs(p, "pytest-x", "judge").models
    assert not [m for m, _ in preflight.stage_needs(keyed, "pytest-x", "judge").models if "prometheus" in m]
    from med42_utils.prefetch import needs as prefetch_needs

    assert any("prometheus-8x7b" in n.repo_id for n in prefetch_needs(p))
    assert not any("prometheus-8x7b" in n.repo_id for n in prefetch_needs(keyed))


def test_submit_refuses_a_job_python_without_cuda(monkeypatch):
    from med42_utils import launch

    monkeypatch.delenv(preflight.TEST_JOB_CUDA_ENV, raising=False)
    import torch

    monkeypatch.setattr(torch.version, "cuda", None)
    plan = plan_launch(load_params("8b"), "sft", "pytest-plans", "med42_utils.sft.train", [])
    assert ("the job runs " + sys.executable + ", whose torch is a CPU build (torch.version.cuda is None): the h100 job "
            "would find no GPU. Start the notebook from an environment with CUDA torch (conda env create -f "
            "environment.yml on a GPU node, docs/install.md)") in launch.readiness_problems(plan, "sbatch")


def test_host_memory_per_node_at_load_follows_the_rank0_loading():
    """Issue 29: the 70b plans show host memory per node. Rank 0 alone reads bf16 weights (+ the live DPO reference)
    and accelerate's fp32 copy of the trainable weights; other ranks and nodes hold only the base."""
    from med42_utils.cluster_plan import HOST_BASE_GIB, training_host_memory
    from med42_utils.dpo.rounds import launch_plan
    from med42_utils.estimates import GIB, LLAMA3_70B
    from med42_utils.launch import render_plan
    from med42_utils.params import load_params
    from med42_utils.sft.stage import sft_plan

    n = LLAMA3_70B.parameters
    sft = training_host_memory(LLAMA3_70B, 8, 6, reference=False, lora=False)
    dpo = training_host_memory(LLAMA3_70B, 8, 4, reference=True, lora=False)
    lora = training_host_memory(LLAMA3_70B, 1, 1, reference=False, lora=True)
    assert f"node 0 about {(6 * n / GIB + 8 * HOST_BASE_GIB):,.0f} GiB" in sft
    assert f"node 0 about {(8 * n / GIB + 8 * HOST_BASE_GIB):,.0f} GiB" in dpo and "reference" in dpo
    assert "fp32" not in lora and "meta" not in lora  # one process, adapters only
    assert f"({8 * HOST_BASE_GIB:,.0f} GiB per node elsewhere)" in sft
    p = load_params("70b")
    for text in (render_plan(sft_plan(p, "x")), render_plan(launch_plan(p, "x", "round1"))):
        assert "host memory per node at load: node 0 about" in text
    assert "wrapped per decoder layer" in render_plan(launch_plan(p, "x", "round1"))
