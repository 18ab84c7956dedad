"""00_setup: runs from either working directory; 8b reports its plan on a CPU box; bad sizes fail."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from med42_utils.paths import outputs_root, repo_root

pytestmark = pytest.mark.slow


def test_tiny_manifest(notebook_run):
    _, run = notebook_run
    m = json.loads((run / "setup" / "manifest.json").read_text())
    assert m["stage"] == "00_setup" and m["size"] == "tiny"
    assert 100_000 <= m["parameters"] <= 5_000_000
    assert m["sft_tokens_per_step"] == 1024
    assert 0 < m["assistant_tokens"] < m["chat_template_tokens"]
    assert (run / "00_setup.ipynb").is_file()


def _papermill(args, cwd, env=None):
    return subprocess.run([sys.executable, "-m", "papermill", *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env=env)


def test_8b_plan_from_repo_root_on_cpu(tmp_path):
    from realslurm import path_without_slurm

    out = tmp_path / "8b.ipynb"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env["PATH"] = path_without_slurm(tmp_path / "bin")  # a CPU machine that is not a SLURM login node either
    r = _papermill(["notebooks/00_setup.ipynb", str(out), "-p", "size", "8b", "-p", "run_name", "pytest-8b"], repo_root(),
                   env)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((outputs_root() / "8b" / "pytest-8b" / "setup" / "manifest.json").read_text())
    sft = next(p for p in m["plan"] if p["stage"] == "sft")
    assert (sft["nodes"], sft["gpus_per_node"]) == (2, 8)
    assert m["sft_tokens_per_step"] == 262_144
    import torch

    if not torch.cuda.is_available():
        assert m["runnable_here"] == {"sft": False, "dpo": False}
        assert "can't train 8b sft" in out.read_text()


def test_unknown_size_fails_with_valid_sizes(tmp_path):
    r = _papermill(["00_setup.ipynb", str(tmp_path / "x.ipynb"), "-p", "size", "13b"], repo_root() / "notebooks")
    assert r.returncode != 0
    assert "valid sizes: 70b, 8b, gpu_smoke, tiny, workshop" in (r.stdout + r.stderr)
