"""Load params/<size>.yaml (plus overrides) into a validated, typed Params object."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

import yaml
from pydantic import BaseModel, ValidationError

from ..paths import repo_root
from .schema import Params


class ParamsError(ValueError):
    """A params file or override is wrong; the message names the key, the source and the fix."""


def params_dir(root: Path | None = None) -> Path:
    return (root or repo_root()) / "params"


def valid_sizes(root: Path | None = None) -> list[str]:
    return sorted(p.stem for p in params_dir(root).glob("*.yaml"))


def _field_model(cls: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """Walk a pydantic model class along a location; the model found there, if any."""
    for part in loc:
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or part not in cls.model_fields:
            return None
        ann = cls.model_fields[part].annotation
        args = getattr(ann, "__args__", ()) or (ann,)
        nxt = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        cls = nxt[0] if nxt else ann
    return cls if isinstance(cls, type) and issubclass(cls, BaseModel) else None


def _format(err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors():
        loc = tuple(e["loc"])
        key = ".".join(str(p) for p in loc) or "<top level>"
        if e["type"] == "extra_forbidden":
            parent = _field_model(Params, loc[:-1])
            valid = sorted(parent.model_fields) if parent else []
            lines.append(f"unknown key '{key}' in {source}; valid keys here: {', '.join(valid)}")
        elif e["type"] == "missing":
            lines.append(f"missing key '{key}' in {source}")
        else:
            got = e.get("input")
            got_s = "" if isinstance(got, Mapping) else f" (got {got!r} of type {type(got).__name__})"
            lines.append(f"bad value for '{key}' in {source}: {e['msg']}{got_s}")
    return "\n".join(lines)


def _apply_override(raw: dict, dotted: str, value: Any, source: str) -> None:
    parts = dotted.split(".")
    cls: Any = Params
    node = raw
    for i, part in enumerate(parts):
        if isinstance(cls, type) and issubclass(cls, BaseModel):
            if part not in cls.model_fields:
                where = ".".join(parts[:i]) or "top level"
                raise ParamsError(
                    f"unknown key '{dotted}' in {source}; valid keys at {where}: {', '.join(sorted(cls.model_fields))}"
                )
            nxt = _field_model(cls, (part,))
        else:
            nxt = None  # free-form mapping such as data.targets
        if i == len(parts) - 1:
            node[part] = value
        else:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ParamsError(f"'{'.'.join(parts[: i + 1])}' is not a section; cannot set '{dotted}' ({source})")
        cls = nxt


def _apply_site_env(raw: dict, path: Path) -> None:
    """SLURM site options for this run from $MED42_SLURM (params/slurm.py): after the file, before overrides.
    `extra` options add to the file's list."""
    import os

    from .slurm import ENV, env_overrides

    try:
        items = env_overrides(os.environ.get(ENV))
    except ValueError as e:
        raise ParamsError(str(e)) from None
    for key, value in items.items():
        if key.endswith(".extra"):
            node = raw.get("slurm") or {}
            for part in key.split(".")[1:-1]:
                node = (node.get(part) or {}) if isinstance(node, dict) else {}
            have = node.get("extra") if isinstance(node, dict) else None
            value = [*(have or []), *value]
        _apply_override(raw, key, value, f"{ENV} (on {path.name})")


def _read_file(path: Path, size: str) -> dict:
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ParamsError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path} must hold a mapping of sections, not {type(raw).__name__}")
    if raw.get("size", size) != size:
        raise ParamsError(f"{path} says size '{raw.get('size')}' but is named for '{size}'; make them agree")
    return raw


def deep_merge(base: dict, over: Mapping) -> dict:
    """`over` on top of `base`: mappings merge key by key, anything else (lists, scalars, null) replaces."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def resolve_file(size: str, root: Path | None = None, _chain: tuple[str, ...] = ()) -> dict:
    """The raw mapping of params/<size>.yaml with `inherits: <parent size>` resolved (parent first, then this
    file's keys deep-merged on top), before validation."""
    sizes = valid_sizes(root)
    path = params_dir(root) / f"{size}.yaml"
    if size in _chain:
        loop = " -> ".join(f"{s}.yaml" for s in (*_chain, size))
        raise ParamsError(f"params files inherit in a cycle: {loop}; make one of them stand alone (drop its 'inherits:')")
    if size not in sizes:
        child = params_dir(root) / f"{_chain[-1]}.yaml" if _chain else path
        raise ParamsError(f"{child} inherits unknown size '{size}'; valid sizes: {', '.join(sizes)}")
    raw = _read_file(path, size)
    parent = raw.pop("inherits", None)
    if parent is None:
        return raw
    if not isinstance(parent, str):
        raise ParamsError(f"{path}: 'inherits' must name one size (e.g. inherits: 8b), not {parent!r}")
    merged = deep_merge(resolve_file(parent, root, (*_chain, size)), raw)
    merged["size"] = size
    return merged


def load_params(size: str, overrides: Mapping[str, Any] | None = None, root: Path | None = None) -> Params:
    """Read params/<size>.yaml, apply dotted-key overrides, validate everything.

    >>> p = load_params("tiny", {"sft.max_steps": 5})
    """
    sizes = valid_sizes(root)
    if size not in sizes:
        raise ParamsError(f"unknown size '{size}'; valid sizes: {', '.join(sizes)} (files in {params_dir(root)})")
    path = params_dir(root) / f"{size}.yaml"
    raw = resolve_file(size, root)
    _apply_site_env(raw, path)
    for key, value in (overrides or {}).items():
        _apply_override(raw, key, value, f"override '{key}' (on {path.name})")
    source = f"{path}" + (f" with overrides {dict(overrides)}" if overrides else "")
    import os

    if os.environ.get("MED42_SLURM"):
        source += f" and MED42_SLURM={os.environ['MED42_SLURM']!r}"
    try:
        params = Params.model_validate(raw)
    except ValidationError as e:
        raise ParamsError(_format(e, source)) from None
    from ..hub import last_size

    last_size.set(size)  # names the size in "fetch it with med42_utils.prefetch --size ..." errors
    return params


def params_hash(params: Params, sections: tuple[str, ...] | None = None) -> str:
    """Short stable hash of every value (or of the named top-level sections), for manifests."""
    dump = params.model_dump(mode="json")
    if sections is not None:
        dump = {k: dump[k] for k in sections}
    blob = json.dumps(dump, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
