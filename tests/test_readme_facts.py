"""The README and docs state figures that code computes: each is read back from the text and compared with
the code, so a change to the params, the tiny model or the registry fails here until the text follows."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from med42_utils.params import load_params

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _find(pattern: str, text: str = README, where: str = "README.md") -> re.Match:
    m = re.search(pattern, text)
    assert m, f"{where} no longer states this figure in a form the test can read (pattern {pattern!r}); " \
              "keep the figure, or change this test with it"
    return m


def _int(s: str) -> int:
    return int(s.replace(",", ""))


def test_tiny_model_size_matches_the_built_model(tiny_params):
    from med42_utils.tables import human_count
    from med42_utils.tiny_model import tiny_model_info

    n = tiny_model_info(tiny_params.model.tiny)["parameters"]
    assert _find(r"`tiny` \| (\S+)-parameter").group(1) == human_count(n)
    assert _find(r"the model has (\S+) parameters").group(1) == human_count(n)


def test_tiny_vocabulary_is_what_the_tokenizer_learned(tiny_params):
    from med42_utils import estimates
    from med42_utils.tiny_model import tiny_model_info

    vocab = tiny_model_info(tiny_params.model.tiny)["vocab"]
    assert vocab <= tiny_params.model.tiny.vocab_size
    assert estimates.model_shape(tiny_params).vocab == vocab, "plans must state the learned vocabulary, not the cap"


def test_number_of_sources_is_the_registry():
    from med42_utils.data.registry import REGISTRY

    assert _int(_find(r"the (\d+)-source fine-tuning mixture").group(1)) == len(REGISTRY)


def test_tiny_trains_in_process_without_fsdp():
    p = load_params("tiny")
    assert p.sft.hardware.launcher == p.dpo.hardware.launcher == "inprocess"
    assert "in-process at tiny" in _find(r"`03_sft` \|[^\n]*").group(0)
    row = _find(r"\| `tiny` \|[^\n]*").group(0)
    assert row.count("in-process") == 2


@pytest.mark.parametrize("size", ["8b", "70b"])
def test_paper_sizes_row(size):
    p = load_params(size)
    row = _find(rf"\| `{size}` \|[^\n]*").group(0)
    m = _find(r"(\d+) × (\d+) H100, ([\d,]+) tokens/step, ([\d,]+) steps \| (\d+) × (\d+) H100, batch (\d+), "
              r"beta ([\d.]+)", row, f"README.md's {size} row")
    sft, dpo = p.sft.hardware, p.dpo.hardware
    assert (int(m[1]), int(m[2])) == (sft.nodes, sft.gpus_per_node)
    assert (_int(m[3]), _int(m[4])) == (p.sft_tokens_per_step, p.sft.max_steps)
    assert (int(m[5]), int(m[6])) == (dpo.nodes, dpo.gpus_per_node)
    assert (int(m[7]), float(m[8])) == (p.dpo.batch_size, p.dpo.beta)
    assert _find(rf"`{re.escape(p.model.base)}`", row, f"README.md's {size} row")


def test_workshop_row_and_budget():
    from med42_utils import budget

    p = load_params("workshop")
    row = _find(r"\| `workshop` \|[^\n]*").group(0)
    m = _find(r"(\d+) steps × ([\d,]+) tokens", row, "README.md's workshop row")
    assert (int(m[1]), _int(m[2])) == (p.sft.max_steps, p.sft_tokens_per_step)
    assert int(_find(r"(\d+) pairs per source", row).group(1)) == p.dpo.max_samples_per_source
    stages = {b.stage: b for b in budget.stage_budgets(p)}
    m = _find(r"\(([\d.]+) min in all, SFT ([\d.]+) min at the measured ([\d,]+) tokens/s")
    assert float(m[1]) == round(budget.total_minutes(p), 1)
    assert float(m[2]) == round(stages["03_sft"].minutes, 1)
    assert _int(m[3]) == budget.sft_rate(p)[0]
    assert int(_find(r"a seeded, stratified sample of (\d+) rows per task").group(1)) == p.eval.limit


def test_plan_estimates_in_docs():
    from med42_utils import estimates

    text = (ROOT / "docs" / "performance.md").read_text()
    m = _find(r"8B SFT ~([\d.]+) GiB per GPU and ~([\d.]+) h on 2x8 H100, 70B SFT ~([\d.]+) GiB and ~([\d.]+) h on 6x8",
              text, "docs/performance.md")
    from med42_utils import cluster_plan

    for (gib, hours), size in (((m[1], m[2]), "8b"), ((m[3], m[4]), "70b")):
        mem, _ = estimates.sft_estimate(load_params(size), estimates.ASSUMED_MFU)
        assert float(gib) == round(mem.total / estimates.GIB, 1)
        assert float(hours) == round(cluster_plan.sft_time(load_params(size)).total, 1)  # with communication


def test_readme_links_resolve():
    for target in re.findall(r"\]\(([^)#]+)\)", README):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), f"README.md links to {target}, which does not exist"
