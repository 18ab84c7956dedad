"""SFT: Table 2 in the config, loss falls on tiny, LoRA, resume, FSDP on 2 CPU processes."""
from __future__ import annotations

import json
import shutil
import types
import uuid
from pathlib import Path

import pytest
import torch

from med42_utils import checkpoints
from med42_utils.hardware import HardwareError
from med42_utils.params import load_params
from med42_utils.paths import RESOURCES, run_dir
from med42_utils.sft.stage import check_hardware, generate, sft_plan
from med42_utils.sft.train import build_sft_config, main, train_sft

SAMPLE = RESOURCES / "samples" / "packing" / "curated_sample.jsonl"


def _packed_run(name: str) -> str:
    """A throwaway run with 01's curated stand-in and a real 02_packing pass."""
    from datasets import Dataset

    from med42_utils.manifest import write_manifest
    from med42_utils.notebook import start
    from med42_utils.packing.stage import run_packing

    run = start("tiny", name)
    rows = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    rows = [dict(r, id=f"{r['id']}-{k}") for k in range(3) for r in rows]
    d = run.stage_dir("01_data_curation")
    Dataset.from_list(rows).save_to_disk(str(d / "curated"))
    write_manifest(d, "01_data_curation", run.params, rows=len(rows))
    run_packing(run)
    return name


@pytest.fixture
def packed_run():
    names = []

    def make():
        names.append(_packed_run(f"pytest-sft-{uuid.uuid4().hex[:8]}"))
        return names[-1]

    yield make
    for n in names:
        shutil.rmtree(run_dir("tiny", n), ignore_errors=True)


@pytest.mark.parametrize("size,steps,accum", [("8b", 5321, 2), ("70b", 3549, 1)])
def test_sft_config_is_table_2(tmp_path, size, steps, accum):
    p = load_params(size)
    c = build_sft_config(p, tmp_path, use_cpu=True, bf16=False)  # CPU box: only build the config
    assert c.learning_rate == 5e-6 and c.lr_scheduler_type == "cosine"
    assert (c.adam_beta1, c.adam_beta2, c.weight_decay) == (0.9, 0.95, 0.01)
    assert c.optim == "adamw_torch_fused"
    assert c.max_steps == steps and c.gradient_accumulation_steps == accum
    assert c.per_device_train_batch_size == 1 and c.max_length == 8192
    assert c.gradient_checkpointing and c.packing and c.packing_strategy == p.packing.strategy
    assert p.sft.bf16 is True
    world = p.sft.hardware.world_size
    assert c.per_device_train_batch_size * accum * world * c.max_length == {"8b": 262_144, "70b": 393_216}[size]


def test_gpu_size_fails_fast_without_cuda_unless_dry_run(tmp_path, monkeypatch):
    from realslurm import path_without_slurm

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    monkeypatch.setenv("PATH", path_without_slurm(tmp_path / "bin"))  # no sbatch: not a login node either
    p = load_params("8b")
    with pytest.raises(HardwareError, match="no CUDA"):
        check_hardware(p, dry_run=False)
    check_hardware(p, dry_run=True)  # the plan can always be rendered
    plan = sft_plan(p, "plan-only", {"sft.max_steps": 5321})
    assert "--set sft.max_steps=5321" in plan.slurm_script


@pytest.mark.slow
def test_tiny_sft_loss_falls_and_model_is_saved(packed_run, capsys):
    name = packed_run()
    p = load_params("tiny", {"sft.max_steps": 12, "sft.logging_steps": 2, "sft.save_steps": 100})
    fields = train_sft(p, name)
    losses = [e["loss"] for e in fields["log_history"]]
    assert len(losses) == 6
    # compact progress lines, no raw log dicts; the curves in sft/tensorboard/ are the logged ones
    printed = capsys.readouterr().out
    assert printed.count("[sft] step") == 4 and "{'loss'" not in printed and "'grad_norm'" not in printed
    from med42_utils.training_logs import read_scalars

    curves = read_scalars(run_dir("tiny", name) / "sft")
    assert curves["loss"].tolist() == pytest.approx(losses, rel=1e-5) and list(curves.index) == [2, 4, 6, 8, 10, 12]
    assert max(losses[-2:]) < min(losses[:2]) - 0.3, losses
    out = run_dir("tiny", name) / "sft"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "03_sft" and manifest["global_step"] == 12
    from med42_utils.models import resolve_model

    path = resolve_model(p, name, "sft")
    assert "sft" in path
    text = generate(p, path, "What is the antidote for paracetamol overdose?", max_new_tokens=8)
    assert isinstance(text, str)
    # a finished stage is skipped, not re-trained
    again = train_sft(p, name)
    assert again["created"] == manifest["created"]


