"""Tables a person can read in a notebook: long text wrapped inside its cell, never cut off."""
from __future__ import annotations

import pandas as pd

# pandas cuts any cell longer than display.max_colwidth (50 characters by default) with "...".
LONG_TEXT = 50


def text_columns(df: pd.DataFrame, longer_than: int = LONG_TEXT) -> list:
    """Columns holding text longer than `longer_than` characters somewhere."""
    return [c for c in df.columns
            if (df[c].dtype == object or pd.api.types.is_string_dtype(df[c])) and df[c].map(lambda v: isinstance(v, str) and len(v) > longer_than).any()]


def wrapped(df: pd.DataFrame, columns: list | None = None, width_em: int = 32, precision: int = 2):
    """A Styler showing every character of the long text columns, wrapped within `width_em` per cell.

    `columns` defaults to every column with text longer than pandas' 50-character cut. Line breaks in the
    text are kept; numbers show `precision` decimals. Display it as the last expression of a cell.
    """
    columns = text_columns(df) if columns is None else list(columns)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise KeyError(f"wrapped(): no column(s) {missing} in the table; its columns: {list(df.columns)}")
    style = df.style.format(precision=precision, na_rep="", escape="html")  # "<|eot_id|>" stays text
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
    from pandas.io.formats.style import Styler

    parts, texts = [], []
    for caption, table in tables:
        style = table if isinstance(table, Styler) else table.style.format(precision=precision, na_rep="")
        parts.append(f'<div style="margin-right:{gap_em}em">{style.set_caption(caption).to_html()}</div>')
        texts.append(f"{caption}\n{style.data.round(precision).to_string()}")
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
