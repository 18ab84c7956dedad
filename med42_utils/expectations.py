""""What you should see": a notebook's lessons as checks on its own run, shown as met or not met.

    items = [expect("SFT's loss falls", last < first, f"{first:.2f} -> {last:.2f}")]
    show_expectations(out_dir, "03_sft", items)   # last expression of a cell: the checklist

Each item states the lesson (true of the method at every size) and what this run measured. The list is written to
`<stage dir>/expectations.json`, which the tests read: at `tiny` a check that is not met fails the suite.
"""
from __future__ import annotations

import json
import textwrap
from dataclasses import asdict, dataclass
from pathlib import Path

FILE = "expectations.json"


@dataclass(frozen=True)
class Expectation:
    what: str       # the lesson, as a student should see it
    met: bool
    observed: str   # what this run shows

    def line(self) -> str:
        return f"{'met' if self.met else 'NOT MET'}: {self.what} ({self.observed})"


def expect(what: str, met, observed: str) -> Expectation:
    """One check; `met` is turned into a real bool (numpy bools included)."""
    return Expectation(what, bool(met), observed)


class Checklist:
    """The expectations of one notebook: Markdown in JupyterLab, the same lines as plain text elsewhere."""

    def __init__(self, stage: str, items: list[Expectation]):
        self.stage, self.items = stage, list(items)

    @property
    def all_met(self) -> bool:
        return all(e.met for e in self.items)

    def text(self) -> str:
        n = sum(e.met for e in self.items)
        head = f"What you should see ({self.stage}): {n} of {len(self.items)} met"
        return "\n".join([head] + [textwrap.fill(e.line(), width=120, initial_indent="- ", subsequent_indent="  ")
                                   for e in self.items])

    def _repr_markdown_(self) -> str:
        n = sum(e.met for e in self.items)
        rows = [f"- **{'met' if e.met else 'NOT MET'}**: {e.what} — *{e.observed}*" for e in self.items]
        return f"**What you should see**: {n} of {len(self.items)} met\n\n" + "\n".join(rows)

    def __repr__(self) -> str:
        return self.text()


def show_expectations(stage_dir: str | Path, stage: str, items: list[Expectation]) -> Checklist:
    """Write the checks to `<stage_dir>/expectations.json` and return the checklist to display."""
    if not items:
        raise ValueError(f"{stage}: no expectations given; a notebook states at least one")
    d = Path(stage_dir)
    d.mkdir(parents=True, exist_ok=True)
    (d / FILE).write_text(json.dumps({"stage": stage, "items": [asdict(e) for e in items]}, indent=1))
    return Checklist(stage, items)


def read_expectations(stage_dir: str | Path) -> Checklist:
    """The checklist a notebook wrote; a clear error when the notebook did not reach its checks."""
    f = Path(stage_dir) / FILE
    if not f.is_file():
        raise FileNotFoundError(f"{f} is missing: the notebook did not reach its 'What you should see' cell")
    data = json.loads(f.read_text())
    return Checklist(data["stage"], [Expectation(**e) for e in data["items"]])
