"""Sizes that inherit (`inherits: 8b`): all five resolve exactly to the snapshot taken before the files were
cut to their differences (so manifests' params hashes and resumable checkpoints stay valid); cycles and unknown
parents are errors naming the file; `python -m med42_utils.params diff` prints the differences."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from med42_utils.params import ParamsError, load_params, valid_sizes
from med42_utils.params.__main__ import differences
from med42_utils.params.loader import deep_merge
from med42_utils.paths import repo_root

SNAPSHOT = Path(__file__).parent / "fixtures" / "params_snapshot"
REGEN = ("python -c \"import json; from med42_utils.params import load_params as L, valid_sizes as V; [open(f'tests/"
         "fixtures/params_snapshot/{s}.json', 'w').write(json.dumps(L(s).model_dump(mode='json'), indent=1, "
         "sort_keys=True) + chr(10)) for s in V()]\" (with MED42_SLURM unset)")


def test_every_size_resolves_to_its_snapshot(monkeypatch):
    monkeypatch.delenv("MED42_SLURM", raising=False)
    assert sorted(p.stem for p in SNAPSHOT.glob("*.json")) == valid_sizes()
    for size in valid_sizes():
        want = json.loads((SNAPSHOT / f"{size}.json").read_text())
        assert load_params(size).model_dump(mode="json") == want, (
            f"{size} no longer resolves to tests/fixtures/params_snapshot/{size}.json. A deliberate params change "
            f"(a new key, a new value) rewrites the snapshots: {REGEN}")


def test_derived_sizes_hold_only_their_differences():
    """workshop, gpu_smoke and 70b name their parent, and every leaf they set differs from it."""
    import yaml

    from med42_utils.params.__main__ import flatten

    for size, parent in (("workshop", "8b"), ("gpu_smoke", "tiny"), ("70b", "8b")):
        raw = yaml.safe_load((repo_root() / "params" / f"{size}.yaml").read_text())
        assert raw.pop("inherits") == parent and raw.pop("size") == size
        theirs = flatten(load_params(parent).model_dump(mode="json"))
        same = [k for k, v in flatten(raw).items() if k in theirs and theirs[k] == v]
        assert not same, f"{size}.yaml repeats {parent}'s values: {same}"


def test_deep_merge_merges_mappings_and_replaces_the_rest():
    base = {"a": {"x": 1, "y": [1, 2]}, "b": 2}
    assert deep_merge(base, {"a": {"y": [3]}, "c": None}) == {"a": {"x": 1, "y": [3]}, "b": 2, "c": None}
    assert base == {"a": {"x": 1, "y": [1, 2]}, "b": 2}  # the parent is not modified


def _params_copy(tmp_path: Path) -> Path:
    shutil.copytree(repo_root() / "params", tmp_path / "params")
    return tmp_path


def test_cycle_and_unknown_parent_are_errors_naming_the_file(tmp_path):
    root = _params_copy(tmp_path)
    (root / "params" / "a.yaml").write_text("inherits: b\nsize: a\n")
    (root / "params" / "b.yaml").write_text("inherits: a\nsize: b\n")
    with pytest.raises(ParamsError, match=r"cycle: a\.yaml -> b\.yaml -> a\.yaml"):
        load_params("a", root=root)
    (root / "params" / "c.yaml").write_text("inherits: 9b\nsize: c\n")
    with pytest.raises(ParamsError, match=r"c\.yaml inherits unknown size '9b'; valid sizes: .*8b"):
        load_params("c", root=root)
    (root / "params" / "d.yaml").write_text("inherits: [8b, tiny]\nsize: d\n")
    with pytest.raises(ParamsError, match=r"d\.yaml: 'inherits' must name one size"):
        load_params("d", root=root)


def test_child_keys_are_validated_and_name_the_child_file(tmp_path):
    root = _params_copy(tmp_path)
    (root / "params" / "e.yaml").write_text("inherits: tiny\nsize: e\nsft:\n  lerning_rate: 1.0\n")
    with pytest.raises(ParamsError) as e:
        load_params("e", root=root)
    assert "unknown key 'sft.lerning_rate'" in str(e.value) and "e.yaml" in str(e.value)
    (root / "params" / "f.yaml").write_text("inherits: tiny\nsize: f\nsft:\n  max_steps: 7\n")
    p = load_params("f", root=root)
    assert p.size == "f" and p.sft.max_steps == 7 and p.sft.learning_rate == load_params("tiny").sft.learning_rate


def test_diff_command_prints_the_differences():
    rows = {k: (theirs, ours) for k, theirs, ours in differences("gpu_smoke", "tiny")}
    assert rows["model.torch_dtype"] == ("float32", "bfloat16") and len(rows) == 10
    out = subprocess.run([sys.executable, "-m", "med42_utils.params", "diff", "workshop", "8b"],
                         capture_output=True, text=True, check=True).stdout
    assert "sft.method: 'full' -> 'lora'" in out and "workshop differs from 8b in" in out
    bad = subprocess.run([sys.executable, "-m", "med42_utils.params", "diff", "9b", "8b"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown size '9b'" in bad.stderr
