"""Site options, the job's environment and the checks before submitting, against a real SLURM
(tests/realslurm.py: slurmctld + two slurmd with gres gpu:8, accounting off, one partition `med42`).

Each test leaves the cluster empty. Submissions are counted on the controller (NEXT_JOB_ID).
"""
from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

import fakeslurm
from med42_utils import slurm, slurm_site
from med42_utils.launch import NotReady, execute, plan_launch, render_slurm
from med42_utils.params import load_params
from med42_utils.params.slurm import SlurmOptions
from med42_utils.paths import repo_root, run_dir

pytestmark = pytest.mark.slurm

from realslurm import SINGLE_CPU_CONFIG  # noqa: E402


@pytest.fixture
def cluster(real_slurm, monkeypatch):
    real_slurm.use(monkeypatch)
    monkeypatch.delenv("MED42_SLURM", raising=False)
    yield real_slurm
    real_slurm.cancel_all()


def _ready_tiny_h100(tmp_path, overrides=None):
    """Tiny SFT labelled as 1 node x 1 H100 (so this CPU box submits it), with a packing manifest in place so the
    input check passes: these tests are about what sbatch is asked, the job itself never has to train."""
    cfg = tmp_path / "single.yaml"
    cfg.write_text(SINGLE_CPU_CONFIG)
    name = f"pytest-site-{uuid.uuid4().hex[:6]}"
    p = load_params("tiny", {"sft.hardware.accelerator": "h100", "sft.hardware.launcher": "accelerate",
                             "sft.hardware.accelerate_config": str(cfg), **(overrides or {})})
    (run_dir("tiny", name) / "packing").mkdir(parents=True)
    (run_dir("tiny", name) / "packing" / "manifest.json").write_text("{}")
    return p, name


def test_the_cluster_as_sinfo_shows_it(cluster):
    (part,) = slurm_site.read_sinfo()
    assert part.name == cluster.partition and part.default
    assert part.nodes_with(8, cluster.cpus_per_node) == 2 and part.nodes_with(9) == 0


def test_a_request_that_fits_no_node_is_refused_before_submitting(cluster, tmp_path, monkeypatch):
    """The issue's first finding: --cpus-per-task=96 on nodes with fewer CPUs stayed PENDING (PartitionConfig)
    for ever. Asked for now, it is refused with the partition's nodes, and nothing reaches the controller."""
    monkeypatch.setenv("MED42_SLURM", "cpus_per_task=96")
    p, name = _ready_tiny_h100(tmp_path)
    plan = plan_launch(p, "sft", name, "med42_utils.sft.train", [])
    before = cluster.next_job_id()
    with pytest.raises(NotReady, match=rf"(?s)96 CPUs per node; partition {cluster.partition} has 0 node"):
        execute(plan)
    monkeypatch.setenv("MED42_SLURM", "partition=nosuch")
    plan = plan_launch(load_params("tiny", {"sft.hardware.accelerator": "h100", "sft.hardware.launcher": "accelerate",
                                            "sft.hardware.accelerate_config": str(tmp_path / "single.yaml")}),
                       "sft", name, "med42_utils.sft.train", [])
    with pytest.raises(NotReady, match=rf"partition 'nosuch' does not exist \(sinfo: {cluster.partition} \(default\)"):
        execute(plan)
    assert cluster.next_job_id() == before, "nothing was submitted"


def test_sbatchs_own_refusal_reaches_the_caller_with_the_key_to_change(cluster, tmp_path, monkeypatch):
    """A node feature the cluster does not have: sbatch refuses; its message and the params key come back."""
    monkeypatch.setenv("MED42_SLURM", "constraint=nosuchfeature")
    p, name = _ready_tiny_h100(tmp_path)
    plan = plan_launch(p, "sft", name, "med42_utils.sft.train", [])
    assert "#SBATCH --constraint=nosuchfeature" in plan.slurm_script
    before = cluster.next_job_id()
    with pytest.raises(slurm.SlurmError) as e:
        execute(plan)
    msg = str(e.value)
    assert "sbatch: error:" in msg and "Invalid feature specification" in msg, msg
    assert "slurm.constraint" in msg and "MED42_SLURM='constraint=" in msg
    # the controller spends a job id on a refused submission, but holds no job under it
    assert cluster.next_job_id() == before + 1 and cluster.job(before) == {}
    assert not plan.job_record.exists()


