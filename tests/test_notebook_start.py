"""start(): validated params with overrides, the run folder, seeds, and fresh datasets transforms."""
from __future__ import annotations

import datasets
import pytest

from med42_utils.notebook import STAGES, start
from med42_utils.params import ParamsError


def test_start_applies_overrides_and_ignores_none():
    run = start("tiny", "pytest-start", {"sft.max_steps": 4, "eval.limit": None})
    assert run.params.sft.max_steps == 4 and run.params.eval.limit == 6  # None keeps the params file's value
    assert run.dir.name == "pytest-start" and run.dir.parent.name == "tiny"
    assert run.stage_dir("03_sft").name == STAGES["03_sft"]
    with pytest.raises(ValueError, match="unknown notebook"):
        run.stage_dir("07_nope")
    with pytest.raises(ParamsError, match="sft.max_stpes"):
        start("tiny", "pytest-start", {"sft.max_stpes": 4})


def test_start_turns_transform_caching_off():
    datasets.enable_caching()
    start("tiny", "pytest-start")
    assert not datasets.is_caching_enabled()
    datasets.enable_caching()
