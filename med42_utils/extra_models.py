"""Models beside the run's stages (params `extra_models`): where each lives, which of 05/06 scores it,
and what its cached answers were made from."""
from __future__ import annotations

import hashlib
from pathlib import Path

from .params import Params
from .params.extra import ExtraModel
from .paths import outputs_root, repo_root


def find_extra(params: Params, name: str) -> ExtraModel | None:
    return next((m for m in params.extra_models if m.name == name), None)


def _local(p: str) -> Path:
    path = Path(p).expanduser()
    return path if path.is_absolute() else repo_root() / path


def tiny_extra_dir(name: str) -> Path:
    return outputs_root() / "tiny" / "extra_models" / name


def resolve_extra(params: Params, m: ExtraModel) -> str:
    """What from_pretrained loads for an extra model: its Hub id, its folder, or (tiny_seed) the tiny model
    built with that seed. An answers-file model has no weights: ValueError."""
    if m.hub is not None:
        return m.hub
    if m.path is not None:
        d = _local(m.path)
        if not (d / "config.json").is_file():
            raise FileNotFoundError(f"extra model '{m.name}': {d} holds no saved model (config.json); "
                                    f"fix extra_models path, or give its Hub id as `hub`")
        return str(d)
    if m.tiny_seed is not None:
        from .tiny_model import ensure_tiny_release

        return str(ensure_tiny_release(params, m.tiny_seed, tiny_extra_dir(m.name)))
    raise ValueError(f"extra model '{m.name}' is a file of answers ({m.answers}): it has no weights to load")


def answers_file(m: ExtraModel) -> Path:
    """The given answers file of an answers-only extra model; a missing file names the key to fix."""
    path = _local(m.answers)
    if not path.is_file():
        raise FileNotFoundError(f"extra model '{m.name}': answers file {path} not found; fix extra_models answers")
    return path


def eval_models(params: Params, stages: list[str] | None = None) -> tuple[list[str], dict[str, str]]:
    """05's models: the stages, then every extra model with weights; ({answers-only name: why skipped})."""
    extra = [m.name for m in params.extra_models if m.answers is None]
    notes = {m.name: "a file of answers, not a model: 06 rates it, 05 has nothing to score"
             for m in params.extra_models if m.answers is not None}
    return [*(stages or params.eval.models), *(n for n in extra if n not in (stages or []))], notes


def judged_models(params: Params) -> list[str]:
    """06's models: params.judge.models, then every extra model."""
    return [*params.judge.models, *(m.name for m in params.extra_models)]


def extra_fingerprint(params: Params, m: ExtraModel) -> str:
    """What an extra model's cached answers were made from: its Hub id, its folder (and its config's hash),
    the answers file's content hash, or the tiny build's fingerprint."""
    if m.hub is not None:
        return f"hub:{m.hub}"
    if m.answers is not None:
        path = _local(m.answers)
        return f"answers:{hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else 'missing'}"
    if m.path is not None:
        d = _local(m.path)
        files = sorted(p for p in d.glob("*") if p.suffix in (".json", ".safetensors") and p.is_file())
        h = hashlib.sha256()
        for p in files:
            h.update(p.name.encode() + str(p.stat().st_size).encode() + str(p.stat().st_mtime_ns).encode())
        return f"path:{d}:{h.hexdigest()[:16]}"
    from .tiny_model import release_fingerprint

    return f"tiny_seed:{m.tiny_seed}:{release_fingerprint(params, m.tiny_seed)}"
