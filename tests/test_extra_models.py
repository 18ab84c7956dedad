"""Models beside the run's stages (params extra_models): validation, resolution of each kind, 06 reading a
file of answers instead of generating, prefetch and the card's shared rows."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from med42_utils.extra_models import eval_models, judged_models
from med42_utils.models import model_stage_dirs, resolve_model
from med42_utils.params import load_params
from med42_utils.params.loader import ParamsError


def _tiny(extra, **more):
    return load_params("tiny", {"extra_models": extra, **more})


@pytest.mark.parametrize("entry, says", [
    ({"name": "x"}, "gives none of hub, path, answers, tiny_seed: give exactly one"),
    ({"name": "x", "hub": "a/b", "path": "c"}, "gives hub, path of"),
    ({"name": "sft", "hub": "a/b"}, "is a stage name"),
    ({"name": "dpo_round1", "hub": "a/b"}, "is a stage name"),
    ({"name": "a/b", "hub": "a/b"}, "must not contain '/'"),
    ({"name": "x", "hub": "a/b", "color": "red"}, "unknown key 'extra_models.0.color'"),
])
def test_bad_entry_names_key_and_fix(entry, says):
    with pytest.raises(ParamsError, match="extra_models") as e:
        _tiny([entry])
    assert says in str(e.value)


def test_duplicate_names_and_tiny_seed_off_tiny():
    with pytest.raises(ParamsError, match="extra_models names x more than once"):
        _tiny([{"name": "x", "hub": "a/b"}, {"name": "x", "path": "c"}])
    with pytest.raises(ParamsError, match="tiny_seed is for model.base 'tiny' only"):
        load_params("8b", {"extra_models": [{"name": "x", "tiny_seed": 3}]})


def test_defaults_per_size():
    assert [(m.name, m.hub) for m in load_params("8b").extra_models] == [("Med42-v2-8B", "m42-health/Llama3-Med42-8B")]
    assert [(m.name, m.hub) for m in load_params("70b").extra_models] == [("Med42-v2-70B", "m42-health/Llama3-Med42-70B")]
    assert [(m.name, m.tiny_seed) for m in load_params("tiny").extra_models] == [("tiny-release", 7)]
    assert load_params("workshop").extra_models == []


def test_resolution_of_each_kind(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    answers = tmp_path / "given.jsonl"
    answers.write_text("")
    p = _tiny([{"name": "hubbed", "hub": "m42-health/Llama3-Med42-8B"}, {"name": "local", "path": str(folder)},
               {"name": "saved", "answers": str(answers)}, {"name": "nofolder", "path": str(tmp_path / "none")}])
    assert resolve_model(p, "r", "hubbed") == "m42-health/Llama3-Med42-8B"
    assert resolve_model(p, "r", "local") == str(folder)
    with pytest.raises(ValueError, match="'saved' is a file of answers"):
        resolve_model(p, "r", "saved")
    with pytest.raises(FileNotFoundError, match="extra model 'nofolder'.*fix extra_models path"):
        resolve_model(p, "r", "nofolder")
    # 05 scores every model with weights and says why it skips the answers file; 06 rates them all
    names, notes = eval_models(p)
    assert names == [*p.eval.models, "hubbed", "local", "nofolder"] and list(notes) == ["saved"]
    assert judged_models(p) == [*p.judge.models, "hubbed", "local", "saved", "nofolder"]
    # extra models are not stages of the run: no stage folder (manifest) is recorded for them
    assert model_stage_dirs(p, "r", ["sft", "hubbed", "saved"]) == model_stage_dirs(p, "r", ["sft"])


def test_tiny_seed_builds_another_tiny_model():
    from safetensors.torch import load_file

    p = load_params("tiny")
    release, base = resolve_model(p, "r", "tiny-release"), resolve_model(p, "r", "base")
    assert release != base and resolve_model(p, "r", "tiny-release") == release  # built once, reused
    a, b = load_file(f"{release}/model.safetensors"), load_file(f"{base}/model.safetensors")
    assert a.keys() == b.keys() and any(not a[k].equal(b[k]) for k in a)  # same shape, other weights
    assert json.loads(open(f"{release}/tokenizer.json").read()) == json.loads(open(f"{base}/tokenizer.json").read())


def test_answers_file_is_read_not_generated(tmp_path, monkeypatch):
    from med42_utils.judging import stage

    questions = [{"id": "q1", "question": "What is X?"}, {"id": "q2", "question": "What is Y?"}]
    given = tmp_path / "release.jsonl"
    given.write_text("".join(json.dumps({"question_id": q, "answer": f"answer to {q}"}) + "\n" for q in ("q1", "q2")))
    p = _tiny([{"name": "release", "answers": str(given)}], **{"judge.models": ["base", "sft"]})
    generated = []

    def spy(params, name, path, qs, out_dir, batch_size=None, progress=None):
        # a stand-in for the stages' generation (tested in test_judging_*): here only who reaches it matters
        generated.append(name)
        return {"model": name, "path": str(tmp_path / f"{name}.jsonl"), "backend": "spy", "cached": 0, "generated": 0}

    monkeypatch.setattr(stage, "generate_answers", spy)
    monkeypatch.setattr(stage, "resolve_model", lambda params, run, s: f"/stage/{s}")  # no trained stages here
    judge_dir = tmp_path / "judge"
    answers, info = stage.answer_all(p, "r", questions, judge_dir)
    assert generated == ["base", "sft"]
    assert answers["release"] == {"q1": "answer to q1", "q2": "answer to q2"}
    row = info.set_index("model").loc["release"]
    assert row["backend"] == "answers file" and row["generated"] == 0 and row["cached"] == 2
    # the cache key follows the file's content: new answers forget the cached judgments
    assert stage.refresh_caches(p, "r", judge_dir) is None
    given.write_text(given.read_text().replace("answer to q2", "another answer"))
    assert "model release" in stage.refresh_caches(p, "r", judge_dir)
    # a question the file does not answer is an error naming the model, the file and the fix
    with pytest.raises(ValueError, match="'release'.*no answer for 1 of 3 questions.*question_id 'q3'"):
        stage.answer_all(p, "r", [*questions, {"id": "q3", "question": "Z?"}], judge_dir)


def test_prefetch_fetches_hub_extra_models():
    from med42_utils import prefetch

    need = [n for n in prefetch.needs(load_params("8b")) if n.repo_id == "m42-health/Llama3-Med42-8B"]
    assert len(need) == 1 and need[0].roles == ["extra model Med42-v2-8B"]
    assert prefetch.needs(load_params("tiny")) == []  # tiny's stand-in is built locally


def test_card_rows_shared_with_the_run():
    from med42_utils.judging.card import CARD_ELO, shared_with_card

    board = pd.DataFrame({"elo": [1010.0, 990.0], "lower_question": [980.0, 950.0], "upper_question": [1040.0, 1020.0]},
                         index=["sft", "Med42-v2-8B"])
    shared = shared_with_card(board)
    assert list(shared.index) == ["Med42-v2-8B"]
    assert shared.loc["Med42-v2-8B"].tolist() == [CARD_ELO["Med42-v2-8B"], 990.0, 950.0, 1020.0]
    assert shared_with_card(board.drop("Med42-v2-8B")).empty