@pytest.mark.slow
def test_rerun_after_an_interruption_ends_where_an_uninterrupted_run_ends(packed_run):
    """Stopped after step 3, then started again with nothing set: it continues from checkpoint-3 on its own."""
    from safetensors.torch import load_file

    a, b = packed_run(), packed_run()
    s = ["--set", "sft.max_steps=6", "--set", "sft.save_steps=3", "--set", "sft.logging_steps=1"]
    assert main(["--size", "tiny", "--run-name", a, *s]) == 0
    assert main(["--size", "tiny", "--run-name", b, *s, "--stop-after-step", "3"]) == 0
    bdir = run_dir("tiny", b) / "sft"
    assert (bdir / "checkpoints" / "checkpoint-3").is_dir()
    assert not list((bdir / "checkpoints").rglob("README.md")), "TRL's draft model card (linking to [None]) is off"
    assert not (bdir / "manifest.json").exists(), "an interrupted run must not look finished"
    assert main(["--size", "tiny", "--run-name", b, *s]) == 0
    mb = json.loads((bdir / "manifest.json").read_text())
    ma = json.loads((run_dir("tiny", a) / "sft" / "manifest.json").read_text())
    assert ma["resumed_from"] is None
    assert mb["resumed_from"].endswith("checkpoint-3") and mb["global_step"] == ma["global_step"] == 6
    assert not (bdir / "checkpoints").exists(), "a finished stage deletes its checkpoints"
    assert [e["loss"] for e in mb["log_history"]] == pytest.approx([e["loss"] for e in ma["log_history"]], abs=1e-5)
    wa = load_file(str(run_dir("tiny", a) / "sft" / "model" / "model.safetensors"))
    wb = load_file(str(bdir / "model" / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], atol=1e-6, rtol=1e-5)


@pytest.mark.slow
def test_lora_trains_adapters_only_and_saves_a_merged_model(packed_run, tiny_model_path):
    from safetensors.torch import load_file

    name = packed_run()
    p = load_params("tiny", {"sft.method": "lora", "sft.max_steps": 4, "sft.logging_steps": 1,
                             "sft.save_steps": 100, "sft.learning_rate": 0.01})
    fields = train_sft(p, name)
    assert 0 < fields["trainable_parameters"] < 0.2 * fields["total_parameters"]
    out = run_dir("tiny", name) / "sft"
    assert (out / "adapter" / "adapter_config.json").is_file()
    merged = load_file(str(out / "model" / "model.safetensors"))
    base = load_file(str(__import__("pathlib").Path(tiny_model_path) / "model.safetensors"))
    assert not any("lora" in k for k in merged), "adapters must be merged into plain weights"
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.allclose(merged[q], base[q]), "LoRA must change the targeted projection"
    mlp = "model.layers.0.mlp.up_proj.weight"
    torch.testing.assert_close(merged[mlp], base[mlp])  # not a LoRA target: untouched


