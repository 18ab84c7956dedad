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
    """True when the stage wrote its manifest (and, if params given, with the same params hash)."""
    try:
        doc = read_manifest(directory)
    except StageMissingError:
        return False
    return params is None or doc.get("params_hash") == params_hash(params)


def require_stage(directory: Path, notebook: str) -> dict[str, Any]:
    """The manifest of an earlier stage, or an error telling which notebook to run first."""
    try:
        return read_manifest(directory)
    except StageMissingError:
        raise StageMissingError(
            f"{directory} has no {MANIFEST}: run notebooks/{notebook} for this size and run_name first"
        ) from None
