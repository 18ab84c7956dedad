"""Checks on notebooks a student reads: short code cells, readable outputs, and markdown that states no run figure
the run does not print.

Markdown convention: a figure that is not this run's (a number from the paper, the model card, a params file or an
earlier measurement) sits in a sentence that names its source: "paper", "card", "Table N", "§", "params",
"measured", "perf/", "Known limits" (the cell's heading counts as part of each sentence); confidence levels
and shares such as 95% or 0.5 are the method's. Any other figure in markdown (a decimal such as 1.50, a count with
thousands separators such as 14,981, a percentage, or "N of M") must appear in the notebook's own output.
"""
from __future__ import annotations

import re

CODE_CELL_LINES = 15
TEXT_WIDTH = 120
SOURCE_MARKERS = ("paper", "card", "table ", "§", "params", "measured", "perf/", "known limits", "arena", "landis",
                  "issue ", "wilson", "prometheus", "llama 3")
# constants of the method, true at every size: confidence levels, shares a reader compares against
METHOD_FIGURES = ("95%", "5%", "0.5", "50%", "100%")
FIGURE = re.compile(r"(?<![\w.])(\d+ of \d+|\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+\.\d+|\d+(?:\.\d+)?%)(?![\w.])")
PROGRESS = re.compile(r"\d+/\d+ \(\d+%\)")
SPELLINGS = {"UsMLE": "USMLE", "PubmedQA": "PubMedQA", "Pubmedqa": "PubMedQA", "MedQa": "MedQA"}


def output_text(nb) -> str:
    """Everything the notebook's code cells show as text: streams, text/plain and text/markdown."""
    parts = []
    for c in nb.cells:
        if c.cell_type != "code":
            continue
        for o in c.get("outputs", []):
            if o.get("text"):
                parts.append(o["text"] if isinstance(o["text"], str) else "".join(o["text"]))
            for key in ("text/plain", "text/markdown"):
                v = o.get("data", {}).get(key)
                if v:
                    parts.append(v if isinstance(v, str) else "".join(v))
    return "\n".join(parts)


def long_code_cells(nb, limit: int = CODE_CELL_LINES) -> list[tuple[str, int]]:
    """(cell id, lines) of every code cell longer than `limit` lines: logic belongs in med42_utils."""
    return [(c.get("id"), len(c.source.splitlines())) for c in nb.cells
            if c.cell_type == "code" and len(c.source.splitlines()) > limit]


def _prose(md: str) -> str:
    md = re.sub(r"\$\$.*?\$\$", " ", md, flags=re.S)
    md = re.sub(r"\$[^$\n]+\$", " ", md)
    md = re.sub(r"`[^`\n]*`", " ", md)
    md = re.sub(r"\]\([^)]*\)", "]", md)
    lines = [ln for ln in md.splitlines() if not ln.lstrip().startswith(("|", "#", "```"))]
    return " ".join(lines)


def unprinted_figures(nb) -> list[tuple[str, str, str]]:
    """(cell id, figure, sentence) for each run figure in markdown that the outputs do not print and whose
    sentence names no source (see the module's convention)."""
    out = output_text(nb)
    found = []
    for c in nb.cells:
        if c.cell_type != "markdown":
            continue
        heading = next((ln for ln in c.source.splitlines() if ln.startswith("#")), "")
        for sentence in re.split(r"(?<=[.!?])\s+", _prose(c.source)):
            if any(m in (heading + " " + sentence).lower() for m in SOURCE_MARKERS):
                continue
            for fig in FIGURE.findall(sentence):
                if fig not in out and fig not in METHOD_FIGURES:
                    found.append((c.get("id"), fig, sentence.strip()[:160]))
    return found


def readability_problems(nb, roots: list[str], progress_lines: int = 6) -> list[str]:
    """What a plain-text reader would trip on: an object's repr instead of a table, a machine's absolute path,
    more than `progress_lines` progress lines in a cell, a table line wider than TEXT_WIDTH, a misspelt benchmark."""
    problems = []
    for c in nb.cells:
        if c.cell_type != "code":
            continue
        cid = c.get("id")
        streams = "".join(o.get("text", "") if isinstance(o.get("text", ""), str) else "".join(o["text"])
                          for o in c.get("outputs", []))
        plains = [o.get("data", {}).get("text/plain", "") for o in c.get("outputs", [])]
        plains = [p if isinstance(p, str) else "".join(p) for p in plains]
        text = streams + "\n".join(plains)
        if re.search(r"<[\w.]+ (object )?at 0x[0-9a-f]+>", text):
            problems.append(f"{cid}: an object's repr instead of its content: {re.search(r'<[^>]*at 0x[^>]*>', text)[0]}")
        for root in roots:
            if root and root in text:
                problems.append(f"{cid}: absolute path {root} in the output")
        n = len(PROGRESS.findall(streams))
        if n > progress_lines:
            problems.append(f"{cid}: {n} progress lines (at most {progress_lines})")
        for p in plains:
            wide = [ln for ln in p.splitlines() if len(ln) > TEXT_WIDTH]
            if wide and not p.startswith("<"):
                problems.append(f"{cid}: table line of {len(wide[0])} characters (over {TEXT_WIDTH}): {wide[0][:60]}...")
        for wrong, right in SPELLINGS.items():
            if re.search(rf"\b{wrong}\b", text):
                problems.append(f"{cid}: '{wrong}' where its authors write '{right}'")
    return problems
