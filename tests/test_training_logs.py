"""Training logs: the report_to switch, compact progress lines, curves read back from real TensorBoard event files,
spike detection, and the length measures 04 shows."""
from __future__ import annotations

import importlib.util
import types

import pandas as pd
import pytest

from med42_utils.params import load_params
from med42_utils.training_logs import curves, log_dir, progress_lines, read_scalars, report_to, spikes, trainer_kwargs


def test_report_to_switch():
    assert report_to(load_params("tiny")) == ["tensorboard"]
    assert report_to(load_params("70b")) == ["tensorboard"]
    assert report_to(load_params("tiny", {"training_logs.report_to": "none"})) == []
    kw = trainer_kwargs(load_params("tiny"), "demo", "dpo_round2")
    assert kw == {"report_to": ["tensorboard"], "run_name": "tiny/demo/dpo_round2"}
    with pytest.raises(Exception, match="training_logs.report_to"):
        load_params("tiny", {"training_logs.report_to": "mlflow"})


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed here")
def test_wandb_without_the_package_is_a_clear_error():
    with pytest.raises(ImportError, match="pip install wandb"):
        report_to(load_params("tiny", {"training_logs.report_to": "wandb"}))


def test_switching_the_sink_does_not_redo_a_stage():
    from med42_utils.manifest import STAGE_PARAMS

    assert all("training_logs" not in s for s in STAGE_PARAMS.values())


def _state(step, max_steps=8):
    return types.SimpleNamespace(global_step=step, max_steps=max_steps, is_world_process_zero=True)


def test_progress_lines_are_few_and_hold_no_raw_dicts(tmp_path, capsys):
    cb = progress_lines("dpo round1", "tensorboard", tmp_path / "tensorboard")
    cb.on_train_begin(None, _state(0), None)
    for step in range(1, 9):
        cb.on_log(None, _state(step), None, logs={"loss": 0.7 - 0.05 * step, "grad_norm": 2.0, "learning_rate": 1e-4,
                                                  "rewards/margins": 0.1 * step, "rewards/accuracies": 1.0})
    cb.on_train_end(None, _state(8), None)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + 4 + 1, lines  # start, one line per quarter, done
    assert "TensorBoard event files in" in lines[0] and lines[-1].startswith("[dpo round1] done: 8 steps")
    assert lines[1].startswith("[dpo round1] step    2/8  loss 0.625  margin 0.150  acc 1.000  grad norm 2.000")
    assert "means of 2 logged steps" in lines[1]
    assert not any("{" in line for line in lines)


def _write_events(folder, losses, start=1):
    """Scalars through transformers' own TensorBoardCallback (what the trainers use), into `folder`."""
    from transformers.integrations import TensorBoardCallback

    cb = TensorBoardCallback()
    cb.logging_dir = str(folder)
    args = types.SimpleNamespace(to_json_string=lambda: "{}", output_dir=str(folder))
    state = types.SimpleNamespace(is_world_process_zero=True, is_hyper_param_search=False, global_step=0)
    cb.on_train_begin(args, state, None)
    for i, loss in enumerate(losses, start):
        state.global_step = i
        cb.on_log(args, state, None, logs={"loss": loss, "grad_norm": 1.0 + i, "learning_rate": 1e-3})
    cb.on_log(args, state, None, logs={"train_loss": 9.9, "train_runtime": 1.0})  # the end-of-run summary
    cb.on_train_end(args, state, None)


def test_read_scalars_from_real_event_files_and_a_resumed_run(tmp_path):
    stage = tmp_path / "sft"
    with pytest.raises(FileNotFoundError, match="report_to"):
        read_scalars(stage)
    _write_events(log_dir(stage), [3.0, 2.5, 2.0, 1.8])
    df = read_scalars(stage)
    assert list(df.index) == [1, 2, 3, 4] and df["loss"].tolist() == pytest.approx([3.0, 2.5, 2.0, 1.8])
    assert {"grad_norm", "learning_rate"} <= set(df) and "train_loss" not in df
    import time

    time.sleep(1.1)  # a second event file, as a resumed run writes: steps 3-5 again, the later values win
    _write_events(log_dir(stage), [1.9, 1.7, 1.6], start=3)
    df = read_scalars(stage)
    assert df["loss"].tolist() == pytest.approx([3.0, 2.5, 1.9, 1.7, 1.6])
    got, source = curves(stage, [])
    assert source.startswith("TensorBoard") and len(got) == 5


def test_curves_fall_back_to_the_log_history(tmp_path):
    hist = [{"step": 2, "loss": 1.0, "epoch": 0.5}, {"step": 4, "loss": 0.5, "epoch": 1.0}, {"train_loss": 0.7}]
    df, source = curves(tmp_path / "dpo" / "round1", hist)
    assert df["loss"].to_dict() == {2: 1.0, 4: 0.5} and "log history" in source


def test_spikes_are_steps_far_above_the_median_gradient_norm():
    df = pd.DataFrame({"loss": [0.69, 0.6, 1.5, 0.4], "grad_norm": [3.0, 4.0, 145.0, 3.5]}, index=[1, 2, 3, 4])
    assert list(spikes(df).index) == [3]
    assert spikes(df.drop(columns="grad_norm")).empty


def test_pair_lengths_and_answer_lengths():
    from med42_utils.dpo.lengths import answer_lengths, lengths_table, pair_lengths
    from med42_utils.models import load_tokenizer
    from med42_utils.tiny_model import resolve_base_model

    p = load_params("tiny")
    tok = load_tokenizer(p, resolve_base_model(p))
    pairs = [
        {"chosen": [{"role": "assistant", "content": "a b c d"}], "rejected": [{"role": "assistant", "content": "a"}]},
        {"chosen": [{"role": "assistant", "content": "x y"}], "rejected": [{"role": "assistant", "content": "x y z w v"}]},
        {"chosen": [{"role": "assistant", "content": "same"}], "rejected": [{"role": "assistant", "content": "same"}]},
    ]
    L = pair_lengths(pairs, tok)
    assert (L["pairs"], L["chosen_longer"], L["rejected_longer"], L["same_length"]) == (3, 1, 1, 1)
    assert L["chosen_words_mean"] == pytest.approx(7 / 3) and L["rejected_words_mean"] == pytest.approx(7 / 3)
    ntok = lambda s: len(tok(s, add_special_tokens=False)["input_ids"])
    assert L["chosen_tokens_mean"] == pytest.approx((ntok("a b c d") + ntok("x y") + ntok("same")) / 3)
    table = lengths_table({"round1": {"lengths": L}, "round2": {}})
    assert list(table.index) == ["round1"] and table.loc["round1", "chosen longer"] == "1 of 3"
    with pytest.raises(ValueError, match="no pairs"):
        pair_lengths([], tok)
    ans = answer_lengths(pd.DataFrame({"model": ["sft", "dpo_round1"], "answer": ["one two", "a " * 40]}), tok, 32)
    assert ans["words"].tolist() == [2, 40] and ans["hit the cap"].tolist() == [False, True]
