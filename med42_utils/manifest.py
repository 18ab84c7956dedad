"""Small JSON manifests: what a stage wrote, counts, params hash, library versions, and its inputs.

Stage chaining: a manifest records the fingerprints of the upstream manifests its stage read
(`inputs`), so a stage stays done only while those are the manifests it was built from. Forcing an
upstream stage rewrites its manifest, and every stage built on the old one runs again.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import time
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

from .params import Params, params_hash
from .stages import STAGES

MANIFEST = "manifest.json"
_LIBS = ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "lm-eval", "datasketch")


# The params sections each stage's outputs depend on (its own and its upstream stages'), so that a
# change elsewhere does not redo it: editing judge settings leaves a finished SFT stage done (med42_utils.stages).
STAGE_PARAMS: dict[str, tuple[str, ...]] = {s.notebook: s.params for s in STAGES.values() if s.params}


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


def fingerprint(directory: Path) -> str:
    """sha256 of a stage's manifest file: it changes whenever that stage is (re-)run."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise StageMissingError(f"no manifest at {path}")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def input_fingerprints(directory: Path, upstream: Iterable[Path]) -> dict[str, str]:
    """{upstream folder relative to `directory` (e.g. '../data'): its manifest's fingerprint}."""
    return {_rel(u, directory): fingerprint(u) for u in upstream}


def files_fingerprint(path: Path) -> str:
    """sha256 over (name, size, mtime) of a file or of every file below a folder: cheap for data sets of
    any size, and it changes when a file is replaced, edited, added or removed."""
    path = Path(path)
    files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path] if path.exists() else []
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(path) if path.is_dir() else f.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _rel(upstream: Path, directory: Path) -> str:
    return Path(os.path.relpath(Path(upstream), Path(directory))).as_posix()


def write_manifest(directory: Path, stage: str, params: Params, inputs: Iterable[Path] = (),
                   input_files: Iterable[Path] = (), **fields: Any) -> Path:
    """Write <directory>/manifest.json; `fields` holds the stage's counts and results (JSON-able).

    `inputs` are the upstream stage folders this stage read (their manifests must exist), and
    `input_files` the data files or folders it read directly: their fingerprints are recorded, and
    stage_done is False once any of them changes.
    """
    from .paths import repo_root

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    doc = {
        "stage": stage,
        "size": params.size,
        "params_hash": params_hash(params),
        "section_hashes": {s: params_hash(params, (s,)) for s in type(params).model_fields},
        "inputs": input_fingerprints(directory, inputs),
        "input_files": {str(Path(f).resolve()): files_fingerprint(f) for f in input_files},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "run_id": uuid.uuid4().hex,  # every write is a new fingerprint: a forced re-run re-runs what follows
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


def changed_inputs(directory: Path, doc: dict[str, Any] | None = None) -> list[str]:
    """The recorded upstream folders whose manifest is gone or differs from the one this stage read,
    and the recorded input files that changed."""
    directory = Path(directory)
    doc = read_manifest(directory) if doc is None else doc
    changed = []
    for rel, recorded in (doc.get("inputs") or {}).items():
        try:
            current = fingerprint(directory / rel)
        except StageMissingError:
            current = None
        if current != recorded:
            changed.append(rel)
    changed += [f for f, recorded in (doc.get("input_files") or {}).items() if files_fingerprint(Path(f)) != recorded]
    return changed


def stage_done(directory: Path, params: Params | None = None, inputs: Iterable[Path] | None = None) -> bool:
    """True when the stage wrote its manifest, every upstream manifest it read is unchanged, and, if
    params are given, with the same values in the params sections that stage depends on (STAGE_PARAMS;
    every section for stages not listed there). `inputs`, if given, are the upstream folders the stage
    reads now: a different set (say, another list of models to evaluate) also means not done."""
    return not_done_reason(directory, params, inputs) is None


def not_done_reason(directory: Path, params: Params | None = None, inputs: Iterable[Path] | None = None) -> str | None:
    """Why the stage in `directory` must (re-)run, or None when it is done (see stage_done)."""
    try:
        doc = read_manifest(directory)
    except StageMissingError:
        return f"no {MANIFEST} in {directory}"
    changed = changed_inputs(directory, doc)
    if changed:
        return f"upstream stage(s) changed since it ran: {', '.join(changed)}"
    if inputs is not None:
        now, then = {_rel(u, directory) for u in inputs}, set(doc.get("inputs") or {})
        if now != then:
            return f"it now reads {sorted(now)}, it was built from {sorted(then)}"
    if params is None:
        return None
    # per-round manifests are named "04_dpo/round2": they depend on what 04_dpo depends on
    sections, stored = STAGE_PARAMS.get(doc.get("stage", "").split("/")[0]), doc.get("section_hashes")
    if sections is None or not stored:
        return None if doc.get("params_hash") == params_hash(params) else "params changed"
    differ = [s for s in sections if stored.get(s) != params_hash(params, (s,))]
    return f"params changed in: {', '.join(differ)}" if differ else None


def require_stage(directory: Path, notebook: str) -> dict[str, Any]:
    """The manifest of an earlier stage, or an error telling which notebook to run first."""
    try:
        return read_manifest(directory)
    except StageMissingError:
        raise StageMissingError(
            f"{directory} has no {MANIFEST}: run notebooks/{notebook} for this size and run_name first"
        ) from None
