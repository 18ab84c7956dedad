"""tools/mutate.py: the table of modules and their tests that `make mutate` reads (docs/testing.md)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import mutate  # noqa: E402

# issue 28: the modules that decide results (data, packing, training configs and resume, benchmark scoring and
# statistics, judging, SLURM script rendering)
DECIDING = ["data/dedup", "data/decontam", "data/text", "data/filters", "data/mixture", "data/adapters",
            "packing/pack", "packing/labels", "checkpoints", "sft/train", "dpo/train", "benchmarks/results",
            "judging/elo", "judging/battles", "judging/parse", "judging/judge", "slurm_site", "launch"]


def test_every_module_that_decides_results_is_listed_with_test_files_that_exist():
    table = mutate.mutation_table()
    assert sorted(table) == sorted(f"med42_utils/{m}.py" for m in DECIDING)
    for module, tests in table.items():
        assert mutate.tests_for(module, None, table) == tests
        assert all((ROOT / t).is_file() for t in tests), module


def test_a_module_without_tests_or_a_missing_test_file_is_refused_with_the_fix():
    table = mutate.mutation_table()
    with pytest.raises(SystemExit, match=r"no test files in pyproject.toml \[tool.med42.mutation.modules\]; add it"):
        mutate.tests_for("med42_utils/paths.py", None, table)
    with pytest.raises(SystemExit, match=r"test files not found for med42_utils/paths.py: \['tests/nope.py'\]"):
        mutate.tests_for("med42_utils/paths.py", ["tests/nope.py"], table)
    with pytest.raises(SystemExit, match="not a Python file of this checkout"):
        mutate.tests_for("med42_utils/nope.py", None, table)


def test_the_mutmut_section_mutates_only_the_module_and_runs_only_its_fast_tests():
    import tomllib

    text = mutate.mutmut_section("med42_utils/data/dedup.py", ["tests/test_data_dedup.py"], ["params", "tools"])
    cfg = tomllib.loads(text)["tool"]["mutmut"]
    assert cfg["only_mutate"] == ["med42_utils/data/dedup.py"]
    assert cfg["pytest_add_cli_args_test_selection"] == ["tests/test_data_dedup.py"]
    assert cfg["pytest_add_cli_args"][-2:] == ["-m", "not slow and not slurm"]
    assert cfg["also_copy"] == ["params", "tools"]