@pytest.mark.slow
def test_fsdp_on_two_cpu_processes_through_the_launcher(packed_run):
    from med42_utils.launch import execute
    from med42_utils.models import load_model_and_tokenizer

    name = packed_run()
    ov = {"sft.hardware.gpus_per_node": 2, "sft.hardware.launcher": "accelerate", "sft.tokens_per_step": 2048,
          "sft.max_steps": 3, "sft.logging_steps": 1, "sft.save_steps": 100}
    p = load_params("tiny", ov)
    plan = sft_plan(p, name, ov)
    assert "accelerate launch --config_file" in plan.commands[0] and "--num_processes 2" in plan.commands[0]
    execute(plan)
    m = json.loads((run_dir("tiny", name) / "sft" / "manifest.json").read_text())
    assert m["world_size"] == 2 and m["fsdp"] is True and m["distributed_type"] == "FSDP"
    assert m["fsdp_wrapped_modules"] >= p.model.tiny.num_hidden_layers + 1  # each decoder layer + the root
    assert all(torch.isfinite(torch.tensor(e["loss"])) for e in m["log_history"])
    model, _ = load_model_and_tokenizer(p, str(run_dir("tiny", name) / "sft" / "model"))
    assert sum(t.numel() for t in model.parameters()) == m["total_parameters"]
    # the gathered full state dict holds real trained values: finite, moved, and within Adam's step bound
    from med42_utils.tiny_model import resolve_base_model

    base, _ = load_model_and_tokenizer(p, resolve_base_model(p))
    saved, start = model.state_dict(), base.state_dict()
    assert all(torch.isfinite(v).all() for v in saved.values())
    moved = max((saved[k] - start[k]).abs().max().item() for k in saved)
    assert 0 < moved <= 1.5 * p.sft.learning_rate * p.sft.max_steps
    # one process taking the same rows a step in twice the micro-batches gives the same losses; on the steps of
    # full batches (step 3 holds the epoch's last, short batch: accelerate evens it out over 2 processes by
    # repeating rows, so it is not the same data)
    one = packed_run()
    f1 = train_sft(load_params("tiny", {**ov, "sft.hardware.gpus_per_node": 1, "sft.hardware.launcher": "inprocess",
                                        "sft.gradient_accumulation_steps": 2 * p.sft.gradient_accumulation_steps}), one)
    full = [i for i, e in enumerate(f1["log_history"]) if e["epoch"] < 1]
    assert len(full) == 2 and len(m["log_history"]) == len(f1["log_history"]) == p.sft.max_steps
    assert ([m["log_history"][i]["loss"] for i in full]
            == pytest.approx([f1["log_history"][i]["loss"] for i in full], abs=1e-5))


@pytest.mark.slow
def test_bfd_padding_free_training_runs(packed_run):
    name = packed_run()
    p = load_params("tiny", {"packing.strategy": "bfd", "sft.max_steps": 3, "sft.logging_steps": 1,
                             "sft.save_steps": 100})
    fields = train_sft(p, name)
    assert fields["packing_strategy"] == "bfd" and fields["global_step"] == 3
    assert all(torch.isfinite(torch.tensor(e["loss"])) for e in fields["log_history"])


@pytest.mark.slow
def test_the_first_batch_the_trainer_builds_trains_on_assistant_tokens_only(packed_run, monkeypatch):
    """The batch SFTTrainer's own collator hands to compute_loss: every system, user and header token is -100,
    every assistant token (and the <|eot_id|> closing it) carries its own id. Were the labels column lost, TRL
    would fall back to labels = input_ids and train on the prompts."""
    from trl import SFTTrainer

    from llama3_turns import HEADER, UNKNOWN, token_turns

    seen = []
    real = SFTTrainer.compute_loss

    def spy(self, model, inputs, *a, **k):
        if not seen:
            seen.append(({k: v.detach().clone() for k, v in inputs.items() if torch.is_tensor(v)}, self.processing_class))
        return real(self, model, inputs, *a, **k)

    monkeypatch.setattr(SFTTrainer, "compute_loss", spy)
    name = packed_run()
    train_sft(load_params("tiny", {"sft.max_steps": 1, "sft.save_steps": 100}), name)
    batch, tok = seen[0]
    eot = tok.convert_tokens_to_ids("<|eot_id|>")
    trained = prompt = 0
    for ids, labels in zip(batch["input_ids"].tolist(), batch["labels"].tolist()):
        for t, lab, turn in zip(ids, labels, token_turns(ids, tok)):
            if turn == UNKNOWN:
                continue  # the row starts inside a turn cut by packing
            if turn == "assistant":
                assert lab == t, f"assistant token {tok.decode([t])!r} is not trained on"
                trained += 1
            else:
                assert lab == -100, f"{turn} token {tok.decode([t])!r} is trained on (label {lab})"
                prompt += turn != HEADER
        assert eot in ids
    assert trained > 0 and prompt > 0, (trained, prompt)


# --- train_sft's bookkeeping, with the trainer stood in for (no model runs: fast) --------------------------
# What the stage decides around SFTTrainer: skip a finished stage, discard checkpoints on force, resume from the
# last one of the same key, stop early without a manifest, and the manifest's fields. The real training is in the
# slow tests above.

