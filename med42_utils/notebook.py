"""The second cell of every notebook: params from params/<size>.yaml, the run's folders, seeds."""
from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from . import stages as _stages
from .params import Params, load_params
from .paths import run_dir

# Stage folder of each notebook under outputs/<size>/<run_name>/.
STAGES = {s.notebook: s.folder for s in _stages.STAGES.values()}  # notebook -> its stage folder


# Spellings a notebook flag may arrive in: papermill -p passes `false` as the string 'false' and `0` as 0.
TRUE_SPELLINGS = ("true", "yes", "on", "1")
FALSE_SPELLINGS = ("false", "no", "off", "0")


class ParameterError(ValueError):
    """A notebook parameter has a value that cannot mean what its name says."""


def parse_flag(name: str, value: Any, allow_none: bool = False) -> bool | None:
    """A notebook flag as a real bool: True/False, 1/0, or a string spelling (case-insensitive) of either.

    Anything else (e.g. 'flase', 2, 'None' where None is not allowed) is an error naming the parameter and
    the accepted spellings: a truthy string must never turn a flag on by accident.
    """
    if isinstance(value, bool) or (value is None and allow_none):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_SPELLINGS:
            return True
        if word in FALSE_SPELLINGS:
            return False
        if allow_none and word == "none":
            return None
    pairs = ", ".join(f"{t}/{f}" for t, f in zip(TRUE_SPELLINGS, FALSE_SPELLINGS))
    none = ", or None to use the params file" if allow_none else ""
    raise ParameterError(f"notebook parameter {name}={value!r} is not a boolean; use True or False "
                         f"(accepted spellings, any case: {pairs}){none}")


def _text_parameter(name: str, value: Any) -> str:
    """size and run_name: strings (papermill -p run_name 2024 arrives as the int 2024, accepted as '2024')."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ParameterError(f"notebook parameter {name}={value!r} must be a string such as 'tiny' or 'demo'")
    return str(value)


def _field_type(dotted: str):
    """The annotation of a dotted params key ('dpo.onpolicy.enabled' -> bool), or None if not a plain field."""
    model = Params
    for part in dotted.split("."):
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return None
        model = fields[part].annotation
    return model


def _override_value(key: str, value: Any) -> Any:
    """A boolean params field given as a string or 0/1 (papermill -p) is parsed strictly; the rest goes as is
    to the params loader, which rejects wrong types naming the key."""
    return parse_flag(key, value) if _field_type(key) is bool and not isinstance(value, bool) else value


@dataclass
class Run:
    """One run of the course: validated params plus where its artifacts go, and the notebook's flags."""

    params: Params
    run_name: str
    dir: Path
    flags: dict[str, bool | None] = field(default_factory=dict)

    @property
    def size(self) -> str:
        return self.params.size

    def stage_dir(self, notebook: str) -> Path:
        """outputs/<size>/<run_name>/<stage>/ for a notebook stem such as '03_sft' (created)."""
        if notebook not in STAGES:
            raise ValueError(f"unknown notebook '{notebook}'; known: {', '.join(STAGES)}")
        d = self.dir / STAGES[notebook]
        d.mkdir(parents=True, exist_ok=True)
        return d


def fresh_transforms() -> None:
    """Recompute every datasets transform instead of reusing its cache files.

    datasets fingerprints a map function by its own code, not by the helpers it calls, so after an edit
    to (say) the text normaliser a re-run could silently reuse stale results. Stage manifests already
    decide what is reused; within a stage, transforms always run fresh.
    """
    import datasets

    datasets.disable_caching()


def start(size: str, run_name: str, overrides: Mapping[str, Any] | None = None,
          flags: Mapping[str, Any] | None = None) -> Run:
    """Load and validate params (with overrides from the parameters cell), seed, and make the run folder.

    Overrides are dotted keys, e.g. {"sft.max_steps": 10}; None values are ignored so a
    parameters cell can say `max_steps = None` for "use the params file". Boolean overrides arriving
    as strings ('false') are parsed with parse_flag, naming the key. `flags` are the notebook's
    switches, e.g. {"dry_run": dry_run, "force": force}: parsed strictly (parse_flag) into run.flags.
    """
    from .quiet import quiet_libraries

    quiet_libraries()  # library progress bars, logs and warnings off; our own progress lines stay
    size, run_name = _text_parameter("size", size), _text_parameter("run_name", run_name)
    parsed = {k: parse_flag(k, v) for k, v in (flags or {}).items()}
    clean = {k: _override_value(k, v) for k, v in (overrides or {}).items() if v is not None}
    params = load_params(size, clean)
    d = run_dir(size, run_name)
    d.mkdir(parents=True, exist_ok=True)
    random.seed(params.seed)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    fresh_transforms()
    try:
        import numpy as np

        np.random.seed(params.seed)
        import torch

        torch.manual_seed(params.seed)
    except ImportError:  # pragma: no cover - both are dependencies
        pass
    print(f"size={size} run_name={run_name} -> {d}")
    if clean:
        print(f"overrides: {clean}")
    return Run(params=params, run_name=run_name, dir=d, flags=parsed)
