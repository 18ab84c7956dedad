"""Compute nodes without internet: what a size needs (against the registries), fetching it into a fake
cache with fake fetchers, resuming after an interruption, and the offline error at every Hub load site."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from med42_utils import prefetch
from med42_utils.hub import HubUnreachableError, hub_load, is_unreachable
from med42_utils.params import load_params

MISSING = "med42-test/not-cached"   # a repo id no cache holds
FIX = "python -m med42_utils.prefetch --size"


def _ids(items, kind, role_prefix):
    return {n.repo_id for n in items if n.kind == kind and any(r.startswith(role_prefix) for r in n.roles)}


# ---------------------------------------------------------------- what a size needs
def test_8b_needs_every_registry_source_benchmark_preference_set_and_model():
    from med42_utils.benchmarks.data import BENCHMARKS
    from med42_utils.data.registry import REGISTRY
    from med42_utils.dpo.preference_data import parse_spec

    p = load_params("8b")
    items = prefetch.needs(p)
    hub_sources = {REGISTRY[k].hub_id for k, n in p.data.targets.items() if n and REGISTRY[k].hub_id}
    assert len(p.data.targets) == 22 and len(hub_sources) >= 15
    assert {n.repo_id for n in items if n.kind == "dataset" and any(r.startswith("SFT source") for r in n.roles)
            and not n.unavailable} == hub_sources
    assert not [n for n in items if n.unavailable]  # ACI-Bench and MTS-Dialog: their authors' files instead
    files = {r.removeprefix("SFT source "): n for n in items if n.kind == "files" for r in n.roles}
    assert set(files) == {k for k, s in REGISTRY.items() if s.hub_id is None} == {"aci_bench", "mts_dialog"}
    assert files["aci_bench"].repo_id == "https://github.com/wyim/aci-bench" and "b909b2b" in files["aci_bench"].detail
    assert _ids(items, "dataset", "benchmark") == {b.hub_id for b in BENCHMARKS.values()}
    assert _ids(items, "dataset", "DPO") == {parse_spec(s)[0].hub_id for r in p.dpo.rounds for s in r.datasets}
    assert _ids(items, "model", "base model") == {"meta-llama/Meta-Llama-3-8B-Instruct"}
    assert _ids(items, "model", "judge") == {p.judge.model}
    assert not _ids(items, "model", "reward")  # on-policy DPO is off
    # one entry per repo/config/split: the three SlimOrca submixes share OpenOrca's file
    orca = [n for n in items if n.repo_id == "Open-Orca/OpenOrca"]
    assert len(orca) == 1 and len(orca[0].roles) == 3
    assert len({n.key for n in items}) == len(items)
    on = prefetch.needs(load_params("8b", {"dpo.onpolicy.enabled": True}))
    assert _ids(on, "model", "reward") == {p.dpo.onpolicy.reward_model}


def test_workshop_and_tiny_needs():
    ws = prefetch.needs(load_params("workshop"))
    assert not [n for n in ws if n.unavailable]  # its targets leave out the sources with no Hub copy
    assert _ids(ws, "model", "judge") == {"prometheus-eval/prometheus-7b-v2.0"}
    assert prefetch.needs(load_params("tiny")) == [] and prefetch.needs(load_params("gpu_smoke")) == []


def test_models_are_fetched_without_metas_original_weights(monkeypatch):
    import huggingface_hub

    calls = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo, **kw: calls.append((repo, kw)) or "/x")
    base = next(n for n in prefetch.needs(load_params("8b")) if "base model" in n.roles)
    base.fetch()
    repo, kw = calls[0]
    assert repo == "meta-llama/Meta-Llama-3-8B-Instruct"
    assert "*.safetensors" in kw["allow_patterns"] and "original/*" in kw["ignore_patterns"]


# ---------------------------------------------------------------- fetching, sizes, resuming
class FakeHub:
    """Fake fetchers writing into a fake cache; `fail_on` makes one item fail once (a dropped connection)."""

    def __init__(self, root: Path, fail_on: str | None = None):
        self.root, self.fail_on, self.calls = root, fail_on, []

    def fetch(self, repo_id: str, nbytes: int):
        def run():
            self.calls.append(repo_id)
            if repo_id == self.fail_on:
                self.fail_on = None
                raise ConnectionError(f"Couldn't reach '{repo_id}' on the Hub")
            f = self.root / "hub" / repo_id.replace("/", "--") / "blob"
            if not f.exists():  # like huggingface_hub: a finished file is not fetched again
                f.parent.mkdir(parents=True, exist_ok=True)
                f.write_bytes(b"x" * nbytes)
        return run


def _fake_needs(fake: FakeHub):
    return [
        prefetch.Need("model", "org/model", ["base model"], fetch=fake.fetch("org/model", 5_000_000)),
        prefetch.Need("dataset", "org/data-a", ["SFT source a"], fetch=fake.fetch("org/data-a", 2_000)),
        prefetch.Need("dataset", "org/data-b", ["benchmark b"], fetch=fake.fetch("org/data-b", 3_000)),
        prefetch.Need("dataset", "Local-Only", ["SFT source c"], unavailable="no Hub copy"),
    ]


def test_fetch_prints_sizes_and_resumes_after_an_interruption(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_SECRET_TOKEN_123")
    fake = FakeHub(tmp_path, fail_on="org/data-a")
    monkeypatch.setattr(prefetch, "cache_dirs", lambda: [tmp_path / "hub", tmp_path / "datasets"])
    monkeypatch.setattr(prefetch, "needs", lambda params: _fake_needs(fake))
    lines: list[str] = []
    first = prefetch.prefetch(load_params("tiny"), out=lines.append)
    text = "\n".join(lines)
    assert first == {"fetched": ["org/model", "org/data-b"], "cached": [], "failed": ["org/data-a"],
                     "unavailable": ["Local-Only"]}
    assert "fetched 5.0 MB" in text and "fetched 3.0 KB" in text and "FAILED: ConnectionError" in text
    assert "run the same command again" in text and "Local-Only" in text
    # the re-run fetches only what is missing; finished items are not fetched again
    lines.clear()
    fake.calls.clear()
    second = prefetch.prefetch(load_params("tiny"), out=lines.append)
    assert second["fetched"] == ["org/data-a"] and second["cached"] == ["org/model", "org/data-b"]
    assert second["failed"] == [] and "fetched 2.0 KB" in "\n".join(lines)
    assert prefetch.folder_bytes([tmp_path / "hub"]) == 5_005_000
    assert "hf_SECRET_TOKEN_123" not in text + "\n".join(lines)


def test_a_cached_model_is_found_by_the_real_snapshot_download(tmp_path, monkeypatch):
    """huggingface_hub's own snapshot_download, offline, on a fake cache that holds the model: no fetch, its path."""
    from huggingface_hub import constants

    repo = "med42-test/cached-model"
    folder = tmp_path / "hub" / "models--med42-test--cached-model"
    snap = folder / "snapshots" / ("a" * 40)
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("a" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert Path(prefetch._snapshot(repo)()) == snap
    with pytest.raises(Exception) as e:  # a model the cache lacks: the offline error the stages translate
        prefetch._snapshot(MISSING)()
    assert is_unreachable(e.value)


def test_cli_lists_offline_and_refuses_to_fetch_offline():
    r = subprocess.run([sys.executable, "-m", "med42_utils.prefetch", "--size", "8b", "--list"], capture_output=True, text=True)
    assert r.returncode == 0 and "cais/mmlu" in r.stdout and "files   https://github.com/wyim/aci-bench" in r.stdout
    assert "NOT ON THE HUB" not in r.stdout  # every 8b source has a published copy to fetch
    r = subprocess.run([sys.executable, "-m", "med42_utils.prefetch", "--size", "8b"], capture_output=True, text=True)
    assert r.returncode == 2 and "HF_HUB_OFFLINE is set" in r.stderr
    r = subprocess.run([sys.executable, "-m", "med42_utils.prefetch", "--size", "tiny"], capture_output=True, text=True)
    assert r.returncode == 0 and "nothing" in r.stdout


def test_dest_points_every_cache_there(tmp_path, monkeypatch):
    for var in ("HF_HOME", "HF_HUB_CACHE", "HF_DATASETS_CACHE"):
        monkeypatch.setenv(var, "/elsewhere")
    d = prefetch._use_dest(str(tmp_path / "cache"))
    import os

    assert os.environ["HF_HOME"] == str(d) and os.environ["HF_HUB_CACHE"] == str(d / "hub")
    assert os.environ["HF_DATASETS_CACHE"] == str(d / "datasets") and d.is_dir()
    # the CLI moves the caches before anything imports datasets or huggingface_hub (they read them at import)
    code = ("import sys; from med42_utils import prefetch; from med42_utils.params import load_params; "
            "prefetch.needs(load_params('8b')); print(sorted({'datasets', 'huggingface_hub'} & set(sys.modules)))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.strip() == "[]", r.stderr


# ---------------------------------------------------------------- the offline error at each load site
def _assert_names(err, name, size="<size>"):
    msg = str(err.value)
    assert name in msg and f"{FIX} {size}" in msg and "HF_HUB_OFFLINE=1" in msg


def test_sft_source_offline():
    from med42_utils.data.loading import load_source
    from med42_utils.data.registry import REGISTRY

    load_params("8b")
    for key in ("mmlu", "stackexchange", "headqa"):  # plain; folder by folder; the Hub's parquet export
        spec = dataclasses.replace(REGISTRY[key], hub_id=MISSING)
        with pytest.raises(HubUnreachableError) as e:
            load_source(spec, "hub")
        _assert_names(e, MISSING, "8b")
        assert f"SFT source {key}" in str(e.value)


def test_01_at_8b_offline_names_the_benchmark_and_the_command():
    """Today's raw `ConnectionError: Couldn't reach 'cais/mmlu'` of 01 at 8b, now with the fix."""
    from med42_utils.data.stage import evaluated_benchmark_questions

    with pytest.raises(HubUnreachableError) as e:
        evaluated_benchmark_questions(load_params("8b"))
    from med42_utils.benchmarks.data import BENCHMARKS

    msg = str(e.value)
    assert "benchmark" in msg and "is not in this machine's Hugging Face cache" in msg
    assert any(f"'{b.hub_id}'" in msg for b in BENCHMARKS.values())
    _assert_names(e, "benchmark", "8b")


def test_preferences_and_questions_offline():
    from med42_utils.dpo.preference_data import load_raw
    from med42_utils.judging.questions import load_questions

    load_params("workshop")
    with pytest.raises(HubUnreachableError) as e:
        load_raw("snorkel:train_iteration_2", "hub")
    _assert_names(e, "snorkelai/Snorkel-Mistral-PairRM-DPO-Dataset", "workshop")
    with pytest.raises(HubUnreachableError) as e:
        load_questions("hub", MISSING)
    _assert_names(e, MISSING, "workshop")


def test_models_offline():
    from med42_utils.benchmarks.run import make_lm
    from med42_utils.dpo.scorers import RewardModelScorer
    from med42_utils.models import load_model, load_tokenizer

    p = load_params("8b")
    for load in (load_tokenizer, load_model):
        with pytest.raises(HubUnreachableError) as e:
            load(p, MISSING)
        _assert_names(e, MISSING, "8b")
    with pytest.raises(HubUnreachableError) as e:
        RewardModelScorer.load(p, MISSING)
    _assert_names(e, MISSING, "8b")
    assert "reward model" in str(e.value)
    with pytest.raises(HubUnreachableError) as e:
        make_lm(load_params("8b", {"eval.backend": "hf"}), MISSING)
    _assert_names(e, MISSING, "8b")


def test_other_errors_pass_unchanged(tmp_path):
    from med42_utils.models import load_tokenizer

    with pytest.raises(OSError) as e:
        load_tokenizer(load_params("tiny"), str(tmp_path / "no-such-model"))
    assert not isinstance(e.value, HubUnreachableError)
    with pytest.raises(ValueError, match="bad row"):
        with hub_load("dataset", "x/y"):
            raise ValueError("bad row")
    assert not is_unreachable(ValueError("x")) and is_unreachable(ConnectionError("Couldn't reach 'x'"))


def test_every_real_fetcher_is_wired_and_fails_cleanly_offline(tmp_path, monkeypatch):
    """The real needs of workshop, fetched offline: every item runs its real loader and fails as unreachable."""
    monkeypatch.setattr(prefetch, "cache_dirs", lambda: [tmp_path])
    lines: list[str] = []
    res = prefetch.prefetch(load_params("workshop"), out=lines.append)
    items = prefetch.needs(load_params("workshop"))
    assert len(res["failed"]) == len(items) and not res["fetched"]
    fails = [line for line in lines if "FAILED" in line]
    assert len(fails) == len(items) and all("the Hub cannot be reached" in line for line in fails), fails


def test_parquet_export_sources_load_offline_from_the_prefetched_copy(tmp_path, monkeypatch):
    """headqa/pubhealth are read from the Hub's parquet export through an hf:// glob, which needs the Hub's API
    even when cached; offline, the loader reads the copy prefetch put in the hub cache instead."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from huggingface_hub import constants

    from med42_utils.data.loading import load_source
    from med42_utils.data.registry import REGISTRY

    spec = dataclasses.replace(REGISTRY["headqa"], hub_id="med42-test/exported")
    assert spec.parquet_export
    repo = tmp_path / "hub" / "datasets--med42-test--exported"
    commit = "b" * 40
    part = repo / "snapshots" / commit / (spec.config or "default") / spec.split
    part.mkdir(parents=True)
    row = {f: "x" for f in spec.required}
    pq.write_table(pa.Table.from_pylist([row, row]), part / "0000.parquet")
    (repo / "refs" / "refs" / "convert").mkdir(parents=True)
    (repo / "refs" / "refs" / "convert" / "parquet").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    ds = load_source(spec, "hub")
    assert len(ds) == 2 and set(spec.required) <= set(ds.column_names)
    # not prefetched: the offline error naming it and the command
    with pytest.raises(HubUnreachableError) as e:
        load_source(dataclasses.replace(spec, hub_id=MISSING), "hub")
    assert MISSING in str(e.value) and FIX in str(e.value)
    # and prefetch fetches the export's files for these sources
    calls = []
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo_id, **kw: calls.append((repo_id, kw)))
    monkeypatch.setattr("med42_utils.data.loading.load_source", lambda spec, mode: None)
    need = next(n for n in prefetch.needs(load_params("8b")) if "SFT source headqa" in n.roles)
    need.fetch()
    assert calls == [(REGISTRY["headqa"].hub_id, {"repo_type": "dataset", "revision": "refs/convert/parquet",
                                                  "allow_patterns": [f"{spec.config or 'default'}/{spec.split}/*.parquet"]})]
