"""Table 3 (paper section 2.2) -> TRL DPOConfig, exactly, for 8b and 70b."""
from __future__ import annotations

import json
import shutil
import types
import uuid
from pathlib import Path

import pytest
import torch

from med42_utils.dpo.train import CONFIG_FIELDS, build_dpo_config
from med42_utils.params import load_params

# Table 3: DPO-beta, max LR, weight decay, batch size, max length, epochs; RMSprop; linear warmup then cosine.
TABLE3 = {"8b": (0.1, 1e-6, 0.0, 256, 4096, 1), "70b": (0.01, 1e-6, 0.0, 128, 4096, 1)}


@pytest.mark.parametrize("size", ["8b", "70b"])
def test_table3_maps_to_dpo_config(size, tmp_path):
    beta, lr, wd, batch, max_len, epochs = TABLE3[size]
    p = load_params(size)
    import torch

    # bf16 needs a GPU in TrainingArguments; on a CPU box only the device flag changes, nothing of Table 3
    cfg = build_dpo_config(p, tmp_path, **({} if torch.cuda.is_available() else {"use_cpu": True}))
    assert cfg.beta == beta
    assert cfg.learning_rate == lr
    assert cfg.weight_decay == wd
    assert str(getattr(cfg.optim, "value", cfg.optim)) == "rmsprop"
    assert str(getattr(cfg.lr_scheduler_type, "value", cfg.lr_scheduler_type)) == "cosine"
    assert 0 < cfg.warmup_steps < 1 and cfg.warmup_steps == p.dpo.warmup_ratio  # a ratio: linear warmup first
    assert cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps * p.dpo.hardware.world_size == batch
    assert cfg.max_length == max_len
    assert cfg.num_train_epochs == epochs
    assert cfg.loss_type == ["sigmoid"]
    assert cfg.bf16 is True and cfg.precompute_ref_log_probs == p.dpo.precompute_ref_log_probs
    assert cfg.trust_remote_code is False


def test_every_dpo_param_reaches_the_config(tmp_path):
    """Change each mapped value in params and see it arrive in DPOConfig (no silent defaults)."""
    over = {
        "dpo.beta": 0.37, "dpo.learning_rate": 3.3e-5, "dpo.warmup_ratio": 0.25, "dpo.weight_decay": 0.05,
        "dpo.micro_batch_size": 3, "dpo.gradient_accumulation_steps": 5, "dpo.batch_size": 15,
        "dpo.max_length": 200, "dpo.max_prompt_length": 100, "dpo.num_train_epochs": 2, "dpo.seed": 7,
        "dpo.precompute_ref_log_probs": True, "dpo.gradient_checkpointing": True,
    }
    p = load_params("tiny", over)
    cfg = build_dpo_config(p, tmp_path)
    got = {k: getattr(cfg, k) for k in CONFIG_FIELDS}
    assert got["beta"] == 0.37 and got["learning_rate"] == 3.3e-5 and got["warmup_steps"] == 0.25
    assert got["weight_decay"] == 0.05 and got["per_device_train_batch_size"] == 3
    assert got["gradient_accumulation_steps"] == 5 and got["max_length"] == 200 and got["num_train_epochs"] == 2
    assert got["seed"] == 7 and got["precompute_ref_log_probs"] is True and got["activation_checkpointing"] is True


def test_dpo_config_writes_to_the_given_folder_without_progress_bars_and_passes_trust_remote_code(tmp_path):
    p = load_params("tiny", {"model.trust_remote_code": True})
    cfg = build_dpo_config(p, tmp_path / "trainer")
    assert cfg.output_dir == str(tmp_path / "trainer") and cfg.disable_tqdm is True  # compact progress lines instead
    assert cfg.trust_remote_code is True
    assert build_dpo_config(p, tmp_path, beta=0.5).beta == 0.5  # extra arguments win


# --- a round's bookkeeping, with DPOTrainer stood in for (no model runs: fast) ------------------------------
# What train_round decides around the trainer: its data, the reference, resume from the last checkpoint of the
# same key, stop early without a manifest, the manifest's fields. The real training is in tests/test_dpo_rounds.py
# and tests/test_resume.py (slow).

