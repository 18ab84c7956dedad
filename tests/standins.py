"""Stand-ins the DPO tests start from: the tiny base model saved as if 03_sft had produced it (never committed)."""
from __future__ import annotations

import shutil
from pathlib import Path

from med42_utils.manifest import write_manifest
from med42_utils.stages import stage_model_dir


def make_sft_standin(params, run_name: str, base_path) -> Path:
    """Copy the tiny base model into the run's SFT model folder with a stand-in 03_sft manifest; returns the folder."""
    d = stage_model_dir(params, run_name, "sft")
    shutil.copytree(base_path, d)
    write_manifest(d.parent, "03_sft", params, standin=True)
    return d