class _FakeSFTTrainer:
    """SFTTrainer's surface train_sft uses. `train` advances the state from the checkpoint it resumes from to
    max_steps, or to the stop the stage's callbacks ask for, and saves a checkpoint there when it stops early."""

    built: list = []

    def __init__(self, model, args, train_dataset, processing_class, peft_config, callbacks):
        from accelerate.utils import DistributedType
        from transformers import TrainerState

        self.model = self.model_wrapped = model
        self.args, self.train_dataset, self.processing_class = args, train_dataset, processing_class
        self.peft_config, self.callbacks = peft_config, callbacks
        self.is_fsdp_enabled = False
        self.accelerator = types.SimpleNamespace(is_main_process=True, wait_for_everyone=lambda: None,
                                                 distributed_type=DistributedType.MULTI_GPU)
        self.state = TrainerState()
        self.ckpt_dir_existed = Path(args.output_dir).exists()
        _FakeSFTTrainer.built.append(self)

    def train(self, resume_from_checkpoint=None):
        self.resumed = resume_from_checkpoint
        start = int(resume_from_checkpoint.rsplit("-", 1)[1]) if resume_from_checkpoint else 0
        stop = next((c[2] for c in self.callbacks if c[0] == "stage callbacks" and c[2]), None)
        end = min(stop or self.args.max_steps, self.args.max_steps)
        self.state.global_step = end
        self.state.log_history = [
            *({"step": s, "loss": 10.0 - s, "learning_rate": 0.1 * s, "grad_norm": 1.5, "epoch": s / 8, "x": 1}
              for s in range(start + 1, end + 1)),
            {"train_runtime": 1.0, "step": end}]
        if end < self.args.max_steps:
            c = Path(self.args.output_dir) / f"checkpoint-{end}"
            c.mkdir(parents=True)
            (c / "trainer_state.json").write_text(json.dumps({"global_step": end}))
        return types.SimpleNamespace(training_loss=4.25)


@pytest.fixture
def sft_standins(monkeypatch):
    """train_sft with its heavy parts recorded instead of run: the trainer, model loading, saving, logging."""
    import trl
    import transformers

    from med42_utils.sft import train as sft_train

    calls = {"set_seed": [], "save_final": [], "quiet": [], "load": [], "packages": [], "tokenizer": []}
    _FakeSFTTrainer.built = []
    clock = iter([100.0, 112.3456] * 10)

    def load_for_training(params, base, stage, dtype=None):
        calls["load"].append((params.size, base, stage, dtype))
        model = torch.nn.Linear(3, 2)  # 6 + 2 parameters; the bias frozen: 6 trainable
        model.bias.requires_grad_(False)
        return model

    monkeypatch.setattr(trl, "SFTTrainer", _FakeSFTTrainer)
    monkeypatch.setattr(transformers, "set_seed", calls["set_seed"].append)
    monkeypatch.setattr(sft_train, "load_for_training", load_for_training)
    monkeypatch.setattr(sft_train, "resolve_base_model", lambda params: f"the-{params.size}-base-model")
    monkeypatch.setattr(sft_train.models, "load_tokenizer",
                        lambda params, base: calls["tokenizer"].append((params.size, base)) or "the-tokenizer")
    monkeypatch.setattr(sft_train, "save_final", lambda trainer, params, method, model_dir, tok:
                        calls["save_final"].append((trainer, params.size, method, model_dir, tok)))
    monkeypatch.setattr(sft_train, "stage_callbacks", lambda progress, stop: [("stage callbacks", progress, stop)])
    monkeypatch.setattr(sft_train, "quiet_trainer", lambda trainer, params, out, label, fresh:
                        calls["quiet"].append((trainer is _FakeSFTTrainer.built[-1], params.size, out, label, fresh)))
    monkeypatch.setattr(sft_train, "require_packages",
                        lambda params, stage: calls["packages"].append((params.size, stage)))
    monkeypatch.setattr(sft_train, "time", types.SimpleNamespace(time=lambda: next(clock)))
    monkeypatch.delenv("RANK", raising=False)
    return calls


def _tokenized_run(params, name):
    """A run whose 02_packing folder holds 5 tokenized rows (and the columns SFT does not train on)."""
    from datasets import Dataset

    from med42_utils.manifest import write_manifest
    from med42_utils.stages import stage_dir

    d = stage_dir(params, name, "packing")
    rows = [{"input_ids": [1, 2, 3 + i], "labels": [-100, 2, 3 + i], "id": f"r{i}", "length": 3} for i in range(5)]
    Dataset.from_list(rows).save_to_disk(str(d / "tokenized"))
    write_manifest(d, "02_packing", params, rows=5)
    return d


