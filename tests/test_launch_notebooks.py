"""03-06 at 8b on a CPU machine without SLURM stop at their hardware check, right after the parameters,
before anything touches the Hub; the gating function itself follows where the notebook runs."""
from __future__ import annotations

import os

import pytest

import fakeslurm
from med42_utils import hardware
from med42_utils.hardware import HardwareError, check_hardware
from med42_utils.params import load_params
from med42_utils.paths import repo_root

NB_DIR = repo_root() / "notebooks"  # before any test points MED42_ROOT elsewhere
NOTEBOOKS = ["03_sft", "04_dpo", "05_benchmarks", "06_elo_judging"]
CPU_BOX = {"cuda": False, "gpus": []}


@pytest.fixture
def cpu_box_without_slurm(tmp_path, monkeypatch):
    fakeslurm.use_tmp_root(tmp_path, monkeypatch)
    from realslurm import path_without_slurm

    monkeypatch.setenv("PATH", f"{os.path.dirname(os.sys.executable)}:{path_without_slurm(tmp_path / 'bin')}")  # no sbatch
    for var in ("SLURM_JOB_ID", "SLURM_JOB_NUM_NODES", "SLURM_NNODES"):
        monkeypatch.delenv(var, raising=False)


@pytest.mark.parametrize("nb", NOTEBOOKS)
def test_check_hardware_refuses_gpu_sizes_on_a_cpu_box(nb, monkeypatch):
    box = {**CPU_BOX, "sbatch": False, "slurm_nodes": None}
    monkeypatch.setattr(hardware, "environment_report", lambda: box)
    with pytest.raises(HardwareError, match=rf"{nb} at size 8b cannot run on this machine: .*no CUDA device"):
        check_hardware(load_params("8b"), nb)
    assert check_hardware(load_params("8b"), nb, dry_run=True) is None
    assert check_hardware(load_params("tiny"), nb) == "inprocess"
    box["sbatch"] = True  # a login node submits
    assert check_hardware(load_params("8b"), nb) == "sbatch"
    box["slurm_nodes"] = 2  # an allocation runs srun
    assert check_hardware(load_params("8b"), nb) == "srun"


def test_environment_report_says_whether_slurm_is_here(monkeypatch, tmp_path):
    for tool, body in (("sbatch", ""), ("scontrol", "echo 'Slurmctld(primary) at ctl is UP'")):
        (tmp_path / tool).write_text(f"#!/bin/sh\n{body}\n")
        (tmp_path / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    monkeypatch.setenv("SLURM_JOB_ID", "5")
    monkeypatch.setenv("SLURM_JOB_NUM_NODES", "3")
    assert hardware.slurm_report() == {"sbatch": True, "slurm_nodes": 3}
    monkeypatch.delenv("SLURM_JOB_ID")
    assert hardware.slurm_report()["slurm_nodes"] is None
    # SLURM's client tools without a controller that answers (a laptop, a CI box): not a login node
    (tmp_path / "scontrol").write_text("#!/bin/sh\necho 'scontrol: fatal: Could not establish a configuration "
                                       "source' >&2\nexit 1\n")
    report = hardware.slurm_report()
    assert report["sbatch"] is False and "no SLURM controller answers" in report["slurm_note"]
    assert "Could not establish a configuration source" in report["slurm_note"]


def test_eval_and_judge_jobs_take_one_node_of_the_sft_gpus():
    hw = hardware.job_hardware(load_params("70b"))
    assert (hw.nodes, hw.gpus_per_node, hw.accelerator, hw.launcher) == (1, 8, "h100", "accelerate")
    assert hardware.job_hardware(load_params("tiny")).launcher == "inprocess"


@pytest.mark.slow
@pytest.mark.parametrize("nb", NOTEBOOKS)
def test_notebook_at_8b_stops_at_the_hardware_check_before_the_hub(nb, cpu_box_without_slurm, tmp_path):
    import nbformat
    import papermill as pm

    out = tmp_path / f"{nb}.ipynb"
    with pytest.raises(pm.PapermillExecutionError) as e:
        pm.execute_notebook(str(NB_DIR / f"{nb}.ipynb"), str(out),
                            parameters={"size": "8b", "run_name": "pytest-gate"}, kernel_name="python3",
                            progress_bar=False, cwd=str(tmp_path))
    assert e.value.ename == "HardwareError" and "no CUDA device and no SLURM" in e.value.evalue
    cells = [c for c in nbformat.read(out, as_version=4).cells if c.cell_type == "code"]
    failed = next(i for i, c in enumerate(cells) if any(o.get("output_type") == "error" for o in c.outputs))
    params_at = next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", []))
    # papermill inserts the injected-parameters cell after the parameters cell; then start(), then the check
    assert failed <= params_at + 3, f"{nb} refused only in code cell {failed}, not right after the parameters"
    assert "check_hardware" in cells[failed].source
