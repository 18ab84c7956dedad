"""Smoke test: 04_dpo ran at size tiny inside the all-notebook papermill run; check what it recorded."""
from __future__ import annotations

import json

import pytest

from med42_utils.manifest import read_manifest


@pytest.mark.slow
def test_nb_04_trained_three_chained_rounds(notebook_run):
    run_name, run_dir = notebook_run
    m = read_manifest(run_dir / "dpo")
    assert m["stage"] == "04_dpo" and m["size"] == "tiny"
    rounds = m["rounds"]
    assert list(rounds) == m["round_names"] == ["round1", "round2", "round3"]
    # chaining: round 1 from SFT, each later round from (and referencing) the previous round's model
    assert rounds["round1"]["init_from"] == str(run_dir / "sft" / "model")
    for prev, cur in (("round1", "round2"), ("round2", "round3")):
        assert rounds[cur]["init_from"] == rounds[prev]["model_dir"] == rounds[cur]["reference"]
    for name, r in rounds.items():
        assert (run_dir / "dpo" / name / "model" / "config.json").is_file()
        assert r["train_pairs"] > 0 and r["global_steps"] > 0
        logs = [h for h in json.loads((run_dir / "dpo" / name / "log_history.json").read_text()) if "loss" in h]
        assert logs and all("rewards/margins" in h and "rewards/accuracies" in h for h in logs)
        assert sum(r["rows"]["kept"].values()) == r["train_pairs"]
        # tiny: enough steps past warm-up that every round visibly separates chosen from rejected
        assert r["global_steps"] >= 15, (name, r["global_steps"])
        late = [h["rewards/margins"] for h in logs[-len(logs) // 3:]]
        assert sum(late) / len(late) > 0.2, (name, late)
    # a sample answer from SFT and from every round, for the same question
    assert [a["model"] for a in m["sample_answers"]] == ["sft", "dpo_round1", "dpo_round2", "dpo_round3"]
    assert m["onpolicy_demo_pairs"] >= 1


@pytest.mark.slow
def test_nb_04_compact_output_curves_round_means_and_lengths(notebook_run):
    import nbformat

    from med42_utils.training_logs import read_scalars

    _, run_dir = notebook_run
    nb = nbformat.read(run_dir / "04_dpo.ipynb", as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                   if o.output_type == "stream")
    assert "{'loss'" not in text and "'rewards/margins'" not in text, text[:2000]
    assert all(text.count(f"[dpo {n}] step") == 4 for n in ("round1", "round2", "round3"))
    m = read_manifest(run_dir / "dpo")
    for name, r in m["rounds"].items():
        logs = [h for h in json.loads((run_dir / "dpo" / name / "log_history.json").read_text()) if "loss" in h]
        assert read_scalars(run_dir / "dpo" / name)["loss"].tolist() == pytest.approx([h["loss"] for h in logs], rel=1e-5)
        L = read_manifest(run_dir / "dpo" / name)["lengths"]
        assert L["pairs"] == r["train_pairs"] and L["chosen_longer"] + L["same_length"] + L["rejected_longer"] == L["pairs"]
        # the bundled pairs: the chosen answer is the longer one in every pair a round trains on
        assert L["chosen_longer"] == L["pairs"] and L["chosen_tokens_mean"] > 2 * L["rejected_tokens_mean"]
    cells = {c.get("id"): c for c in nb.cells}
    table = cells["cell-13"].outputs[0]["data"]["text/html"]
    assert "loss (round mean)" in table and "margin (last-epoch mean)" in table
    assert "chosen longer" in cells["pair-lengths"].outputs[0]["data"]["text/plain"]
    answers = next(o for o in cells["cell-15"].outputs if o.output_type == "execute_result")["data"]["text/html"]
    assert "tokens" in answers and "hit the cap" in answers
