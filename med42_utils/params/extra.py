"""Params of models beside the run's stages (05 and 06): the release, another lab's model, saved answers."""
from __future__ import annotations

from pydantic import Field, model_validator

from .base import StrictModel

KINDS = ("hub", "path", "answers", "tiny_seed")


class ExtraModel(StrictModel):
    """One model scored in 05 and rated in 06 beside the stages; exactly one of hub, path, answers, tiny_seed."""

    name: str = Field(min_length=1, description="display name in 05's and 06's tables; a model card name "
                      "(e.g. Med42-v2-8B) puts the run's rating beside the card's")
    hub: str | None = Field(default=None, description="Hub id, e.g. m42-health/Llama3-Med42-8B")
    path: str | None = Field(default=None, description="local model folder (relative to the repo root, or absolute)")
    answers: str | None = Field(default=None, description="JSONL of answers already generated, one line per "
                                "question: {\"question_id\": ..., \"answer\": ...}; 06 only (05 skips it with a note)")
    tiny_seed: int | None = Field(default=None, description="size tiny only: the tiny model initialised with this "
                                  "seed, a local stand-in for the release")

    @property
    def kind(self) -> str:
        return next(k for k in KINDS if getattr(self, k) is not None)

    @model_validator(mode="after")
    def _exactly_one(self) -> "ExtraModel":
        given = [k for k in KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"extra model '{self.name}' gives {', '.join(given) or 'none'} of {', '.join(KINDS)}: "
                             f"give exactly one (a Hub id, a local folder, an answers file, or at tiny a seed)")
        if self.name in ("base", "sft") or self.name.startswith("dpo_"):
            raise ValueError(f"extra model name '{self.name}' is a stage name; give it another name")
        if "/" in self.name or self.name.strip() != self.name:
            raise ValueError(f"extra model name '{self.name}' must not contain '/' or edge spaces (it names files)")
        return self
