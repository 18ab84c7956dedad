"""Smoke test: 06_elo_judging ran at size tiny in the shared notebook run and shows a real leaderboard."""
from __future__ import annotations

import pytest

from med42_utils.manifest import fingerprint, read_manifest

pytestmark = pytest.mark.slow


def test_06_manifest(notebook_run, tiny_params):
    _, run_dir = notebook_run
    m = read_manifest(run_dir / "judge")
    from med42_utils.extra_models import judged_models

    j = tiny_params.judge
    models = judged_models(tiny_params)  # the stages, then the extra model standing in for the release
    assert models[len(j.models):] == ["tiny-release"]
    n_pairs = len(models) * (len(models) - 1) // 2
    assert m["stage"] == "06_elo_judging" and m["models"] == models
    assert m["questions"] >= 8
    assert m["judgments"] == m["questions"] * n_pairs * 2  # every pair, both orders
    # the tiny reference judge decides every judgment (a tie is a verdict, not a failure)
    assert m["judge"] == f"reference:{j.reference_metric}@{j.tie_margin:g}+ties"
    assert m["unparseable"] == {} and m["battles"] == m["judgments"]
    assert m["bootstrap_rounds"] >= 1000
    assert set(m["elo"]) == set(models)

    # a real leaderboard: ratings differ, intervals have width, the heatmap has structure
    elos = [round(r["elo"], 1) for r in m["elo"].values()]
    assert len(set(elos)) >= 2, f"every model rated the same: {elos}"
    for name, row in m["elo"].items():
        for kind in ("battle", "question"):
            lo, hi = row[f"lower_{kind}"], row[f"upper_{kind}"]
            assert lo - 1e-6 <= row["elo"] <= hi + 1e-6
            assert hi - lo > 1.0, f"{name}: zero-width {kind} interval [{lo}, {hi}]"
        assert row["battles"] == m["questions"] * (len(models) - 1) * 2
        beaten_by = sum(o["lower_question"] > row["upper_question"] for o in m["elo"].values())
        assert row["rank"] == 1 + beaten_by
    rates = [v for row in m["empirical_win_rate"].values() for v in row.values()]
    assert len(rates) == len(models) * (len(models) - 1)
    assert max(rates) - min(rates) > 0.1, f"uniform heatmap: {rates}"
    for a, row in m["empirical_win_rate"].items():
        for b, v in row.items():
            assert v + m["empirical_win_rate"][b][a] == pytest.approx(1.0)  # ties half: the pair's shares sum to 1
    mean = sum(r["elo"] for r in m["elo"].values()) / len(models)
    assert mean == pytest.approx(j.elo.initial, abs=1e-6)  # no anchor: centred on the initial rating

    # stage chaining: the judge manifest records the model stages whose answers it judged
    assert m["inputs"] == {f"../{s.replace('dpo_', 'dpo/')}": fingerprint(run_dir / s.replace("dpo_", "dpo/"))
                           for s in j.models if s != "base"}

    # position bias: the reference judge reads each answer on its own, so no first-position preference
    pb = m["position_bias"]
    assert pb["swapped_pairs"] == m["questions"] * n_pairs
    assert pb["first_position_win_share"] == pytest.approx(0.5) and pb["swap_consistency"] == 1.0
    assert pb["parsed_judgments"] == m["judgments"] and pb["tie_share"] == pytest.approx(pb["ties"] / m["judgments"])
    wr = m["win_rates"]
    assert sum(r["wins"] + 0.5 * r["ties"] for r in wr.values()) == pytest.approx(m["battles"])
    best = max(m["elo"], key=lambda k: m["elo"][k]["elo"])
    assert wr[best]["win_rate"] == max(r["win_rate"] for r in wr.values())  # ratings agree with win rates

    # the simulation panel: without a question effect both intervals hold known ratings about as often as they
    # claim; with one, the battle bootstrap's are narrower than the question bootstrap's and miss more often
    sim = m["simulation"]
    assert sim["n_questions"] == 100 and sim["reps"] >= 50 and sim["question_sd"] > 0
    assert all(0.8 <= c <= 1.0 for c in sim["coverage"].values()) and set(sim["coverage"]) == {"battle", "question"}
    eff, width = sim["coverage_with_question_effect"], sim["width_with_question_effect"]
    assert eff["battle"] < eff["question"] and eff["battle"] < 0.92 and width["battle"] < width["question"]

    assert all(a["generated"] + a["cached"] == m["questions"] for a in m["answers"].values())
    assert set(m["answers"]) == set(models)
    assert (run_dir / "judge" / "judgments.jsonl").read_text().count("\n") == m["judgments"]


def test_06_style_and_reliability(notebook_run, tiny_params):
    _, run_dir = notebook_run
    m = read_manifest(run_dir / "judge")
    from med42_utils.extra_models import judged_models

    models = set(judged_models(tiny_params))
    assert set(m["answer_length"]) == models and all(v > 0 for v in m["answer_length"].values())
    sc = m["style_control"]
    assert set(sc["elo"]) == models
    for name, elo in sc["elo"].items():
        assert sc["lower"][name] - 1e-6 <= elo <= sc["upper"][name] + 1e-6
    assert sum(sc["elo"].values()) / len(models) == pytest.approx(tiny_params.judge.elo.initial, abs=1e-6)
    # the reference judge scores each answer alone: the same outcome in both orders, for every pair
    assert m["swap_agreement"] and all(v == 1.0 for v in m["swap_agreement"].values())
    assert set(m["separability"]) == {"battle", "question"}
    assert all(0.0 <= v <= 1.0 for v in m["separability"].values())
    second = m["second_judge"]
    assert second["name"].startswith("reference:") and second["name"] != m["judge"]
    assert second["matched"] == m["judgments"] and -1.0 <= second["kappa"] <= 1.0
