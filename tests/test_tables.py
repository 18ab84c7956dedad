"""Readable tables: long text is wrapped in its cell, never cut at pandas' 50 characters."""
from __future__ import annotations

import pandas as pd
import pytest

from med42_utils.tables import text_columns, wrapped

NOTE = ("SlimOrca rows carry no T0/Flan/CoT label, so rows are attributed by the id prefix of the parent "
        "OpenOrca; <|eot_id|> & the rest of a long note that pandas would cut at fifty characters.")


def test_long_text_is_shown_whole_and_wrapped():
    df = pd.DataFrame({"key": ["slimorca_t0", "mmlu"], "note": [NOTE, "short"], "count": [3, 4]})
    assert text_columns(df) == ["note"]
    assert "..." in df._repr_html_(), "pandas alone cuts the note in a notebook"
    html = wrapped(df)._repr_html_()
    assert "label, so rows are attributed by the id prefix" in html and "fifty characters." in html
    assert "&lt;|eot_id|&gt; &amp; the rest" in html, "special tokens are escaped, not eaten as HTML tags"
    assert "pre-wrap" in html and "max-width: 32em" in html


def test_wrapped_names_a_missing_column():
    with pytest.raises(KeyError, match=r"no column\(s\) \['reason'\]"):
        wrapped(pd.DataFrame({"note": [NOTE]}), columns=["reason"])


def test_side_by_side_keeps_each_table_whole_and_apart():
    import pandas as pd

    from med42_utils.judging.card import card_table
    from med42_utils.tables import side_by_side

    card = card_table().set_index("model (model card)")
    ours = pd.DataFrame({"elo": [1316.681146, 900.0]}, index=pd.Index(["base", "dpo_round3"], name="model (this run)"))
    out = side_by_side(("the card", card), ("this run", ours))
    html = out._repr_html_()
    assert html.count("<table") == 2 and html.index("the card") < html.index("this run")
    assert "Med42-v2-70B" in html and "dpo_round3" in html and "1316.7" in html
    text = repr(out)  # a plain-text frontend: two tables one after the other, no row shared
    first, second = text.split("\n\nthis run\n")
    assert "Med42-v2-70B" in first and "base" not in first and "Med42" not in second and "base" in second
    assert "1316.7" in second and "1316.68" not in second  # numbers at the table's precision in text too


def test_interval_contrast_reads_both_intervals():
    import pandas as pd

    from med42_utils.judging.elo import interval_contrast

    board = pd.DataFrame({"elo": [1000.0], "lower_battle": [860.6], "upper_battle": [1018.3],
                          "lower_question": [40.9], "upper_question": [1060.8]}, index=["dpo_round3"])
    c = interval_contrast(board)
    assert c.loc["dpo_round3", "by battle"] == "[860.6, 1018.3]" and c.loc["dpo_round3", "by question"] == "[40.9, 1060.8]"
    assert round(c.loc["dpo_round3", "question / battle width"], 2) == round(1019.9 / 157.7, 2)