class _FakeDPOTrainer:
    """DPOTrainer's surface train_round uses; `train` runs to `total` steps or to the stop the stage's callbacks
    ask for, and saves a checkpoint there when it stops early."""

    built: list = []
    total = 5
    world_zero = True
    fsdp = False

    def __init__(self, model, ref_model, args, train_dataset, processing_class, peft_config, callbacks):
        from accelerate.utils import DistributedType
        from transformers import TrainerState

        self.model, self.ref_model, self.args, self.train_dataset = model, ref_model, args, train_dataset
        self.processing_class, self.peft_config, self.callbacks = processing_class, peft_config, callbacks
        self.is_fsdp_enabled = self.fsdp
        self.waits = 0
        self.accelerator = types.SimpleNamespace(is_main_process=True, wait_for_everyone=self._wait, num_processes=1,
                                                 distributed_type=DistributedType.NO)
        self.state = TrainerState()
        self.ckpt_dir_existed = Path(args.output_dir).exists()
        _FakeDPOTrainer.built.append(self)

    def _wait(self):
        self.waits += 1

    def is_world_process_zero(self):
        return self.world_zero

    def train(self, resume_from_checkpoint=None):
        self.resumed = resume_from_checkpoint
        start = int(resume_from_checkpoint.rsplit("-", 1)[1]) if resume_from_checkpoint else 0
        stop = next((c[2] for c in self.callbacks if c[0] == "stage callbacks" and c[2]), None)
        self.state.max_steps = self.total
        end = self.state.global_step = min(stop or self.total, self.total)
        self.state.log_history = [
            *({"step": s, "loss": 1.0 - 0.1 * s, "rewards/chosen": 0.1 * s, "rewards/rejected": -0.1 * s,
               "rewards/margins": 0.2 * s, "rewards/accuracies": 0.5, "other": 3}
              for s in range(start + 1, end + 1)),
            {"train_runtime": 2.0, "step": end}]
        if end < self.total:
            c = Path(self.args.output_dir) / f"checkpoint-{end}"
            c.mkdir(parents=True)
            (c / "trainer_state.json").write_text(json.dumps({"global_step": end}))
        return types.SimpleNamespace(training_loss=0.75)


def _pairs(n):
    from datasets import Dataset

    return Dataset.from_list([{"prompt": [{"role": "user", "content": f"q{i}"}], "chosen": "a", "rejected": "b"}
                              for i in range(n)])


@pytest.fixture
def dpo_standins(monkeypatch):
    """train_round with model loading, data loading, saving and logging recorded instead of run."""
    import trl

    from med42_utils.dpo import train as dpo_train
    from med42_utils.dpo.preference_data import DropReport

    calls = {"load": [], "reference": [], "save_final": [], "quiet": [], "tokenizer": [], "preferences": [],
             "drop": [], "packages": []}
    _FakeDPOTrainer.built = []

    def load_for_training(params, path, stage, dtype=None):
        calls["load"].append((params.size, path, stage))
        model = torch.nn.Linear(3, 2)  # 8 parameters, 6 trainable
        model.bias.requires_grad_(False)
        return model

    def load_preferences(datasets, source, data_dir, max_samples, seed):
        calls["preferences"].append((datasets, source, data_dir, max_samples, seed))
        report = DropReport()
        report.kept.update({d: 3 for d in datasets})
        return _pairs(3 * len(datasets)), report

    def drop_long_prompts(ds, tok, max_prompt_length, report):
        calls["drop"].append((tok, max_prompt_length))
        report.drop("ultrafeedback:train_prefs", "prompt_too_long", 1)
        return ds.select(range(len(ds) - 1))

    monkeypatch.setattr(trl, "DPOTrainer", _FakeDPOTrainer)
    monkeypatch.setattr(dpo_train, "load_for_training", load_for_training)
    monkeypatch.setattr(dpo_train, "frozen_reference", lambda params, path, args: calls["reference"].append(
        (params.size, path, args.output_dir)) or torch.nn.Identity())
    monkeypatch.setattr(dpo_train, "load_tokenizer",
                        lambda params, path: calls["tokenizer"].append((params.size, path)) or "tok")
    monkeypatch.setattr(dpo_train, "load_preferences", load_preferences)
    monkeypatch.setattr(dpo_train, "drop_long_prompts", drop_long_prompts)
    monkeypatch.setattr(dpo_train, "pair_lengths", lambda ds, tok: {"pairs": len(ds), "tokenizer": tok})
    monkeypatch.setattr(dpo_train, "require_packages",
                        lambda params, stage: calls["packages"].append((params.size, stage)))
    monkeypatch.setattr(dpo_train, "save_final", lambda trainer, params, method, model_dir, tok:
                        calls["save_final"].append((trainer, params.size, method, model_dir, tok)))
    monkeypatch.setattr(dpo_train, "stage_callbacks", lambda progress, stop: [("stage callbacks", progress, stop)])
    monkeypatch.setattr(dpo_train, "quiet_trainer", lambda trainer, params, out, label, fresh:
                        calls["quiet"].append((trainer is _FakeDPOTrainer.built[-1], params.size, out, label, fresh)))
    return calls


