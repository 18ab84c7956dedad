"""perf/bench_serve.py on CPU, small: both routes answer the same questions, each counts its own tokens, and the
ratio is the quotient of the two rates. No timing is asserted (a shared machine), only that the figures agree."""
from __future__ import annotations

import importlib.util

import pytest

from med42_utils.paths import repo_root

pytestmark = pytest.mark.slow


def test_bench_serve_reports_both_routes_and_their_ratio(capsys):
    spec = importlib.util.spec_from_file_location("bench_serve", repo_root() / "perf" / "bench_serve.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = bench.main(["--questions", "2", "--max-new-tokens", "4", "--concurrency", "2"])
    local, served = out["in_process"], out["served"]
    assert local["answers"] == served["answers"] == out["questions"] == 2
    for r in (local, served):
        assert 1 <= r["tokens"] <= 2 * 4 and r["seconds"] > 0 and r["tokens_per_s"] > 0
    assert served["server_startup_s"] > 0
    assert out["ratio_served_over_in_process"] == pytest.approx(served["tokens_per_s"] / local["tokens_per_s"],
                                                                 rel=0.01)
    assert '"ratio_served_over_in_process"' in capsys.readouterr().out
