"""The notebooks as a student reads them: every expectation met at tiny, markdown that states no run figure the run
does not print, readable text output, and code cells short enough to read (logic lives in med42_utils)."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from med42_utils.expectations import read_expectations
from med42_utils.nbcheck import long_code_cells, readability_problems, unprinted_figures
from med42_utils.notebook import STAGES
from med42_utils.paths import outputs_root, repo_root

NOTEBOOKS = sorted((repo_root() / "notebooks").glob("0*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_code_cell_over_15_lines(path):
    assert long_code_cells(nbformat.read(path, as_version=4)) == [], f"{path.name}: move the logic into med42_utils"


@pytest.mark.slow
@pytest.mark.parametrize("notebook", list(STAGES))
def test_every_expectation_met_at_tiny(notebook_run, notebook):
    _, run_dir = notebook_run
    checklist = read_expectations(run_dir / STAGES[notebook])
    assert checklist.items, notebook
    assert checklist.all_met, checklist.text()
    # and the student saw the same list, as text, in the executed notebook
    nb = nbformat.read(run_dir / f"{notebook}.ipynb", as_version=4)
    from med42_utils.nbcheck import output_text

    assert f"What you should see ({notebook})" in output_text(nb)


@pytest.mark.slow
@pytest.mark.parametrize("notebook", list(STAGES))
def test_markdown_states_no_run_figure_the_run_does_not_print(notebook_run, notebook):
    _, run_dir = notebook_run
    missing = unprinted_figures(nbformat.read(run_dir / f"{notebook}.ipynb", as_version=4))
    assert missing == [], "markdown figures neither printed by the run nor marked as the paper's/card's: " + \
        "; ".join(f"{cell}: {fig!r} in {sentence!r}" for cell, fig, sentence in missing)


@pytest.mark.slow
@pytest.mark.parametrize("notebook", list(STAGES))
def test_executed_notebook_reads_as_text(notebook_run, notebook):
    _, run_dir = notebook_run
    roots = [str(repo_root()), str(outputs_root()), str(Path.home())]
    problems = readability_problems(nbformat.read(run_dir / f"{notebook}.ipynb", as_version=4), roots)
    assert problems == [], "\n".join(problems)
