"""Small JSON manifests: what a stage wrote, counts, params hash, library versions."""
from __future__ import annotations

import json
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from .params import Params, params_hash

MANIFEST = "manifest.json"
_LIBS = ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "lm-eval", "datasketch")


# The params sections each stage's outputs depend on (its own and its upstream stages'), so that a
# change elsewhere does not redo it: editing judge settings leaves a finished SFT stage done.
_CHAIN = ("seed", "data", "eval", "model", "packing", "sft", "dpo")
STAGE_PARAMS: dict[str, tuple[str, ...]] = {
    "01_data_curation": ("seed", "data", "eval"),  # eval: the benchmarks it decontaminates against
    "02_packing": _CHAIN[:5],
    "03_sft": _CHAIN[:6],
    "04_dpo": _CHAIN,
    "05_benchmarks": _CHAIN,
    "06_elo_judging": (*_CHAIN, "judge"),
}


class StageMissingError(FileNotFoundError):
    """A stage needs an earlier stage's artifacts that are not there."""


def library_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for lib in _LIBS:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            out[lib] = None
    return out


def _git_commit(cwd: Path) -> str | None:
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
        return r.stdout.strip() if r.returncode == 0 and r.stdout.strip() else None
    except (OSError, subprocess.SubprocessError):
        return None


def write_manifest(directory: Path, stage: str, params: Params, **fields: Any) -> Path:
    """Write <directory>/manifest.json; `fields` holds the stage's counts and results (JSON-able)."""
    from .paths import repo_root

    directory.mkdir(parents=True, exist_ok=True)
    doc = {
        "stage": stage,
        "size": params.size,
        "params_hash": params_hash(params),
        "section_hashes": {s: params_hash(params, (s,)) for s in type(params).model_fields},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "git_commit": _git_commit(repo_root()),
        "versions": library_versions(),
        **fields,
    }
    path = directory / MANIFEST
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=False, default=str))
    tmp.replace(path)
    return path


def read_manifest(directory: Path) -> dict[str, Any]:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise StageMissingError(f"no manifest at {path}")
    return json.loads(path.read_text())


def stage_done(directory: Path, params: Params | None = None) -> bool:
    """True when the stage wrote its manifest and, if params are given, with the same values in the
    params sections that stage depends on (STAGE_PARAMS; every section for stages not listed there)."""
    try:
        doc = read_manifest(directory)
    except StageMissingError:
        return False
    if params is None:
        return True
    # per-round manifests are named "04_dpo/round2": they depend on what 04_dpo depends on
    sections, stored = STAGE_PARAMS.get(doc.get("stage", "").split("/")[0]), doc.get("section_hashes")
    if sections is None or not stored:
        return doc.get("params_hash") == params_hash(params)
    return all(stored.get(s) == params_hash(params, (s,)) for s in sections)


def require_stage(directory: Path, notebook: str) -> dict[str, Any]:
    """The manifest of an earlier stage, or an error telling which notebook to run first."""
    try:
        return read_manifest(directory)
    except StageMissingError:
        raise StageMissingError(
            f"{directory} has no {MANIFEST}: run notebooks/{notebook} for this size and run_name first"
        ) from None