@pytest.fixture
def tokenized_run():
    names = []

    def make(params):
        names.append(f"pytest-sft-fake-{uuid.uuid4().hex[:8]}")
        _tokenized_run(params, names[-1])
        return names[-1]

    yield make
    for n in names:
        shutil.rmtree(run_dir("tiny", n), ignore_errors=True)


def test_load_train_dataset_keeps_input_ids_and_labels_of_02s_tokenized_rows(tokenized_run):
    from med42_utils.manifest import StageMissingError
    from med42_utils.sft.train import load_train_dataset

    p = load_params("tiny")
    ds = load_train_dataset(p, tokenized_run(p))
    assert ds.column_names == ["input_ids", "labels"] and len(ds) == 5 and ds[4] == {"input_ids": [1, 2, 7],
                                                                                     "labels": [-100, 2, 7]}
    with pytest.raises(StageMissingError, match="run notebooks/02_packing.ipynb"):
        load_train_dataset(p, "pytest-sft-no-packing")


def test_sft_stops_early_without_a_manifest_then_resumes_and_records_everything(tokenized_run, sft_standins):
    from med42_utils.stages import stage_dir

    p = load_params("tiny", {"sft.max_steps": 6, "sft.seed": 11})
    name = tokenized_run(p)
    out = stage_dir(p, name, "sft")
    stopped = train_sft(p, name, stop_after_step=2)
    t = _FakeSFTTrainer.built[-1]
    assert sft_standins["set_seed"] == [11] and sft_standins["packages"] == [("tiny", "sft")]
    assert sft_standins["load"] == [("tiny", "the-tiny-base-model", "sft", "float32")]  # full: fp32 master weights
    assert sft_standins["tokenizer"] == [("tiny", "the-tiny-base-model")] and t.processing_class == "the-tokenizer"
    assert t.args.output_dir == str(out / "checkpoints") and t.args.max_steps == 6
    assert t.args.run_name == f"tiny/{name}/sft" and t.peft_config is None
    assert t.train_dataset.column_names == ["input_ids", "labels"] and len(t.train_dataset) == 5
    assert t.callbacks == [("stage callbacks", out / "progress.jsonl", 2)]
    assert t.resumed is None and sft_standins["quiet"] == [(True, "tiny", out, "sft", True)]
    assert stopped["global_step"] == 2 and stopped["stopped_early"] is True and stopped["resumed_from"] is None
    assert not (out / "manifest.json").exists() and sft_standins["save_final"] == []
    assert (out / "checkpoints" / "checkpoint-2").is_dir()

    fields = train_sft(p, name)  # started again: continues from checkpoint-2
    t = _FakeSFTTrainer.built[-1]
    ckpt = str(out / "checkpoints" / "checkpoint-2")
    assert t.resumed == ckpt and sft_standins["quiet"][-1] == (True, "tiny", out, "sft", False)
    logs = [{"step": s, "loss": 10.0 - s, "learning_rate": 0.1 * s, "grad_norm": 1.5, "epoch": s / 8}
            for s in range(3, 7)]
    assert fields == {
        "method": "full", "packing_strategy": "wrapped", "world_size": 1, "distributed_type": "MULTI_GPU",
        "fsdp": False, "fsdp_wrapped_modules": 0, "global_step": 6, "max_steps": 6, "stopped_early": False,
        "resumed_from": ckpt, "train_loss": 4.25, "first_loss": 7.0, "last_loss": 4.0, "log_history": logs,
        "train_samples": 5, "trainable_parameters": 6, "total_parameters": 8, "tokens_per_step": 1024,
        "wall_seconds": 12.35, "model_dir": "model"}
    assert sft_standins["save_final"] == [(t, "tiny", "full", out / "model", "the-tokenizer")]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "03_sft" and {k: manifest[k] for k in fields} == fields
    assert not (out / "checkpoints").exists(), "a finished stage deletes its checkpoints"