@pytest.fixture
def dpo_run():
    """A run with a stand-in SFT stage folder (its manifest only: the trainer is stood in for)."""
    from med42_utils.manifest import write_manifest
    from med42_utils.paths import run_dir
    from med42_utils.stages import stage_model_dir

    names = []

    def make(params):
        names.append(f"pytest-dpo-fake-{uuid.uuid4().hex[:8]}")
        d = stage_model_dir(params, names[-1], "sft")
        d.mkdir(parents=True)
        (d / "config.json").write_text("{}")
        write_manifest(d.parent, "03_sft", params, standin=True)
        return names[-1]

    yield make
    for n in names:
        shutil.rmtree(run_dir("tiny", n), ignore_errors=True)


def test_a_dpo_round_stops_early_without_a_manifest_then_resumes_and_records_everything(dpo_run, dpo_standins):
    from med42_utils.dpo.round_models import round_dir
    from med42_utils.dpo.train import train_round
    from med42_utils import checkpoints
    from med42_utils.manifest import fingerprint, read_manifest
    from med42_utils.stages import stage_model_dir

    p = load_params("tiny", {"dpo.max_samples_per_source": 5, "dpo.seed": 9, "dpo.max_prompt_length": 77,
                             "dpo.data_source": "local", "dpo.data_dir": "/data/preferences"})
    name = dpo_run(p)
    out, sft = round_dir(p, name, "round1"), str(stage_model_dir(p, name, "sft"))
    assert train_round(p, name, "round1", stop_after_step=2) == {"stopped_at": 2, "resumed_from": None}
    t = _FakeDPOTrainer.built[-1]
    datasets = ["ultrafeedback:train_prefs", "snorkel:train_iteration_1"]
    assert dpo_standins["preferences"] == [(datasets, "local", "/data/preferences", 5, 9)]
    assert dpo_standins["drop"] == [("tok", 77)] and len(t.train_dataset) == 5
    assert dpo_standins["load"] == [("tiny", sft, "dpo")]
    assert dpo_standins["reference"] == [("tiny", sft, str(out / "trainer"))]  # with the round's DPOConfig
    assert dpo_standins["tokenizer"] == [("tiny", sft)] and t.processing_class == "tok" and t.peft_config is None
    assert dpo_standins["packages"] == [("tiny", "dpo")]
    assert t.args.output_dir == str(out / "trainer") and t.args.run_name == f"tiny/{name}/dpo_round1"
    assert t.callbacks == [("stage callbacks", out / "progress.jsonl", 2)] and t.resumed is None
    assert dpo_standins["quiet"] == [(True, "tiny", out, "dpo round1", True)] and dpo_standins["save_final"] == []
    assert not (out / "manifest.json").exists() and (out / "trainer" / "checkpoint-2").is_dir()
    # the key beside the checkpoints: the DPO params, the starting model's manifest, the round and its datasets
    assert json.loads((out / "trainer" / "resume_key.json").read_text()) == checkpoints.resume_key(
        p, "dpo", {"../../sft": fingerprint(stage_model_dir(p, name, "sft").parent)}, round="round1",
        datasets=datasets)

    fields = train_round(p, name, "round1")  # started again: continues from checkpoint-2
    t = _FakeDPOTrainer.built[-1]
    ckpt = str(out / "trainer" / "checkpoint-2")
    assert t.resumed == ckpt and dpo_standins["quiet"][-1] == (True, "tiny", out, "dpo round1", False)
    assert dpo_standins["save_final"] == [(t, "tiny", "full", out / "model", "tok")]
    assert fields == {
        "round": "round1", "datasets": datasets, "onpolicy": False, "init_from": sft, "reference": sft,
        "init_stage": "sft", "method": "full", "reference_kind": "frozen copy", "trainable_parameters": 6,
        "model_dir": str(out / "model"), "train_pairs": 5, "lengths": {"pairs": 5, "tokenizer": "tok"},
        "rows": {"kept": {datasets[0]: 3, datasets[1]: 3}, "dropped": {datasets[0]: {"prompt_too_long": 1}}},
        "world_size": 1, "distributed_type": "NO", "fsdp": False, "reference_wrapped": "Identity",
        "global_steps": 5, "resumed_from": ckpt, "train_loss": 0.75,
        "final": {"loss": 0.5, "rewards/chosen": 0.5, "rewards/rejected": -0.5, "rewards/margins": 1.0,
                  "rewards/accuracies": 0.5},  # the last logged step's
        "dpo_config": {k: getattr(t.args, k) for k in CONFIG_FIELDS}}
    assert fields["dpo_config"]["beta"] == p.dpo.beta and fields["dpo_config"]["max_length"] == p.dpo.max_length
    m = read_manifest(out)
    assert m["stage"] == "04_dpo/round1" and m["round"] == "round1" and m["global_steps"] == 5
    assert m["inputs"] == {"../../sft": fingerprint(stage_model_dir(p, name, "sft").parent)}  # a new SFT: not done
    assert json.loads((out / "log_history.json").read_text()) == t.state.log_history
    assert not (out / "trainer").exists(), "a finished round deletes its checkpoints"
    assert t.waits >= 2  # every rank waits for rank 0's files before going on


