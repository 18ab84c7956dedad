"""01 at 8b with the data as it is published, offline: every source from a fake Hub cache written in its published
layout (tests/fakehub.py), the loading-script sources with their parquet export missing (so their fallbacks are
used), ACI-Bench and MTS-Dialog as their authors' CSV files; then one table says each source's outcome."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from fakehub import use_caches, write_csv, write_datasets_cache, write_hub_files
from med42_utils.data.loading import SAMPLES_DIR, load_source_traced, source_plan
from med42_utils.data.registry import REGISTRY
from med42_utils.params import load_params

BENCH = {"medqa": ["A 45-year-old man presents with crushing chest pain radiating to the left arm and diaphoresis "
                   "for two hours; which enzyme rises first after myocardial injury of this kind?"]}


def _sample(key: str) -> list[dict]:
    return [json.loads(x) for x in (SAMPLES_DIR / f"{key}.jsonl").read_text().splitlines() if x.strip()]


def _publish_everything(root: Path, local: Path, monkeypatch, missing_exports=("headqa", "pubhealth")):
    """The caches a prefetch would leave, plus the original files a user puts in data.local_dir."""
    dcache, hcache = use_caches(monkeypatch, root)
    orca = []
    for key, spec in REGISTRY.items():
        rows = _sample(key)
        if spec.hub_id is None:
            continue
        if spec.parquet_export:
            if key not in missing_exports:
                write_hub_files(hcache, spec.hub_id, {f"{spec.config or 'default'}/{spec.split}/0000.parquet": rows},
                                revision="refs/convert/parquet")
            continue
        if spec.hub_id == "Open-Orca/OpenOrca":
            orca += rows
            continue
        if spec.data_dirs:  # one cached load per StackExchange site folder, as the loader asks for them
            for i, d in enumerate(spec.data_dirs):
                write_datasets_cache(dcache, spec.hub_id, {spec.split: rows[i::len(spec.data_dirs)] or rows[:1]},
                                     spec.config, data_dir=d)
            continue
        kw = {"data_files": spec.data_files} if spec.data_files else {}
        write_datasets_cache(dcache, spec.hub_id, {spec.split: rows}, spec.config, **kw)
    write_datasets_cache(dcache, "Open-Orca/OpenOrca", {"train": orca}, data_files="1M-GPT4-Augmented.parquet")
    # HeadQA's export is gone: EleutherAI's plain parquet copy (lm-eval's headqa_en data) is in the hub cache
    write_hub_files(hcache, "EleutherAI/headqa", {"en/train.parquet": _sample("headqa")})
    # Pubhealth's export is gone: the original PUBHEALTH train.tsv (label as a word) in data.local_dir/pubhealth/
    words = ("false", "mixture", "true", "unproven")
    tsv = [{**r, "label": words[r["label"]] if 0 <= r["label"] < 4 else ""} for r in _sample("pubhealth")]
    write_csv(local / "pubhealth" / "train.tsv", tsv, delimiter="\t")
    # ACI-Bench as a clone of github.com/wyim/aci-bench; MTS-Dialog as the one CSV, flat
    aci = _sample("aci_bench")
    write_csv(local / "aci_bench" / "data" / "challenge_data" / "train.csv", aci[:-2])
    write_csv(local / "aci_bench" / "data" / "challenge_data" / "valid.csv", aci[-2:])
    mts = [{"ID": i, **{k: r[k] for k in ("section_header", "section_text", "dialogue")}}
           for i, r in enumerate(_sample("mts_dialog"))]
    write_csv(local / "mts_dialog" / Path(REGISTRY["mts_dialog"].published.files[0]).name, mts)


def test_01_at_8b_reports_every_source_with_fallbacks_and_official_files(tmp_path, monkeypatch):
    from med42_utils.data.stage import run_curation

    local = tmp_path / "local"
    _publish_everything(tmp_path / "hf", local, monkeypatch)
    params = load_params("8b", {"data.local_dir": str(local)})
    assert params.data.source == "hub" and params.data.targets["aci_bench"] == 87

    plan = {r["key"]: r for r in source_plan(params.data)}  # before anything is read or downloaded
    assert len(plan) == 22 and all(r["status"] == "ready" for r in plan.values()), plan
    assert plan["headqa"]["from"].startswith("fallback EleutherAI/headqa")
    assert "pubhealth/train.tsv" in plan["pubhealth"]["from"] or "original files" in plan["pubhealth"]["from"]
    assert "UNRESOLVED" in plan["opengpt"]["how"]

    manifest = run_curation(params, tmp_path / "out", benchmarks=BENCH)
    out = manifest["sources"]
    assert set(out) == set(REGISTRY) and all(o["status"].startswith("loaded") for o in out.values()), \
        {k: o["reason"] for k, o in out.items() if o["reason"]}
    assert out["headqa"]["status"] == "loaded (fallback)" and out["headqa"]["fallback"].startswith("EleutherAI/headqa")
    assert "parquet export" in out["headqa"]["fallback"]  # says why the primary copy was not used
    assert out["pubhealth"]["status"] == "loaded (fallback)" and "train.tsv" in out["pubhealth"]["origin"]
    assert out["aci_bench"]["rows"] == len(_sample("aci_bench")) and "train.csv" in out["aci_bench"]["origin"]
    assert "wyim/aci-bench@b909b2b" in out["aci_bench"]["origin"]
    assert out["medmcqa"]["origin"].startswith("openlifescienceai/medmcqa")

    import pandas as pd

    table = pd.read_csv(tmp_path / "out" / "sources.csv", index_col="key")
    assert len(table) == 22
    # the shortfall against Table 5 is shown, with why it is expected where the published data cannot reach it
    assert table.loc["medmcqa", "short of table 5"] == 180_462 - table.loc["medmcqa", "kept"]
    assert "10,178" in table.loc["medqa", "note"] and "UNRESOLVED" in table.loc["opengpt", "note"]
    # pubhealth's label words came back as the Hub copy's indices: the invalid ('') row is counted, not guessed
    assert any(d["source"] == "pubhealth" and d["reason"] == "invalid_label" for d in manifest["drops"]) == \
        any(r["label"] not in range(4) for r in _sample("pubhealth"))


def test_a_failed_source_is_reported_and_the_rest_go_on_unless_required(tmp_path, monkeypatch):
    """MTS-Dialog's files are nowhere and the machine is offline: 01 lists it as failed with the fix and curates
    the others; when data.required names it, 01 stops before reading anything, saying how to get it."""
    from med42_utils.data.curate import RequiredSourceError, curate

    local = tmp_path / "local"
    _publish_everything(tmp_path / "hf", local, monkeypatch)
    for f in (local / "mts_dialog").iterdir():
        f.unlink()
    keep = ["medqa", "mts_dialog", "sciq"]
    params = load_params("8b", {"data.local_dir": str(local)})
    plan = {r["key"]: r for r in source_plan(params.data)}
    assert plan["mts_dialog"]["status"] == "missing" and "github.com/abachaa/MTS-Dialog" in plan["mts_dialog"]["how"]
    result = curate(params.data, BENCH, sources=keep)
    frame = result.outcome_frame()
    assert frame.loc["mts_dialog", "status"] == "failed" and "prefetch" in frame.loc["mts_dialog", "note"]
    assert frame.loc["mts_dialog", "kept"] == 0 and frame.loc["mts_dialog", "short of table 5"] == 2_602
    assert frame.loc["medqa", "status"] == "loaded" and frame.loc["medqa", "kept"] > 0

    calls = []
    required = load_params("8b", {"data.local_dir": str(local), "data.required": ["mts_dialog"]})
    with pytest.raises(RequiredSourceError, match=r"mts_dialog: .*offline.*MTS-Dialog-Augmented-TrainingSet-3"):
        curate(required.data, BENCH, sources=keep)
    # a custom loader skips the plan, so the stop after loading is what shows: every outcome in the message
    def loader(spec, mode, local_dir):
        calls.append(spec.key)
        return load_source_traced(spec, mode, local_dir)
    with pytest.raises(RequiredSourceError, match=r"(?s)mts_dialog failed.*every source's outcome.*medqa\s+loaded"):
        curate(required.data, BENCH, sources=keep, loader=loader)
    assert sorted(calls) == keep  # the others were still tried, so the table is complete
    with pytest.raises(ValueError, match="data.required names unknown source"):
        curate(load_params("8b", {"data.required": ["nope"]}).data, BENCH, sources=keep)


def test_published_files_are_downloaded_once_into_the_cache(tmp_path, monkeypatch):
    """prefetch's fetcher for ACI-Bench, against a loopback HTTP server standing in for raw.githubusercontent.com
    (the real download code; the internet is not reachable here): files land in <HF_HOME>/med42_files/<key>/,
    a second run downloads nothing, and 01 then reads them."""
    import dataclasses
    import functools
    import http.server
    import threading

    from huggingface_hub import constants

    from med42_utils import prefetch
    from med42_utils.data import loading

    served = tmp_path / "served"
    aci = _sample("aci_bench")
    spec = REGISTRY["aci_bench"]
    write_csv(served / spec.published.files[0], aci[:-2])
    write_csv(served / spec.published.files[1], aci[-2:])
    hits = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a):
            hits.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        pub = dataclasses.replace(spec.published, raw_base=f"http://127.0.0.1:{server.server_address[1]}/")
        local = dataclasses.replace(spec, published=pub)
        monkeypatch.setitem(REGISTRY, "aci_bench", local)
        monkeypatch.setattr(constants, "HF_HOME", str(tmp_path / "hf"))
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        need = next(n for n in prefetch.needs(load_params("8b")) if n.kind == "files" and "SFT source aci_bench" in n.roles)
        files = need.fetch()
        assert [f.parent for f in files] == [tmp_path / "hf" / "med42_files" / "aci_bench"] * 2 and len(hits) == 2
        need.fetch()
        assert len(hits) == 2  # already there: nothing fetched again
        got = loading.load_source_traced(local, "hub")
        assert len(got.dataset) == len(aci) and "med42_files/aci_bench/train.csv" in got.origin
    finally:
        server.shutdown()
