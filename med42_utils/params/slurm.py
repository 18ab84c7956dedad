"""Site options of a SLURM cluster (partition, account, qos, time, ...), per stage.

They change where and how long a job runs, never what it computes, so no stage's "done" check depends on them
(manifest.STAGE_PARAMS leaves the `slurm` section out). For one run, set MED42_SLURM in the environment:

    MED42_SLURM='account=abc partition=gpu sft.time=12:00:00' papermill 03_sft.ipynb out.ipynb -p size 70b

A key without a stage prefix sets the site default; `sft.`, `dpo.`, `eval.`, `judge.` or `samples.` sets it for
that stage only. `extra=--mail-type=END` (repeatable) adds an #SBATCH line.
"""
from __future__ import annotations

import re
import shlex
from typing import Any

from pydantic import Field, field_validator

from .base import StrictModel

# SLURM's time formats (sbatch --time): M, M:S, H:M:S, D-H, D-H:M, D-H:M:S.
_TIME = re.compile(r"^(?:(?P<d>\d+)-(?P<dh>\d+)(?::(?P<dm>\d+)(?::(?P<ds>\d+))?)?"
                   r"|(?P<a>\d+)(?::(?P<b>\d+)(?::(?P<c>\d+))?)?)$")
UNLIMITED = ("unlimited", "infinite")
STAGES = ("sft", "dpo", "eval", "judge", "samples")
ENV = "MED42_SLURM"


def time_hours(value: str) -> float | None:
    """A SLURM time limit in hours ('12:00:00' -> 12.0, '1-12' -> 36.0, '90' -> 1.5); None for unlimited.
    A value SLURM would not accept is a ValueError naming the formats."""
    v = value.strip()
    if v.lower() in UNLIMITED:
        return None
    m = _TIME.match(v)
    if not m:
        raise ValueError(f"time {value!r} is not a SLURM time limit; use minutes ('90'), 'H:MM:SS' ('12:00:00'), "
                         f"'D-HH' or 'D-HH:MM:SS' ('1-12:00:00')")
    if m["d"] is not None:
        d, h, mi, s = (int(m[k] or 0) for k in ("d", "dh", "dm", "ds"))
        return d * 24 + h + mi / 60 + s / 3600
    a, b, c = m["a"], m["b"], m["c"]
    if c is not None:  # H:M:S
        return int(a) + int(b) / 60 + int(c) / 3600
    return int(a) / 60 + int(b or 0) / 3600  # M or M:S


class SlurmOptions(StrictModel):
    """What a job asks sbatch for beyond nodes and GPUs. null = not asked (the site's default applies)."""

    partition: str | None = Field(default=None, description="sbatch --partition; null: the cluster's default partition")
    account: str | None = Field(default=None, description="sbatch --account, where the site charges jobs to one")
    qos: str | None = Field(default=None, description="sbatch --qos")
    time: str | None = Field(default=None, description="sbatch --time, e.g. '12:00:00' or '2-00:00:00'; null: the "
                             "partition's default limit, which may end a long stage part way")
    constraint: str | None = Field(default=None, description="sbatch --constraint, node features such as 'h100'")
    cpus_per_task: int | None = Field(default=None, ge=1, description="sbatch --cpus-per-task (one task per node); "
                                      "null: the job's share of a node's CPUs as sinfo reports them")
    exclusive: bool | None = Field(default=None, description="null: --exclusive --mem=0 exactly when the job takes "
                                   "every GPU of its nodes; true/false: always/never")
    extra: list[str] = Field(default_factory=list, description="more #SBATCH options, e.g. ['--mail-type=END']")

    @field_validator("time")
    @classmethod
    def _time_format(cls, v: str | None) -> str | None:
        if v is not None:
            time_hours(v)
        return v

    @field_validator("partition", "account", "qos", "constraint")
    @classmethod
    def _one_word(cls, v: str | None) -> str | None:
        if v is not None and (not v.strip() or any(ch.isspace() for ch in v) or "'" in v or '"' in v):
            raise ValueError(f"{v!r} must be one word with no spaces or quotes (it becomes an #SBATCH option)")
        return v

    @field_validator("extra")
    @classmethod
    def _sbatch_options(cls, v: list[str]) -> list[str]:
        for item in v:
            if not item.startswith("-") or "\n" in item or "\r" in item:
                raise ValueError(f"extra #SBATCH option {item!r} must be one option starting with '-' "
                                 f"(e.g. '--mail-type=END'), on one line")
        return v


class SlurmParams(SlurmOptions):
    """Site defaults (the fields of SlurmOptions) plus per-stage options that win over them."""

    sft: SlurmOptions = Field(default_factory=SlurmOptions)
    dpo: SlurmOptions = Field(default_factory=SlurmOptions, description="every DPO round")
    eval: SlurmOptions = Field(default_factory=SlurmOptions, description="05's lm-eval job")
    judge: SlurmOptions = Field(default_factory=SlurmOptions, description="06's answers and judging job")
    samples: SlurmOptions = Field(default_factory=SlurmOptions, description="03/04's sample-answer jobs")

    def for_stage(self, stage: str) -> SlurmOptions:
        """The options of one stage: its own where set, else the site default; extra lines add up."""
        if stage not in STAGES:
            raise ValueError(f"unknown SLURM stage {stage!r}; stages with site options: {', '.join(STAGES)}")
        own = getattr(self, stage)
        merged = {k: getattr(own, k) if getattr(own, k) is not None else getattr(self, k)
                  for k in SlurmOptions.model_fields if k != "extra"}
        return SlurmOptions(**merged, extra=[*self.extra, *own.extra])


_INT, _BOOL = {"cpus_per_task"}, {"exclusive"}
_WORDS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}


def _value(field: str, text: str, key: str) -> Any:
    if text.lower() in ("null", "none", ""):
        return None
    if field in _INT:
        if not text.isdigit():
            raise ValueError(f"{ENV}: {key}={text!r} must be a whole number")
        return int(text)
    if field in _BOOL:
        if text.lower() not in _WORDS:
            raise ValueError(f"{ENV}: {key}={text!r} must be true or false")
        return _WORDS[text.lower()]
    return text  # strings stay strings: YAML would read 12:00:00 as a number of seconds


def env_overrides(text: str | None) -> dict[str, Any]:
    """MED42_SLURM's `key=value` words as params overrides: 'account=abc sft.time=12:00:00' ->
    {'slurm.account': 'abc', 'slurm.sft.time': '12:00:00'}. `extra=...` adds one #SBATCH option per word."""
    out: dict[str, Any] = {}
    for word in shlex.split(text or ""):
        key, sep, value = word.partition("=")
        parts = key.split(".")
        field = parts[-1]
        if not sep or len(parts) > 2 or (len(parts) == 2 and parts[0] not in STAGES) \
                or field not in SlurmOptions.model_fields:
            raise ValueError(
                f"{ENV}: {word!r} is not [stage.]key=value; keys: {', '.join(SlurmOptions.model_fields)}; "
                f"stages: {', '.join(STAGES)} (e.g. {ENV}='account=abc partition=gpu sft.time=12:00:00')")
        dotted = "slurm." + key
        if field == "extra":
            out.setdefault(dotted, []).append(value)
        else:
            out[dotted] = _value(field, value, key)
    return out