def test_force_discards_a_rounds_checkpoints_and_a_round_without_losses_records_none(dpo_run, dpo_standins,
                                                                                     monkeypatch):
    from med42_utils.dpo.round_models import round_dir
    from med42_utils.dpo.train import train_round

    p = load_params("tiny")
    name = dpo_run(p)
    ckpts = round_dir(p, name, "round1") / "trainer"
    train_round(p, name, "round1", stop_after_step=1)
    fields = train_round(p, name, "round1", force=True)
    assert _FakeDPOTrainer.built[-1].resumed is None and fields["resumed_from"] is None
    assert not (ckpts / "checkpoint-1").exists()
    monkeypatch.setattr(_FakeDPOTrainer, "train", lambda self, resume_from_checkpoint=None: (
        setattr(self.state, "global_step", self.total), setattr(self.state, "max_steps", self.total),
        setattr(self.state, "log_history", [{"train_runtime": 1.0}]), types.SimpleNamespace(training_loss=0.5))[-1])
    fields = train_round(p, name, "round1")
    assert fields["final"] == dict.fromkeys(("loss", "rewards/chosen", "rewards/rejected", "rewards/margins",
                                             "rewards/accuracies"))


@pytest.mark.parametrize("over,kind,reference", [
    ({"dpo.method": "lora"}, "adapters off", False),
    ({"dpo.precompute_ref_log_probs": True}, "precomputed log-probs", False),
    ({}, "frozen copy", True)])
def test_the_reference_is_the_adapters_off_the_precomputed_log_probs_or_a_frozen_copy(dpo_run, dpo_standins, over,
                                                                                      kind, reference):
    from med42_utils.dpo.train import train_round

    p = load_params("tiny", {**over, "dpo.lora.r": 4})
    fields = train_round(p, dpo_run(p), "round1")
    t = _FakeDPOTrainer.built[-1]
    assert fields["reference_kind"] == kind and fields["method"] == p.dpo.method
    assert (t.ref_model is not None) == reference == bool(dpo_standins["reference"])
    assert fields["reference_wrapped"] == ("Identity" if reference else None)
    assert (t.peft_config.r == 4) if p.dpo.method == "lora" else t.peft_config is None
    assert dpo_standins["packages"] == [("tiny", "dpo")] and t.create_model_card() is None


def test_precomputed_reference_log_probs_are_refused_on_several_processes(monkeypatch, dpo_standins):
    from med42_utils.dpo import train as dpo_train

    p = load_params("tiny", {"dpo.precompute_ref_log_probs": True})
    monkeypatch.setattr(dpo_train, "build_dpo_config",
                        lambda params, out, **kw: types.SimpleNamespace(world_size=2, output_dir=str(out)))
    with pytest.raises(ValueError, match=r"dpo.precompute_ref_log_probs needs one process .*this launch has 2\. "
                                         r"Set dpo.precompute_ref_log_probs: false \(the reference is then sharded "
                                         r"per layer like the policy\)$"):
        dpo_train.build_trainer(p, "init", _pairs(2), "out", tokenizer="tok")
    p = load_params("tiny")  # the frozen copy is fine on several processes
    assert dpo_train.build_trainer(p, "init", _pairs(2), "out", tokenizer="tok").ref_model is not None
    assert dpo_standins["tokenizer"] == []  # the tokenizer given is used
    dpo_train.build_trainer(p, "init", _pairs(2), "out", callbacks=("cb",))
    assert dpo_standins["tokenizer"] == [("tiny", "init")] and _FakeDPOTrainer.built[-1].callbacks == ["cb"]