def test_a_finished_sft_is_skipped_unless_forced_and_force_discards_the_checkpoints(tokenized_run, sft_standins,
                                                                                    capsys):
    from med42_utils.stages import stage_dir

    p = load_params("tiny", {"sft.max_steps": 3})
    name = tokenized_run(p)
    out = stage_dir(p, name, "sft")
    first = train_sft(p, name)
    assert len(_FakeSFTTrainer.built) == 1 and first["stopped_early"] is False
    manifest = json.loads((out / "manifest.json").read_text())
    capsys.readouterr()
    assert train_sft(p, name) == manifest and len(_FakeSFTTrainer.built) == 1
    assert capsys.readouterr().out == f"03_sft already done in {out} (force=True re-trains)\n"
    # a stop asked for re-trains (the resume tests), as does force; force starts without the old checkpoints
    (out / "checkpoints" / "checkpoint-2").mkdir(parents=True)
    train_sft(p, name, force=True)
    assert len(_FakeSFTTrainer.built) == 2 and not _FakeSFTTrainer.built[-1].ckpt_dir_existed
    train_sft(p, name, stop_after_step=2)
    assert len(_FakeSFTTrainer.built) == 3 and _FakeSFTTrainer.built[-1].state.global_step == 2


def test_a_process_other_than_rank_0_writes_no_manifest_and_keeps_the_checkpoints_on_force(tokenized_run,
                                                                                          sft_standins, monkeypatch):
    from med42_utils.stages import stage_dir

    p = load_params("tiny", {"sft.max_steps": 3})
    name = tokenized_run(p)
    out = stage_dir(p, name, "sft")
    (out / "checkpoints" / "checkpoint-2").mkdir(parents=True)
    monkeypatch.setenv("RANK", "1")
    fields = train_sft(p, name, force=True)
    assert _FakeSFTTrainer.built[-1].ckpt_dir_existed, "rank 0 deletes them"
    assert fields["global_step"] == 3 and len(sft_standins["save_final"]) == 1  # every rank joins the gather
    assert not (out / "manifest.json").exists() and (out / "checkpoints").is_dir()


def test_lora_sft_loads_the_base_in_its_dtype_and_hands_the_trainer_the_adapters_config(tokenized_run, sft_standins):
    p = load_params("tiny", {"sft.method": "lora", "sft.max_steps": 2, "sft.lora.r": 4})
    fields = train_sft(p, tokenized_run(p))
    t = _FakeSFTTrainer.built[-1]
    assert sft_standins["load"] == [("tiny", "the-tiny-base-model", "sft", None)]
    assert t.peft_config.r == 4 and set(t.peft_config.target_modules) == set(p.sft.lora.target_modules)
    assert fields["method"] == "lora" and sft_standins["save_final"][0][2] == "lora"


def test_under_fsdp_the_manifest_says_fsdp_and_counts_the_wrapped_modules(tokenized_run, sft_standins, monkeypatch):
    from med42_utils.sft import train as sft_train

    monkeypatch.setattr(_FakeSFTTrainer, "is_fsdp_enabled", True, raising=False)
    orig = _FakeSFTTrainer.__init__

    def init(self, *a, **k):
        orig(self, *a, **k)
        self.is_fsdp_enabled = True

    monkeypatch.setattr(_FakeSFTTrainer, "__init__", init)
    monkeypatch.setattr(sft_train, "fsdp_wrapped_modules",
                        lambda m: 3 if m is _FakeSFTTrainer.built[-1].model else -1)
    p = load_params("tiny", {"sft.max_steps": 2})
    fields = train_sft(p, tokenized_run(p))
    assert fields["distributed_type"] == "FSDP" and fields["fsdp"] is True and fields["fsdp_wrapped_modules"] == 3


def test_sft_without_logged_losses_records_none(tokenized_run, sft_standins, monkeypatch):
    orig = _FakeSFTTrainer.train

    def train(self, resume_from_checkpoint=None):
        r = orig(self, resume_from_checkpoint)
        self.state.log_history = [e for e in self.state.log_history if "loss" not in e]
        return r

    monkeypatch.setattr(_FakeSFTTrainer, "train", train)
    p = load_params("tiny", {"sft.max_steps": 2})
    fields = train_sft(p, tokenized_run(p))
    assert fields["first_loss"] is None and fields["last_loss"] is None and fields["log_history"] == []


