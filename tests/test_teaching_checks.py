"""The teaching checks themselves, on small hand-made notebooks: each one fails on what it is meant to catch."""
from __future__ import annotations

import nbformat
import pandas as pd
import pytest

from med42_utils.expectations import expect, read_expectations, show_expectations
from med42_utils.nbcheck import long_code_cells, readability_problems, unprinted_figures
from med42_utils.narrate import agreement_said, share, spikes_said
from med42_utils.tables import footnoted, plain_text, wrapped


def _nb(md: str, printed: str, code: str = "x = 1"):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(code)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed)]
    nb.cells = [nbformat.v4.new_markdown_cell(md), cell]
    return nb


def test_a_run_figure_in_markdown_must_be_printed():
    nb = _nb("The gradient norm reaches 145.2 and the loss 1.50.", "loss 1.50\n")
    assert [f for _, f, _ in unprinted_figures(nb)] == ["145.2"]
    assert unprinted_figures(_nb("The gradient norm reaches 145.2.", "grad norm 145.2")) == []


def test_figures_that_name_their_source_are_exempt():
    assert unprinted_figures(_nb("The paper trains 5,321 steps at 0.4 temperature.", "")) == []
    assert unprinted_figures(_nb("## Table 5\n\nThe grand total is 1,296,471 rows.", "")) == []
    assert unprinted_figures(_nb("Intervals are 95% bootstrap percentiles; `x = 2.47` in code.", "")) == []
    assert [f for _, f, _ in unprinted_figures(_nb("We kept 36 of 36 rows.", "35 of 35"))] == ["36 of 36"]


def test_long_code_cells_and_text_problems_are_found(tmp_path):
    nb = _nb("", "answers: 1/9 (11%)\n" * 7 + "UsMLE 3.0\n", code="\n".join(f"a{i} = {i}" for i in range(16)))
    nb.cells[1].outputs.append(nbformat.v4.new_output("execute_result", data={
        "text/plain": "<pandas.io.formats.style.Styler at 0x7f43f773f790>"}, execution_count=1))
    nb.cells[1].outputs.append(nbformat.v4.new_output("stream", name="stdout", text=f"wrote {tmp_path}/x.json"))
    assert long_code_cells(nb) == [(nb.cells[1].get("id"), 16)]
    problems = " | ".join(readability_problems(nb, [str(tmp_path)]))
    for what in ("object's repr", "absolute path", "7 progress lines", "'UsMLE'"):
        assert what in problems, problems


def test_tables_have_a_text_form_that_fits():
    df = pd.DataFrame({"a": [1.234, 2], "text": ["word " * 60, "short"]})
    text = repr(wrapped(df))
    assert "Styler" not in text and "short" in text and max(map(len, text.splitlines())) <= 120
    assert plain_text(pd.DataFrame({"a": [1]})).split() == ["a", "0", "1"]
    reason = "this machine has no CUDA device"
    note = repr(footnoted(pd.DataFrame({"sft": [f"no: needs 8 GPUs and {reason}"] * 4})))
    assert note.count(reason) == 1 and note.count("[1]") == 5, note


def test_expectations_round_trip_and_show_unmet(tmp_path):
    items = [expect("loss falls", True, "6.9 -> 4.0"), expect("SFT beats base", False, "p = 0.4")]
    shown = show_expectations(tmp_path, "03_sft", items)
    assert not shown.all_met and "NOT MET: SFT beats base (p = 0.4)" in repr(shown)
    back = read_expectations(tmp_path)
    assert back.items == shown.items and "1 of 2 met" in back.text()
    with pytest.raises(ValueError, match="at least one"):
        show_expectations(tmp_path, "03_sft", [])
    with pytest.raises(FileNotFoundError, match="What you should see"):
        read_expectations(tmp_path / "missing")


def test_narration_says_which_way_it_went():
    flat = pd.DataFrame({"grad_norm": [1.0, 1.2, 0.9, 1.1], "loss": [2, 1.9, 1.8, 1.7]}, index=[1, 2, 3, 4])
    assert "no step's gradient norm exceeded" in spikes_said(flat)
    spiky = flat.assign(grad_norm=[1.0, 1.2, 30.0, 1.1])
    assert "spiked 1 time" in spikes_said(spiky) and "step 3" in spikes_said(spiky)
    assert "less than chance" in repr(agreement_said({"kappa": -0.13, "agreement": 0.37, "matched": 168}, ("a", "b")))
    assert "substantial" in repr(agreement_said({"kappa": 0.7, "agreement": 0.9, "matched": 10}, ("a", "b")))
    assert (share(23, 23), share(0, 11), share(3, 25)) == ("all 23", "none of 11", "3 of 25")
