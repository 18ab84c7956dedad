"""Stage chaining: a stage is done only while the upstream manifests it read are the ones it was built from."""
from __future__ import annotations

import json
import uuid

from med42_utils.manifest import fingerprint, not_done_reason, read_manifest, stage_done, write_manifest
from med42_utils.params import load_params


def test_rewritten_upstream_manifest_makes_the_stage_not_done(tmp_path):
    p = load_params("tiny")
    write_manifest(tmp_path / "data", "01_data_curation", p, rows=10)
    write_manifest(tmp_path / "packing", "02_packing", p, inputs=[tmp_path / "data"])
    assert read_manifest(tmp_path / "packing")["inputs"] == {"../data": fingerprint(tmp_path / "data")}
    assert stage_done(tmp_path / "packing", p, inputs=[tmp_path / "data"])
    write_manifest(tmp_path / "data", "01_data_curation", p, rows=9)  # 01 re-ran (same params)
    assert not stage_done(tmp_path / "packing", p)
    assert "../data" in not_done_reason(tmp_path / "packing", p)
    write_manifest(tmp_path / "packing", "02_packing", p, inputs=[tmp_path / "data"])  # 02 re-ran
    assert stage_done(tmp_path / "packing", p)
    (tmp_path / "data" / "manifest.json").unlink()  # upstream gone: not done either
    assert not stage_done(tmp_path / "packing", p)


def test_a_different_set_of_inputs_is_not_done(tmp_path):
    p = load_params("tiny")
    for s in ("sft", "round1"):
        write_manifest(tmp_path / s, s, p)
    write_manifest(tmp_path / "eval", "05_benchmarks", p, inputs=[tmp_path / "sft"])
    assert stage_done(tmp_path / "eval", p, inputs=[tmp_path / "sft"])
    assert not stage_done(tmp_path / "eval", p, inputs=[tmp_path / "sft", tmp_path / "round1"])
    assert "round1" in not_done_reason(tmp_path / "eval", p, inputs=[tmp_path / "sft", tmp_path / "round1"])


def test_changed_input_files_make_the_stage_not_done(tmp_path):
    p = load_params("tiny")
    src = tmp_path / "local"
    src.mkdir()
    (src / "a.jsonl").write_text('{"x": 1}\n')
    write_manifest(tmp_path / "data", "01_data_curation", p, input_files=[src])
    assert stage_done(tmp_path / "data", p)
    (src / "b.jsonl").write_text('{"x": 2}\n')  # a file added to the source folder
    assert not stage_done(tmp_path / "data", p)
    assert str(src.resolve()) in not_done_reason(tmp_path / "data", p)


def test_forcing_01_with_a_changed_parameter_repacks_02(capsys):
    """The issue's case: 01 forced with another dedup threshold; 02, run with its unchanged params, re-packs."""
    from med42_utils.data.stage import run_curation
    from med42_utils.notebook import start
    from med42_utils.packing.stage import run_packing

    name = f"pytest-chain-{uuid.uuid4().hex[:6]}"
    run = start("tiny", name)
    data, packing = run.dir / "data", run.dir / "packing"
    rows_before = run_curation(run.params, data)["rows"]
    assert run_packing(run)["samples"] <= rows_before
    first = (packing / "manifest.json").read_bytes()
    capsys.readouterr()
    run_packing(run)  # nothing changed: skipped, manifest untouched
    assert "already done" in capsys.readouterr().out and (packing / "manifest.json").read_bytes() == first

    changed = start("tiny", name, {"data.dedup.minhash_threshold": 0.2})  # what 01 with an override does
    rows_after = run_curation(changed.params, data, force=True)["rows"]
    assert rows_after < rows_before  # a looser near-duplicate threshold drops more rows
    assert not stage_done(packing, run.params)
    stats = run_packing(run)  # 02's own params did not change
    m = read_manifest(packing)
    assert m["inputs"] == {"../data": fingerprint(data)} and m["samples"] == stats["samples"]
    assert stats["samples"] + sum(sum(c.values()) for c in stats["dropped"].values()) == rows_after


