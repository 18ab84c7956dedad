"""The papermill runner behind `make demo`: order, progress, failure naming, partial copies."""
from __future__ import annotations

import json

import pytest

from med42_utils.notebook import STAGES
from med42_utils.runner import main, notebooks, run_all

pytestmark = pytest.mark.slow


def _write(folder, name, code):
    import sys

    sys.path.insert(0, str(__import__("med42_utils.paths", fromlist=["x"]).repo_root() / "tools"))
    from nbbuild import write_notebook

    write_notebook(folder / name, [("md", "# test"), ("params", 'size = "tiny"\nrun_name = "x"'), ("code", code)])


def test_failure_names_notebook_and_keeps_partial_copy(tmp_path, capsys):
    _write(tmp_path, "00_ok.ipynb", "print('fine')")
    _write(tmp_path, "01_bad.ipynb", "raise ValueError('broken on purpose')")
    _write(tmp_path, "02_never.ipynb", "print('not reached')")
    assert [p.name for p in notebooks(tmp_path)] == ["00_ok.ipynb", "01_bad.ipynb", "02_never.ipynb"]
    run_name = f"pytest-fail-{tmp_path.name}"
    with pytest.raises(RuntimeError) as e:
        run_all("tiny", run_name, folder=tmp_path)
    msg = str(e.value)
    assert "01_bad.ipynb" in msg and "broken on purpose" in msg
    from med42_utils.paths import run_dir

    partial = run_dir("tiny", run_name) / "01_bad.ipynb"
    assert partial.is_file() and "broken on purpose" in partial.read_text()
    assert not (run_dir("tiny", run_name) / "02_never.ipynb").exists()
    out = capsys.readouterr().out
    assert "[1/3] 00_ok.ipynb" in out and "[2/3] 01_bad.ipynb" in out


def test_cli_exit_code_on_no_match():
    assert main(["--size", "tiny", "--run-name", "pytest-nomatch", "--only", "99"]) == 1


def test_every_notebook_wrote_its_manifest(notebook_run):
    """The smoke run: each notebook executed at size tiny and left its stage manifest."""
    _, run = notebook_run
    for nb in notebooks():
        assert (run / nb.name).is_file(), f"{nb.name} was not executed"
        m = json.loads((run / STAGES[nb.stem] / "manifest.json").read_text())
        assert m["size"] == "tiny" and m["params_hash"], nb.name
