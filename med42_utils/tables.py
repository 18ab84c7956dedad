"""Tables a person can read in a notebook: long text wrapped inside its cell, never cut off."""
from __future__ import annotations

import textwrap

import pandas as pd
from pandas.io.formats.style import Styler

# pandas cuts any cell longer than display.max_colwidth (50 characters by default) with "...".
LONG_TEXT = 50


def text_columns(df: pd.DataFrame, longer_than: int = LONG_TEXT) -> list:
    """Columns holding text longer than `longer_than` characters somewhere."""
    return [c for c in df.columns
            if (df[c].dtype == object or pd.api.types.is_string_dtype(df[c])) and df[c].map(lambda v: isinstance(v, str) and len(v) > longer_than).any()]


TEXT_WIDTH = 120


def plain_text(df: pd.DataFrame, width: int = TEXT_WIDTH, precision: int = 2) -> str:
    """The table as text that fits `width` columns: pandas' own layout when it fits, else one block per row
    ("index" then "  column: value", long values wrapped), so nothing is cut and no line runs off the screen."""
    shown = df.round(precision) if len(df.columns) else df
    with pd.option_context("display.width", width, "display.max_columns", None, "display.max_colwidth", None):
        text = shown.to_string()
    if max((len(line) for line in text.splitlines()), default=0) <= width:
        return text
    blocks = []
    for idx, row in shown.iterrows():
        lines = [str(idx)]
        for col, v in row.items():
            lines += textwrap.wrap(f"{col}: {v}", width=width - 2, initial_indent="  ", subsequent_indent="    ",
                                   replace_whitespace=False, drop_whitespace=True) or [f"  {col}:"]
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


class TextStyler(Styler):
    """A Styler whose text form is the table itself (pandas' Styler shows `<...Styler at 0x...>` as text)."""

    def __repr__(self) -> str:
        return plain_text(self.data)


def wrapped(df: pd.DataFrame, columns: list | None = None, width_em: int = 32, precision: int = 2):
    """A Styler showing every character of the long text columns, wrapped within `width_em` per cell.

    `columns` defaults to every column with text longer than pandas' 50-character cut. Line breaks in the
    text are kept; numbers show `precision` decimals. Display it as the last expression of a cell.
    """
    columns = text_columns(df) if columns is None else list(columns)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise KeyError(f"wrapped(): no column(s) {missing} in the table; its columns: {list(df.columns)}")
    style = TextStyler(df).format(precision=precision, na_rep="", escape="html")  # "<|eot_id|>" stays text
    if columns:
        style = style.set_properties(subset=columns, **{
            "white-space": "pre-wrap", "text-align": "left", "min-width": f"{width_em // 2}em",
            "max-width": f"{width_em}em", "word-break": "break-word",
        })
    return style


class SideBySide:
    """Tables next to each other: HTML in a notebook, each table's text under its caption elsewhere."""

    def __init__(self, html: str, text: str):
        self.html, self.text = html, text

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return self.text


def side_by_side(*tables, gap_em: int = 3, precision: int = 1) -> SideBySide:
    """Tables shown next to each other, each under its own caption, never joined row by row.

    `tables` are (caption, DataFrame or Styler) pairs. Display the result as the last expression of a cell.
    """
    parts, texts = [], []
    for caption, table in tables:
        style = table if isinstance(table, Styler) else table.style.format(precision=precision, na_rep="")
        parts.append(f'<div style="margin-right:{gap_em}em">{style.set_caption(caption).to_html()}</div>')
        texts.append(f"{caption}\n{plain_text(style.data, precision=precision)}")
    return SideBySide('<div style="display:flex;align-items:flex-start;flex-wrap:wrap">' + "".join(parts) + "</div>",
                      "\n\n".join(texts))


def human_count(n: float) -> str:
    """A parameter or token count as people write it: 231,360 -> '231k', 8.03e9 -> '8.03B'."""
    n = float(n)
    for scale, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            v = n / scale
            return f"{v:.3g}{unit}" if v < 100 else f"{v:.0f}{unit}"
    return f"{n:.0f}"


def footnoted(df: pd.DataFrame, min_repeats: int = 3, width_em: int = 32):
    """The table with any clause (text between "; " or " and ") found in `min_repeats` or more cells replaced by a
    marker ([1], [2], ...) said once under it: a reason repeated in every row is read once, not eight times."""
    import re
    from collections import Counter

    def pieces(v):
        return [x for x in re.split(r"; | and ", v) if len(x) > 12]

    counts = Counter(x for v in df.to_numpy().ravel() if isinstance(v, str) for x in set(pieces(v)))
    notes = {text: f"[{i + 1}]" for i, (text, n) in enumerate(c for c in counts.most_common() if c[1] >= min_repeats)}

    def short(v):
        if not isinstance(v, str):
            return v
        for text, mark in notes.items():
            v = v.replace(text, mark)
        return v

    table = wrapped(df.map(short), width_em=width_em)
    if notes:
        table = table.set_caption("  ".join(f"{m} {t}" for t, m in notes.items()))
    return Footnoted(table, notes)


class Footnoted:
    """A wrapped table and its footnotes: HTML with the notes as caption, or text with the notes below."""

    def __init__(self, table, notes: dict):
        self.table, self.notes = table, notes

    def _repr_html_(self) -> str:
        return self.table.to_html()

    def __repr__(self) -> str:
        return repr(self.table) + "".join("\n" + textwrap.fill(f"{m} {t}", width=TEXT_WIDTH, subsequent_indent="    ")
                                          for t, m in self.notes.items())
