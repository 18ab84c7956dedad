"""The command line the launched entry points share: --size, --run-name and params overrides as `--set key=value`.
The launcher writes the overrides (override_args); the trainers and jobs it launches read them (job_parser,
parse_override_args)."""
from __future__ import annotations

import argparse
import json

import yaml


def override_args(overrides: dict | None) -> list[str]:
    """Params overrides as `--set key=value` arguments for the stage's entry point (None values skipped)."""
    out: list[str] = []
    for k, v in (overrides or {}).items():
        if v is not None:
            out += ["--set", f"{k}={json.dumps(v) if not isinstance(v, str) else v}"]
    return out


def job_parser(description: str, required: bool = True, **kw) -> argparse.ArgumentParser:
    """The arguments of an entry point the launcher starts: --size, --run-name (required unless `required` is
    False) and --set KEY=VALUE (repeatable; parse_override_args reads them); the entry point adds its own. `kw`
    goes to ArgumentParser."""
    ap = argparse.ArgumentParser(description=description, **kw)
    ap.add_argument("--size", required=required)
    ap.add_argument("--run-name", required=required)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="params override, repeatable")
    return ap


def parse_override_args(items: list[str]) -> dict:
    """The inverse of override_args: ['sft.max_steps=10', ...] -> {'sft.max_steps': 10}.

    JSON first (YAML 1.1 would read 5e-06 as a string), then a YAML scalar, else the plain string.
    """
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set takes key=value (e.g. sft.max_steps=10), got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = yaml.safe_load(value)
    return out
