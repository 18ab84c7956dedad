"""`python -m med42_utils.params diff workshop 8b`: the resolved values in which one size differs from another."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from .loader import ParamsError, load_params


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """Dotted keys to leaf values (lists and empty mappings are leaves)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def differences(size: str, other: str) -> list[tuple[str, Any, Any]]:
    """(key, value in `other`, value in `size`) for every resolved value that differs."""
    a = flatten(load_params(size).model_dump(mode="json"))
    b = flatten(load_params(other).model_dump(mode="json"))
    missing = "<absent>"
    return [(k, b.get(k, missing), a.get(k, missing)) for k in sorted(a.keys() | b.keys())
            if a.get(k, missing) != b.get(k, missing)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m med42_utils.params", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("diff", help="resolved values in which SIZE differs from OTHER")
    d.add_argument("size")
    d.add_argument("other")
    args = ap.parse_args(argv)
    try:
        rows = differences(args.size, args.other)
    except ParamsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{args.size} differs from {args.other} in {len(rows)} values ({args.other} -> {args.size}):")
    for key, theirs, ours in rows:
        print(f"  {key}: {theirs!r} -> {ours!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
