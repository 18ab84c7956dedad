"""Paths resolved from the repo root, never from the kernel's working directory."""
from __future__ import annotations

import os
from pathlib import Path

RESOURCES = Path(__file__).resolve().parent / "resources"


def repo_root() -> Path:
    """The checkout root: $MED42_ROOT if set, else the first parent holding params/ and pyproject.toml."""
    env = os.environ.get("MED42_ROOT")
    if env:
        root = Path(env).expanduser().resolve()
        if not (root / "params").is_dir():
            raise FileNotFoundError(f"MED42_ROOT={env} has no params/ folder; point it at the repo checkout")
        return root
    for parent in Path(__file__).resolve().parents:
        if (parent / "params").is_dir() and (parent / "pyproject.toml").is_file():
            return parent
    raise FileNotFoundError(
        "cannot find the repo root (a folder with params/ and pyproject.toml) above "
        f"{Path(__file__).resolve()}; install the package editable (pip install -e .) or set MED42_ROOT"
    )


def outputs_root() -> Path:
    """Where runs are written: $MED42_OUTPUTS if set (tests point it at a temporary folder), else <repo>/outputs."""
    env = os.environ.get("MED42_OUTPUTS")
    return Path(env).expanduser().resolve() if env else repo_root() / "outputs"


def run_dir(size: str, run_name: str) -> Path:
    """outputs/<size>/<run_name>/ — every artifact of one run lives below it."""
    if not run_name or "/" in run_name or run_name.startswith("."):
        raise ValueError(f"run_name {run_name!r} must be a plain folder name such as 'demo'")
    return outputs_root() / size / run_name


def stage_dir(size: str, run_name: str, stage: str) -> Path:
    """outputs/<size>/<run_name>/<stage>/ (created)."""
    d = run_dir(size, run_name) / stage
    d.mkdir(parents=True, exist_ok=True)
    return d


def resolve(path: str | Path) -> Path:
    """A path from params: absolute stays, relative is taken from the repo root."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else repo_root() / p


def shown(path: str | Path) -> str:
    """A path as a notebook prints it: relative to the repo ("outputs/tiny/demo/sft"), or "$MED42_OUTPUTS/..."
    when runs go to another outputs root; never the machine's absolute path (anything else: ".../<folder>/<name>",
    enough to tell which dataset's file it is)."""
    if not Path(path).expanduser().is_absolute():
        return str(path)  # a Hub id or a path already relative
    p = Path(path).expanduser().resolve()
    if os.environ.get("MED42_OUTPUTS"):
        try:
            return str(Path("$MED42_OUTPUTS") / p.relative_to(outputs_root()))
        except ValueError:
            pass
    try:
        return str(p.relative_to(repo_root()))
    except ValueError:
        return f".../{p.parent.name}/{p.name}" if p.parent.name else f".../{p.name}"
