"""Smoke test: 06_elo_judging ran at size tiny in the shared notebook run and recorded consistent results."""
from __future__ import annotations

from med42_utils.manifest import read_manifest


def test_06_manifest(notebook_run, tiny_params):
    _, run_dir = notebook_run
    m = read_manifest(run_dir / "judge")
    models = list(tiny_params.judge.models)
    n_pairs = len(models) * (len(models) - 1) // 2
    assert m["stage"] == "06_elo_judging" and m["models"] == models
    assert m["questions"] >= 8
    assert m["judgments"] == m["questions"] * n_pairs * 2  # every pair, both orders
    assert m["battles"] + sum(m["unparseable"].values()) == m["judgments"]
    assert m["judge"] == "logprob:tiny" and m["battles"] == m["judgments"]  # logprob judge always decides
    assert m["bootstrap_rounds"] >= 1000
    assert set(m["elo"]) == set(models)
    for row in m["elo"].values():
        for kind in ("battle", "question"):
            assert row[f"lower_{kind}"] - 1e-6 <= row["elo"] <= row[f"upper_{kind}"] + 1e-6
        assert row["battles"] == m["questions"] * (len(models) - 1) * 2
        assert 1 <= row["rank"] <= len(models)
    mean = sum(r["elo"] for r in m["elo"].values()) / len(models)
    assert abs(mean - tiny_params.judge.elo.initial) < 1e-6  # no anchor: centred on the initial rating
    pb = m["position_bias"]
    assert 0.0 <= pb["first_position_win_share"] <= 1.0
    assert pb["swapped_pairs"] == m["questions"] * n_pairs
    assert all(a["generated"] + a["cached"] == m["questions"] for a in m["answers"].values())
    assert (run_dir / "judge" / "judgments.jsonl").read_text().count("\n") == m["judgments"]