def test_sft_main_passes_its_arguments_and_prints_one_line_on_rank_0(monkeypatch, capsys):
    from med42_utils.sft import train as sft_train

    got = []
    fields = {"global_step": 6, "max_steps": 10, "first_loss": 2.34567, "last_loss": 1.23456, "wall_seconds": 61.6}
    monkeypatch.setattr(sft_train, "train_sft", lambda params, run, stop_after_step, force:
                        got.append((params, run, stop_after_step, force)) or dict(fields))
    monkeypatch.delenv("RANK", raising=False)
    assert main(["--size", "tiny", "--run-name", "demo", "--set", "sft.max_steps=10", "--stop-after-step", "6",
                 "--force"]) == 0
    params, run, stop, force = got[-1]
    assert params.size == "tiny" and params.sft.max_steps == 10 and (run, stop, force) == ("demo", 6, True)
    assert capsys.readouterr().out == "sft: step 6/10, loss 2.346 -> 1.235, 62 s; in outputs/tiny/demo/sft\n" \
        .replace("outputs", "$MED42_OUTPUTS")
    fields.update(first_loss=None, last_loss=None)
    assert main(["--size", "tiny", "--run-name", "demo"]) == 0
    assert got[-1][1:] == ("demo", None, False) and got[-1][0].sft.max_steps == load_params("tiny").sft.max_steps
    assert capsys.readouterr().out == "sft: step 6/10, 62 s; in $MED42_OUTPUTS/tiny/demo/sft\n"
    monkeypatch.setenv("RANK", "1")
    assert main(["--size", "tiny", "--run-name", "demo"]) == 0 and capsys.readouterr().out == ""


def test_sft_main_help_shows_the_module_doc_and_its_own_options(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "python -m med42_utils.sft.train --size tiny --run-name demo [--set sft.max_steps=10]\n" in text
    assert "stop after this step (tests resuming)" in " ".join(text.split())
    assert "re-train from step 0 even if sft/manifest.json exists (discards sft/checkpoints/)" in " ".join(text.split())


def test_every_sft_param_reaches_the_config_and_checkpointing_is_non_reentrant(tmp_path):
    """Values other than TRL's defaults, so that a dropped argument shows; activation checkpointing with
    use_reentrant=False (the variant PyTorch recommends), only when asked for."""
    p = load_params("tiny", {"sft.adam_beta1": 0.8, "sft.adam_beta2": 0.97, "packing.strategy": "wrapped",
                             "sft.gradient_checkpointing": True, "sft.max_steps": 17})
    c = build_sft_config(p, tmp_path / "ckpts")
    assert (c.adam_beta1, c.adam_beta2, c.max_steps, c.packing_strategy) == (0.8, 0.97, 17, "wrapped")
    assert c.output_dir == str(tmp_path / "ckpts") and c.max_length == p.packing.max_length == 256
    assert c.activation_checkpointing_kwargs == {"use_reentrant": False}
    assert build_sft_config(load_params("tiny", {"sft.gradient_checkpointing": False}),
                            tmp_path).activation_checkpointing_kwargs is None
    assert build_sft_config(p, tmp_path, max_steps=3, report_to=[]).max_steps == 3  # overrides win


def test_sft_checkpoints_of_other_params_or_other_packed_data_are_not_resumed_nor_is_a_finished_stage_kept(
        tokenized_run, sft_standins):
    """The key recorded beside the checkpoints is the SFT params and 02's fingerprint: a change in either starts at
    step 0; and a finished stage is trained again when its params change."""
    from med42_utils.manifest import fingerprint, input_fingerprints
    from med42_utils.stages import stage_dir

    p = load_params("tiny", {"sft.max_steps": 6})
    name = tokenized_run(p)
    out = stage_dir(p, name, "sft")
    train_sft(p, name, stop_after_step=2)
    key = json.loads((out / "checkpoints" / "resume_key.json").read_text())
    packing = stage_dir(p, name, "packing")
    assert key == checkpoints.resume_key(p, "sft", input_fingerprints(out, [packing]))
    assert key["inputs"] == {"../packing": fingerprint(packing)} and key["sft"]["max_steps"] == 6
    lr = load_params("tiny", {"sft.max_steps": 6, "sft.learning_rate": 1e-3})
    train_sft(lr, name, stop_after_step=2)
    assert _FakeSFTTrainer.built[-1].resumed is None  # other params: checkpoint-2 discarded
    train_sft(p, name, stop_after_step=2)  # checkpoint-2 of p again
    assert (out / "checkpoints" / "checkpoint-2").is_dir()
    _tokenized_run(p, name)  # 02 packed again
    assert fingerprint(packing) != key["inputs"]["../packing"]
    train_sft(p, name)
    assert _FakeSFTTrainer.built[-1].resumed is None
    assert len(_FakeSFTTrainer.built) == 4 and (out / "manifest.json").is_file()
    train_sft(lr, name)  # finished with other params: trained again
    assert len(_FakeSFTTrainer.built) == 5 and json.loads((out / "manifest.json").read_text())["global_step"] == 6
