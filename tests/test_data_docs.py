"""docs/data-sources.md and docs/benchmark-data.md name every source, benchmark and metadata key the code has."""
from __future__ import annotations

from med42_utils.benchmarks.data import BENCHMARKS, MMLU_PRO_LAYOUTS
from med42_utils.benchmarks.run import task_metadata
from med42_utils.data.registry import REGISTRY
from med42_utils.params import load_params
from med42_utils.paths import repo_root


def test_data_sources_page_covers_the_registry():
    text = (repo_root() / "docs" / "data-sources.md").read_text()
    for key, s in REGISTRY.items():
        assert f"`{key}`" in text, key
        assert (s.hub_id or s.published.repo_url.removeprefix("https://")) in text, key
        if s.published:
            assert s.published.commit[:7] in text and all(f.split("/")[-1] in text for f in s.published.files), key
        for fb in s.fallbacks:
            assert (fb.hub_id or fb.files[0]) in text, key


def test_benchmark_page_covers_tasks_layouts_and_metadata_keys():
    text = (repo_root() / "docs" / "benchmark-data.md").read_text()
    for b in BENCHMARKS.values():
        assert f"`{b.task}`" in text and b.hub_id in text, b.key
    assert all(name in text for name in MMLU_PRO_LAYOUTS)
    for key in task_metadata(load_params("tiny")):
        assert f"`{key}`" in text and key in text.split("The lm-eval command line")[1], key
    assert "--include_path med42_utils/benchmarks/tasks" in text