def _fake_round_trainer(calls):
    """Stands in for dpo.train.train_round: saves a model stub and the round's manifest as the real one does."""
    from med42_utils.dpo.round_models import init_dir, round_dir

    def train_round(params, run_name, name, force=False):
        calls.append(name)
        out = round_dir(params, run_name, name)
        (out / "model").mkdir(parents=True, exist_ok=True)
        (out / "model" / "config.json").write_text(json.dumps({"trained": len(calls)}))
        write_manifest(out, f"04_dpo/{name}", params, inputs=[init_dir(params, run_name, name)], round=name)
        return {"round": name}

    return train_round


def test_retraining_sft_reruns_every_dpo_round_in_order(monkeypatch):
    import med42_utils.dpo.train as dpo_train
    from med42_utils.dpo.rounds import plan_rounds, run_rounds
    from med42_utils.stages import stage_model_dir

    params, run = load_params("tiny"), f"pytest-chain-dpo-{uuid.uuid4().hex[:6]}"
    calls: list[str] = []
    monkeypatch.setattr(dpo_train, "train_round", _fake_round_trainer(calls))
    sft = stage_model_dir(params, run, "sft")
    sft.mkdir(parents=True)
    (sft / "config.json").write_text("{}")
    write_manifest(sft.parent, "03_sft", params, global_step=30)

    run_rounds(params, run)
    assert calls == ["round1", "round2", "round3"]
    assert read_manifest(sft.parent.parent / "dpo")["inputs"].keys() == {"round1", "round2", "round3"}
    run_rounds(params, run)  # nothing changed: every round skipped
    assert calls == ["round1", "round2", "round3"]

    write_manifest(sft.parent, "03_sft", params, global_step=30)  # SFT retrained
    assert [p.action for p in plan_rounds(params, run)] == ["train", "train", "train"]
    run_rounds(params, run)
    assert calls[3:] == ["round1", "round2", "round3"]  # each round depends on the previous one

    run_rounds(params, run, round=2, force=True)  # retrain round 2 alone: round 3 is out of date
    assert calls[6:] == ["round2"] and not stage_done(sft.parent.parent / "dpo" / "round3", params)
    run_rounds(params, run)
    assert calls[7:] == ["round3"]


def test_evaluation_stages_read_the_model_stages():
    """05 and 06 record the manifests of the models they use (base has none)."""
    from med42_utils.models import model_stage_dirs

    p = load_params("tiny")
    dirs = model_stage_dirs(p, "x", ["base", "sft", "dpo_round3"])
    assert [d.relative_to(d.parents[1]).as_posix() for d in dirs] == ["x/sft", "dpo/round3"]
    assert all(d.parents[2].name == "tiny" or d.parents[1].name == "tiny" for d in dirs)


def test_local_files_01_and_05_read_are_recorded(tmp_path):
    """01 reads the SFT sources and the benchmark files it decontaminates against; a new file re-runs it."""
    from med42_utils.data.loading import SAMPLES_DIR
    from med42_utils.data.stage import input_files

    assert input_files(load_params("tiny")) == [SAMPLES_DIR]  # bundled samples
    p = load_params("tiny", {"data.source": "local", "data.local_dir": str(tmp_path / "sft"),
                             "eval.data_source": "local", "eval.data_dir": str(tmp_path / "bench")})
    assert input_files(p) == [tmp_path / "sft", tmp_path / "bench"]
    (tmp_path / "bench").mkdir()
    write_manifest(tmp_path / "data", "01_data_curation", p, input_files=input_files(p))
    assert stage_done(tmp_path / "data", p)
    (tmp_path / "bench" / "pubmedqa.jsonl").write_text("{}\n")
    assert not stage_done(tmp_path / "data", p)
