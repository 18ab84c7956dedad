"""The params loader: paper values for 8b/70b, derived figures, and every error path."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from med42_utils.params import Params, ParamsError, load_params, params_hash, valid_sizes
from med42_utils.paths import repo_root


def test_sizes_available():
    assert valid_sizes() == ["70b", "8b", "gpu_smoke", "tiny", "workshop"]
    for size in valid_sizes():
        assert isinstance(load_params(size), Params)


@pytest.mark.parametrize(
    "size, base, steps, tokens, nodes, gpus",
    [("8b", "meta-llama/Meta-Llama-3-8B-Instruct", 5321, 262_144, 2, 8),
     ("70b", "meta-llama/Meta-Llama-3-70B-Instruct", 3549, 393_216, 6, 8)],
)
def test_table2_sft(size, base, steps, tokens, nodes, gpus):
    p = load_params(size)
    s = p.sft
    assert p.model.base == base
    assert (s.learning_rate, s.lr_scheduler_type, s.adam_beta1, s.adam_beta2, s.weight_decay) == (5e-6, "cosine", 0.9, 0.95, 0.01)
    assert s.optim.startswith("adamw")
    assert (s.max_steps, s.tokens_per_step, s.num_train_epochs) == (steps, tokens, 2)
    assert p.sft_tokens_per_step == tokens  # derived agrees with stated
    assert p.packing.max_length == 8192
    assert (s.hardware.nodes, s.hardware.gpus_per_node, s.hardware.accelerator) == (nodes, gpus, "h100")
    assert s.bf16 and s.gradient_checkpointing


@pytest.mark.parametrize("size, beta, batch, nodes", [("8b", 0.1, 256, 2), ("70b", 0.01, 128, 4)])
def test_table3_dpo(size, beta, batch, nodes):
    d = load_params(size).dpo
    assert (d.beta, d.optim, d.learning_rate, d.lr_scheduler_type, d.weight_decay) == (beta, "rmsprop", 1e-6, "cosine", 0.0)
    assert (d.batch_size, d.max_length, d.num_train_epochs) == (batch, 4096, 1)
    assert (d.hardware.nodes, d.hardware.gpus_per_node) == (nodes, 8)
    assert load_params(size).dpo_batch_size == batch
    assert [r.datasets for r in d.rounds] == [
        ["ultrafeedback:train_prefs", "snorkel:train_iteration_1"],
        ["snorkel:train_iteration_2"],
        ["snorkel:train_iteration_3"],
    ]


def test_card_sampling_and_elo():
    j = load_params("8b").judge
    assert (j.sampling.temperature, j.sampling.top_k, j.sampling.top_p, j.sampling.max_new_tokens) == (0.4, 150, 0.75, 512)
    assert (j.elo.k, j.elo.scale, j.elo.base, j.elo.initial) == (4, 400, 10, 1000)
    assert j.elo.bootstrap_rounds >= 1000


def test_overrides_validated_and_applied():
    p = load_params("tiny", {"sft.max_steps": 7, "data.targets.medmcqa": 3})
    assert p.sft.max_steps == 7 and p.data.targets["medmcqa"] == 3
    assert params_hash(p) != params_hash(load_params("tiny"))
    assert params_hash(load_params("tiny")) == params_hash(load_params("tiny"))


def test_unknown_size_lists_valid_sizes():
    with pytest.raises(ParamsError, match=r"unknown size '13b'; valid sizes: 70b, 8b, gpu_smoke, tiny, workshop"):
        load_params("13b")


def test_unknown_override_key_names_key_and_valid_keys():
    with pytest.raises(ParamsError) as e:
        load_params("tiny", {"sft.max_stpes": 3})
    msg = str(e.value)
    assert "sft.max_stpes" in msg and "max_steps" in msg and "tiny.yaml" in msg


def test_wrong_type_is_not_coerced():
    with pytest.raises(ParamsError, match=r"bad value for 'sft.max_steps'.*got '3' of type str"):
        load_params("tiny", {"sft.max_steps": "3"})


def test_bad_choice_lists_choices():
    with pytest.raises(ParamsError, match=r"packing.strategy.*'wrapped' or 'bfd'"):
        load_params("tiny", {"packing.strategy": "greedy"})


def test_tokens_per_step_must_match_derived():
    with pytest.raises(ParamsError, match=r"sft.tokens_per_step is 1,024 but .* = 2,048"):
        load_params("tiny", {"sft.hardware.gpus_per_node": 2})
    # stating the new figure makes it valid again
    p = load_params("tiny", {"sft.hardware.gpus_per_node": 2, "sft.tokens_per_step": 2048})
    assert p.sft_tokens_per_step == 2048


def test_dpo_batch_must_match_derived():
    stated = load_params("tiny").dpo.batch_size
    with pytest.raises(ParamsError, match=rf"dpo.batch_size is {stated} but"):
        load_params("tiny", {"dpo.micro_batch_size": stated + 1})


def _copy_params(tmp_path: Path) -> Path:
    shutil.copytree(repo_root() / "params", tmp_path / "params")
    return tmp_path


def test_unknown_key_in_file_names_file_and_valid_keys(tmp_path):
    root = _copy_params(tmp_path)
    f = root / "params" / "tiny.yaml"
    f.write_text(f.read_text().replace("sft:\n  method: full", "sft:\n  method: full\n  lerning_rate: 1.0"))
    with pytest.raises(ParamsError) as e:
        load_params("tiny", root=root)
    msg = str(e.value)
    assert "unknown key 'sft.lerning_rate'" in msg and str(f) in msg and "learning_rate" in msg


def test_missing_key_in_file(tmp_path):
    root = _copy_params(tmp_path)
    f = root / "params" / "tiny.yaml"
    f.write_text(re.sub(r"\n  max_steps: \d+[^\n]*\n", "\n", f.read_text(), count=1))
    with pytest.raises(ParamsError, match=r"missing key 'sft.max_steps'"):
        load_params("tiny", root=root)


def test_invalid_yaml_and_size_mismatch(tmp_path):
    root = _copy_params(tmp_path)
    (root / "params" / "broken.yaml").write_text("sft: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params("broken", root=root)
    (root / "params" / "other.yaml").write_text((root / "params" / "tiny.yaml").read_text())
    with pytest.raises(ParamsError, match="says size 'tiny' but is named for 'other'"):
        load_params("other", root=root)


def test_override_into_scalar_is_an_error():
    with pytest.raises(ParamsError, match="'sft.max_steps' is not a section"):
        load_params("tiny", {"sft.max_steps.x": 1})


def test_launcher_needs_config_and_slurm_needs_nodes():
    with pytest.raises(ParamsError, match="needs accelerate_config"):
        load_params("tiny", {"sft.hardware.launcher": "accelerate", "sft.hardware.accelerate_config": None})
    with pytest.raises(ParamsError, match="nodes >= 2"):
        load_params("tiny", {"sft.hardware.launcher": "slurm"})


def test_trust_remote_code_off_everywhere():
    assert not any(load_params(s).model.trust_remote_code for s in valid_sizes())


def test_no_secret_like_values_in_params():
    for f in (repo_root() / "params").rglob("*.yaml"):
        text = f.read_text().lower()
        assert "hf_" not in text.replace("hf_hub", "") and "sk-" not in text, f