def test_the_jobs_settings_survive_sbatch_export_none_and_paths_with_spaces(cluster, tmp_path, monkeypatch):
    """SBATCH_EXPORT=NONE (a common site default) and a repo, outputs and log folder with spaces: the step
    still sees HF_HOME, HF_HUB_OFFLINE and MED42_* as the notebook set them; HF_TOKEN is never in the script."""
    (tmp_path / "my repo").mkdir()
    root = fakeslurm.tmp_repo_root(tmp_path / "my repo")
    out, hf = tmp_path / "my outputs", tmp_path / "hf home"
    monkeypatch.setenv("MED42_ROOT", str(root))
    monkeypatch.setenv("MED42_OUTPUTS", str(out))
    monkeypatch.setenv("HF_HOME", str(hf))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_TOKEN", "hf_not_for_the_script")
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HOME", str(hf))
    hw = load_params("workshop").sft.hardware  # 1 node x 1 GPU
    site = slurm_site.site_request(SlurmOptions(time="2"), hw, slurm_site.read_sinfo())
    logs = out / "job logs"
    line = ('for v in HF_HOME HF_HUB_OFFLINE MED42_ROOT MED42_OUTPUTS HF_TOKEN; do echo "$v=${!v:-unset}"; done; '
            'echo "PWD=$PWD"; echo "STEP=$SLURM_STEP_ID"')
    script = out / "env test.slurm"
    out.mkdir()
    logs.mkdir()
    script.write_text(render_slurm("envtest", hw, line, "med42-envtest", logs, site))
    assert "hf_not_for_the_script" not in script.read_text()
    monkeypatch.setenv("SBATCH_EXPORT", "NONE")
    job = slurm.submit(script, "med42-envtest", out / "env test.job.json")
    state = cluster.wait_state(job.job_id, {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"}, timeout=90)
    log = logs / f"med42-envtest-{job.job_id}.out"
    text = log.read_text() if log.is_file() else "(no log)"
    assert state == "COMPLETED", text
    got = dict(x.split("=", 1) for x in text.splitlines() if "=" in x)
    assert got["HF_HOME"] == str(hf) and got["HF_HUB_OFFLINE"] == "1"
    assert got["MED42_ROOT"] == str(root) and got["MED42_OUTPUTS"] == str(out) and got["PWD"] == str(root)
    assert got["HF_TOKEN"] == "unset", "SBATCH_EXPORT=NONE drops the token, and the script never holds it"
    assert got["STEP"] == "0", "the settings reached the srun step, not only the batch shell"


def test_sft_at_70b_with_no_data_is_refused_before_anything_is_submitted(cluster, tmp_path):
    """As a new user would: `papermill 03_sft.ipynb out.ipynb -p size 70b` on a login node with no 70b data.
    The notebook stops with what to run first; the controller never sees a job."""
    name = f"pytest-70b-{uuid.uuid4().hex[:6]}"
    out = tmp_path / "03.ipynb"
    before = cluster.next_job_id()
    try:
        r = subprocess.run([sys.executable, "-m", "papermill", "notebooks/03_sft.ipynb", str(out), "-p", "size", "70b",
                            "-p", "run_name", name], cwd=repo_root(), capture_output=True, text=True, timeout=600)
    finally:
        import shutil

        shutil.rmtree(run_dir("70b", name), ignore_errors=True)
    assert r.returncode != 0
    text = out.read_text() if out.is_file() else r.stderr
    assert "NotReady" in text and "sft was not submitted" in text, r.stderr[-2000:]
    assert "02_packing.ipynb" in text and "01_data_curation.ipynb" in text
    assert "python -m med42_utils.prefetch --size 70b" in text
    assert "6 node(s) x 8 GPUs" in text and f"partition {cluster.partition} has 2 node(s)" in text
    assert cluster.next_job_id() == before, "nothing was submitted"


def test_site_options_reach_the_controller(cluster, tmp_path, monkeypatch):
    """Options from MED42_SLURM are what the controller holds for the job (scontrol show job)."""
    monkeypatch.setenv("MED42_SLURM", f"partition={cluster.partition} sft.time=3 extra=--comment=med42-site")
    p, name = _ready_tiny_h100(tmp_path)
    plan = plan_launch(p, "sft", name, "med42_utils.sft.train", [])
    job = execute(plan, wait=False)
    try:
        info = cluster.job(job.job_id)
        assert info["Partition"] == cluster.partition and info["TimeLimit"] == "00:03:00"
        assert info["Comment"] == "med42-site"
        assert info["OverSubscribe"] != "NO", "one GPU of eight does not take the whole node"
    finally:
        cluster.cancel_all()
    monkeypatch.setenv("MED42_SLURM", "exclusive=true cpus_per_task=1")
    p = load_params("tiny", {"sft.hardware.accelerator": "h100", "sft.hardware.launcher": "accelerate",
                             "sft.hardware.accelerate_config": str(tmp_path / "single.yaml")})  # reads MED42_SLURM
    plan = plan_launch(p, "sft", name, "med42_utils.sft.train", [])
    plan.job_record.unlink()
    assert "#SBATCH --exclusive\n#SBATCH --mem=0\n" in plan.slurm_script
    job = execute(plan, wait=False)
    try:
        assert cluster.job(job.job_id)["OverSubscribe"] == "NO"
    finally:
        cluster.cancel_all()