def test_an_on_policy_round_trains_on_the_pairs_its_job_wrote_and_an_empty_round_is_refused(monkeypatch,
                                                                                            dpo_standins):
    from med42_utils.dpo import train as dpo_train
    from med42_utils.dpo.preference_data import DropReport

    p = load_params("tiny", {"dpo.onpolicy.enabled": True})
    read = []
    monkeypatch.setattr(dpo_train, "read_pairs", lambda params, run, name: read.append((run, name))
                        or (_pairs(4), DropReport()))
    ds, report = dpo_train.prepare_round_data(p, "demo", "round2", "init", "tok")
    assert read == [("demo", "round2")] and dpo_standins["preferences"] == [] and len(ds) == 3
    monkeypatch.setattr(dpo_train, "drop_long_prompts", lambda ds, tok, n, report: (
        report.drop("ultrafeedback:train_prefs", "prompt_too_long", 1), ds.select([]))[1])
    with pytest.raises(ValueError, match=r"^DPO round1: every pair was dropped \(\{'ultrafeedback:train_prefs': "
                                         r"\{'prompt_too_long': 1\}\}\); check the data and dpo.max_prompt_length$"):
        dpo_train.prepare_round_data(p, "demo", "round1", "init", "tok")


def test_dpo_main_passes_round_force_and_stop_and_the_overrides(monkeypatch):
    from med42_utils.dpo import train as dpo_train

    got = []
    monkeypatch.setattr(dpo_train, "train_round", lambda params, run, name, force, stop_after_step:
                        got.append((params, run, name, force, stop_after_step)))
    assert dpo_train.main(["--size", "tiny", "--run-name", "demo", "--round", "round2", "--set", "dpo.beta=0.3",
                           "--force", "--stop-after-step", "5"]) == 0
    params, *rest = got[-1]
    assert params.size == "tiny" and params.dpo.beta == 0.3 and rest == ["demo", "round2", True, 5]
    assert dpo_train.main(["--size", "tiny", "--run-name", "demo", "--round", "round1"]) == 0
    assert got[-1][1:] == ("demo", "round1", False, None) and got[-1][0].dpo.beta == load_params("tiny").dpo.beta
    with pytest.raises(SystemExit):
        dpo_train.main(["--size", "tiny", "--run-name", "demo"])  # --round is required


def test_dpo_main_help_names_what_it_does_and_its_options(capsys):
    from med42_utils.dpo import train as dpo_train

    with pytest.raises(SystemExit):
        dpo_train.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Train one DPO round with TRL's DPOTrainer and the params' Table 3 settings." in text
    assert "round name from params, e.g. round1" in text and "stop after this step (tests resuming)" in text
    assert "discard the round's checkpoints and train from step 0" in text


def test_force_on_a_round_without_checkpoints_starts_and_other_ranks_write_nothing(dpo_run, dpo_standins,
                                                                                    monkeypatch):
    from med42_utils.dpo.round_models import round_dir
    from med42_utils.dpo.train import train_round

    p = load_params("tiny")
    fresh = dpo_run(p)
    assert not (round_dir(p, fresh, "round1") / "trainer").exists()
    assert train_round(p, fresh, "round1", force=True)["global_steps"] == 5  # nothing to discard yet
    name = dpo_run(p)
    out = round_dir(p, name, "round1")
    monkeypatch.setattr(_FakeDPOTrainer, "world_zero", False)
    assert train_round(p, name, "round1", force=True) == {}  # rank 1 returns no fields
    assert not (out / "manifest.json").exists() and not (out / "log_history.json").exists()
    assert len(dpo_standins["save_final"]) == 2  # every rank joins the gather


def test_an_on_policy_round_reads_its_runs_pairs_and_says_so_and_fsdp_is_recorded(dpo_run, dpo_standins,
                                                                                   monkeypatch):
    from med42_utils.dpo import train as dpo_train
    from med42_utils.dpo.preference_data import DropReport

    p = load_params("tiny", {"dpo.onpolicy.enabled": True, "dpo.onpolicy.rounds": ["round1"]})
    name = dpo_run(p)
    read = []
    monkeypatch.setattr(dpo_train, "read_pairs", lambda params, run, rnd: read.append((params.size, run, rnd))
                        or (_pairs(4), DropReport()))
    monkeypatch.setattr(_FakeDPOTrainer, "fsdp", True)
    fields = dpo_train.train_round(p, name, "round1")
    assert read == [("tiny", name, "round1")] and dpo_standins["preferences"] == []
    assert fields["onpolicy"] is True and fields["train_pairs"] == 3 and fields["fsdp"] is True
