"""SFT: Table 2 in the config, loss falls on tiny, LoRA, resume, FSDP on 2 CPU processes."""
from __future__ import annotations

import json
import shutil
import uuid

import pytest
import torch

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
