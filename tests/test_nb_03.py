"""03_sft in the all-notebook smoke run; 8b renders its plan on a CPU box and otherwise fails fast."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from med42_utils.params import load_params
from med42_utils.paths import repo_root

pytestmark = pytest.mark.slow


def test_sft_manifest_loss_falls_and_model_saved(notebook_run):
    _, run = notebook_run
    d = run / "sft"
    m = json.loads((d / "manifest.json").read_text())
    assert m["stage"] == "03_sft" and m["global_step"] == m["max_steps"] == load_params("tiny").sft.max_steps
    losses = [e["loss"] for e in m["log_history"]]
    assert max(losses[-3:]) < min(losses[:3]), losses
    # linear warmup then cosine: the peak is the params' max LR, the tail decays towards zero
    peak, lrs = load_params("tiny").sft.learning_rate, [e["learning_rate"] for e in m["log_history"]]
    assert 0.9 * peak <= max(lrs) <= peak and lrs[0] < max(lrs) and lrs[-1] < 0.05 * peak, lrs
    assert (d / "model" / "config.json").is_file() and (d / "model" / "tokenizer_config.json").is_file()
    # the generated answer is in the executed copy's output (the source holds only the f-string)
    import nbformat

    cell = next(c for c in nbformat.read(run / "03_sft.ipynb", as_version=4).cells if c.get("id") == "cell-10")
    text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")
    assert text.startswith("Q: A 60-year-old man") and "\nA: " in text, text
    assert text.split("\nA: ", 1)[1].strip(), "the SFT model generated nothing"


def _papermill(args, env=None):
    return subprocess.run([sys.executable, "-m", "papermill", *args], cwd=repo_root(), capture_output=True,
                          text=True, timeout=600, env=env)


def test_8b_dry_run_renders_plan_and_real_run_fails_fast_without_cuda(tmp_path):
    import torch

    nb = "notebooks/03_sft.ipynb"
    r = _papermill([nb, str(tmp_path / "dry.ipynb"), "-p", "size", "8b", "-p", "run_name", "pytest-8b-dry",
                    "-p", "dry_run", "True"])
    assert r.returncode == 0, r.stderr[-3000:]
    text = (tmp_path / "dry.ipynb").read_text()
    assert "#SBATCH --nodes=2" in text and "fsdp_8b.yaml" in text and "estimated wall time" in text
    from med42_utils.paths import run_dir

    script = run_dir("8b", "pytest-8b-dry") / "sft" / "launch_sft.slurm"
    assert script.is_file() and str(script) in text, "the dry run writes the SLURM script it shows"
    shutil.rmtree(run_dir("8b", "pytest-8b-dry"))
    if torch.cuda.is_available():
        return
    from realslurm import path_without_slurm

    no_slurm = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    no_slurm["PATH"] = path_without_slurm(tmp_path / "bin")  # a CPU machine that is not a login node either
    r = _papermill([nb, str(tmp_path / "real.ipynb"), "-p", "size", "8b", "-p", "run_name", "pytest-8b-dry"],
                   env=no_slurm)
    assert r.returncode != 0
    out = (tmp_path / "real.ipynb").read_text()
    assert "HardwareError" in out and "no CUDA" in out
