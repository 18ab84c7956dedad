"""Local source folders laid out as their authors ship them, test files included: in both modes (local, and hub
with the published files found under data.local_dir) exactly the training rows load, and every other data file
of the same type is named as ignored. Row contents are made up; file names, folders, headers and row counts are
those of the published repositories (ACI-Bench at b909b2b, MTS-Dialog at 3ff0801, PUBHEALTH.zip)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from fakehub import use_caches, write_csv
from med42_utils.data.loading import (
    SAMPLES_DIR, SchemaMismatchError, SourceLoadError, listed_files, load_source_traced, local_files, name_words,
    training_named,
)
from med42_utils.data.registry import REGISTRY, get_source

ACI_FILES = {  # data/challenge_data/ of github.com/wyim/aci-bench: file -> encounters (README: 67/20/40/40/40)
    "train.csv": 67, "valid.csv": 20, "clinicalnlp_taskB_test1.csv": 40, "clinicalnlp_taskC_test2.csv": 40,
    "clef_taskC_test3.csv": 40,
}
ACI_METADATA = ("clinicalnlp_taskB_test1_metadata.csv", "clinicalnlp_taskC_test2_metadata.csv",
                "clef_taskC_test3_metadata.csv")
MTS_FILES = {  # github.com/abachaa/MTS-Dialog at 3ff0801: file -> pairs (counted in the registry's evidence)
    "Main-Dataset/MTS-Dialog-TrainingSet.csv": 1201, "Main-Dataset/MTS-Dialog-ValidationSet.csv": 100,
    "Main-Dataset/MTS-Dialog-TestSet-1-MEDIQA-Chat-2023.csv": 200,
    "Main-Dataset/MTS-Dialog-TestSet-2-MEDIQA-Sum-2023.csv": 200,
    "Augmented-Data/MTS-Dialog-Augmented-TrainingSet-1-En-FR-EN-2402-Pairs.csv": 2402,
    "Augmented-Data/MTS-Dialog-Augmented-TrainingSet-2-EN-ES-EN-2402-Pairs.csv": 2402,
    "Augmented-Data/MTS-Dialog-Augmented-TrainingSet-3-FR-and-ES-3603-Pairs-final.csv": 3603,
}


def _sample(key: str) -> list[dict]:
    return [json.loads(x) for x in (SAMPLES_DIR / f"{key}.jsonl").read_text().splitlines() if x.strip()]


def _aci(folder: Path, metadata: bool) -> None:
    n = 0
    for name, count in ACI_FILES.items():
        rows = [{"dataset": "aci", "encounter_id": f"D2N{n + i + 1:03d}", "dialogue": f"[doctor] {name} {i}",
                 "note": f"note of {name} {i}"} for i in range(count)]
        write_csv(folder / name, rows)
        n += count
    if metadata:
        for name in ACI_METADATA:
            write_csv(folder / name, [{"dataset": "aci", "encounter_id": "D2N168", "id": "VA013", "doctor_name": "",
                                       "patient_gender": "female", "patient_age": "28", "patient_firstname": "Diane",
                                       "patient_familyname": "Baker", "cc": "ER follow-up", "2nd_complaints": ""}])


def _mts(folder: Path, flat: bool) -> None:
    for rel, count in MTS_FILES.items():
        rows = [{"ID": i, "section_header": "GENHX", "section_text": f"{Path(rel).stem} {i}",
                 "dialogue": f"Doctor: hello {i}"} for i in range(count)]
        write_csv(folder / (Path(rel).name if flat else rel), rows)
    # the correlation study's file has other columns (and a validation set's summaries)
    write_csv(folder / ("" if flat else "Correlation-Study") / "MTS-Dialog-Automatic-Summaries-ValidationSet.csv",
              [{"ID": 0, "system": "bart", "summary": "s"}])


def _loaded(mode, tmp_path, monkeypatch, key):
    use_caches(monkeypatch, tmp_path / "hf")  # empty download caches, offline: only the local folder counts
    return load_source_traced(get_source(key), mode, tmp_path / "local")


@pytest.mark.parametrize("mode", ["local", "hub"])
@pytest.mark.parametrize("layout", ["data/challenge_data", "."])
@pytest.mark.parametrize("metadata", [True, False])
def test_aci_bench_as_published_loads_train_and_valid_only(tmp_path, monkeypatch, mode, layout, metadata):
    """The 207-row case of issue 26 (challenge_data copied without its metadata CSVs) and the cast-error case
    (with them) both load the 87 train+valid encounters and name the test sets (and metadata) as ignored."""
    _aci(tmp_path / "local" / "aci_bench" / layout, metadata)
    got = _loaded(mode, tmp_path, monkeypatch, "aci_bench")
    ids = got.dataset["encounter_id"]
    assert len(ids) == 87 and sorted(ids) == [f"D2N{i:03d}" for i in range(1, 88)]
    tests = ["clinicalnlp_taskB_test1.csv", "clinicalnlp_taskC_test2.csv", "clef_taskC_test3.csv"]
    assert sorted(Path(f).name for f in got.ignored) == sorted(tests + (list(ACI_METADATA) if metadata else []))
    assert "wyim/aci-bench@b909b2b" in got.origin and "valid.csv" in got.origin


@pytest.mark.parametrize("mode", ["local", "hub"])
@pytest.mark.parametrize("flat", [False, True])
def test_mts_dialog_as_published_loads_the_augmented_training_set_only(tmp_path, monkeypatch, mode, flat):
    _mts(tmp_path / "local" / "mts_dialog", flat)
    got = _loaded(mode, tmp_path, monkeypatch, "mts_dialog")
    assert len(got.dataset) == 3603
    assert {t.rsplit(" ", 1)[0] for t in got.dataset["section_text"]} == {
        "MTS-Dialog-Augmented-TrainingSet-3-FR-and-ES-3603-Pairs-final"}
    assert len(got.ignored) == 7 and any("TestSet-1-MEDIQA-Chat-2023" in f for f in got.ignored)


def test_outcome_table_names_the_ignored_files(tmp_path, monkeypatch, tiny_params):
    from med42_utils.data.curate import curate

    _aci(tmp_path / "local" / "aci_bench", metadata=False)
    use_caches(monkeypatch, tmp_path / "hf")
    d = tiny_params.data.model_copy(update={"source": "local", "local_dir": str(tmp_path / "local")})
    frame = curate(d, {}, sources=["aci_bench"]).outcome_frame()
    assert frame.loc["aci_bench", "rows read"] == 87
    assert frame.loc["aci_bench", "ignored files"] == (
        "clef_taskC_test3.csv, clinicalnlp_taskB_test1.csv, clinicalnlp_taskC_test2.csv")


def test_a_published_folder_missing_a_listed_file_is_refused_with_what_it_holds(tmp_path):
    folder = tmp_path / "aci_bench"
    _aci(folder, metadata=False)
    (folder / "valid.csv").unlink()
    with pytest.raises(SourceLoadError, match=r"'aci_bench'.*lacks data/challenge_data/valid\.csv.*found "
                       r"clef_taskC_test3\.csv, .*train\.csv.*Fix: put valid\.csv there"):
        local_files(tmp_path, get_source("aci_bench"))


# ---------------------------------------------------------------- PUBHEALTH's TSV, as health_fact.py reads it
PUBHEALTH_HEADER = ["claim_id", "claim", "date_published", "explanation", "fact_checkers", "main_text", "sources",
                    "label", "subjects"]


def _tsv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join("\t".join(r) for r in [header] + rows) + "\n", encoding="utf-8")


def _pubhealth(folder: Path, header=PUBHEALTH_HEADER) -> None:
    row = lambda i, label: [str(i), f"claim {i}", "2019", f"because {i}", "x", "text", "", label, "Health"]  # noqa: E731
    _tsv(folder / "train.tsv", header, [row(1, "true"), row(2, "mixture"), row(3, "nan"), row(4, "false")])
    _tsv(folder / "dev.tsv", header, [row(5, "true")])
    _tsv(folder / "test.tsv", [""] + header, [[str(0)] + row(6, "true")])  # test.tsv: one more column, first


@pytest.mark.parametrize("mode", ["local", "hub"])
def test_pubhealth_tsv_is_read_by_position_and_dev_test_ignored(tmp_path, monkeypatch, mode):
    # a header whose names differ from the Hub's: health_fact.py skips it and reads columns by position
    _pubhealth(tmp_path / "local" / "pubhealth", header=["claim ID", "claim", "date published", "explanation",
                                                         "fact checkers", "main text", "sources", "label", "subjects"])
    got = _loaded(mode, tmp_path, monkeypatch, "pubhealth")
    assert got.dataset["claim"] == ["claim 1", "claim 2", "claim 3", "claim 4"]
    assert got.dataset["label"] == [2, 1, -1, 0]  # ('false', 'mixture', 'true', 'unproven'); 'nan' -> '' -> -1
    assert got.dataset["explanation"][0] == "because 1"
    assert sorted(got.ignored) == ["dev.tsv", "test.tsv"]
    if mode == "hub":
        assert "train.tsv" in got.fallback


def test_pubhealth_row_with_too_many_fields_names_the_line(tmp_path):
    folder = tmp_path / "pubhealth"
    _tsv(folder / "train.tsv", PUBHEALTH_HEADER, [["1", "c", "d", "e", "f", "m", "s", "true", "H"],
                                                  ["2", "c", "d", "e", "f", "m", "s", "true", "H", "extra"]])
    with pytest.raises(SchemaMismatchError, match=r"train\.tsv line 3 has 10 tab-separated fields"):
        load_source_traced(get_source("pubhealth"), "local", tmp_path)


# ---------------------------------------------------------------- sources with no list of files: named splits only
def test_split_words_in_the_sources_own_spellings():
    assert name_words("Main-Dataset/MTS-Dialog-TestSet-1-MEDIQA-Chat-2023.csv")[:6] == [
        "main", "dataset", "mts", "dialog", "test", "set"]
    medqa, mmlu, ultra = get_source("medqa"), get_source("mmlu"), get_source("ultrachat")
    assert training_named(medqa, "phrases_no_exclude_train.jsonl")
    assert not training_named(medqa, "phrases_no_exclude_test.jsonl")
    assert not training_named(medqa, "dev.jsonl") and not training_named(medqa, "train_dev.jsonl")
    assert training_named(medqa, "MTS-Dialog-TrainingSet.csv") and not training_named(medqa, "data.jsonl")
    assert training_named(mmlu, "all/validation-00000-of-00001.parquet")  # MMLU's own split is its validation
    assert not training_named(mmlu, "all/test-00000-of-00001.parquet")
    assert not training_named(mmlu, "all/auxiliary_train-00000-of-00001.parquet")
    assert training_named(ultra, "data/train_sft-00000-of-00003.parquet")
    assert not training_named(ultra, "data/test_sft-00000-of-00001.parquet")
    assert not training_named(ultra, "data/train_gen-00000-of-00003.parquet")


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        import pandas as pd

        pd.DataFrame(rows).to_parquet(path)
    elif path.suffix == ".json":
        path.write_text(json.dumps(rows))
    elif path.suffix == ".csv":
        write_csv(path, rows)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.mark.parametrize("key", [k for k in REGISTRY if k != "pubhealth"])
def test_every_source_folder_with_test_dev_valid_files_loads_only_its_training_files(tmp_path, key):
    """Every registry source, its folder holding its training file(s) (the listed ones, else one named after its
    split) beside test/dev/valid/validation files in its schema: only the training rows load, the rest is named."""
    spec = get_source(key)
    rows = _sample(key)
    folder = tmp_path / key
    listed = listed_files(spec)
    train = list(listed) if listed else [f"{spec.data_dirs[0] + '/' if spec.data_dirs else ''}{spec.split}.jsonl"]
    for rel in train:
        _write(folder / rel, rows)
    ext = Path(train[0]).suffix
    held = [f"{w}{ext}" for w in ("test", "dev", "valid", "validation") if w not in spec.split.split("+")
            and (folder / f"{w}{ext}") not in [folder / r for r in train]]
    for rel in held:
        _write(folder / rel, rows[:1])
    got = load_source_traced(spec, "local", tmp_path)
    assert len(got.dataset) == len(rows) * len(train)
    assert sorted(got.ignored) == sorted(held)


def test_a_folder_with_no_file_named_as_its_split_is_refused_with_the_names(tmp_path):
    _write(tmp_path / "medical_flashcards" / "medical_meadow_wikidoc_medical_flashcards.json",
           _sample("medical_flashcards"))
    _write(tmp_path / "medical_flashcards" / "test.json", _sample("medical_flashcards"))
    with pytest.raises(SourceLoadError, match=r"'medical_flashcards': no file in .* named as its 'train' split "
                       r"\(found medical_meadow_wikidoc_medical_flashcards\.json, test\.json\).*Fix: name"):
        load_source_traced(get_source("medical_flashcards"), "local", tmp_path)


def test_config_folder_and_split_pick_mmlu_validation_only(tmp_path):
    rows = _sample("mmlu")
    for rel in ("all/validation-00000-of-00001.parquet", "all/test-00000-of-00001.parquet",
                "all/dev-00000-of-00001.parquet", "all/auxiliary_train-00000-of-00001.parquet",
                "anatomy/validation-00000-of-00001.parquet"):
        _write(tmp_path / "mmlu" / rel, rows)
    got = load_source_traced(get_source("mmlu"), "local", tmp_path)
    assert len(got.dataset) == len(rows) and "all/validation" in got.origin
    assert len(got.ignored) == 4


def test_training_files_with_different_columns_name_the_file_not_a_cast_error(tmp_path):
    rows = _sample("medqa")
    _write(tmp_path / "medqa" / "train.jsonl", rows)
    _write(tmp_path / "medqa" / "train_metadata.jsonl", [{"id": 1, "source": "x"}])
    with pytest.raises(SchemaMismatchError, match=r"'medqa': its files do not share one schema: .*"
                       r"train_metadata\.jsonl \(columns id, source\).*Fix: keep only the train file"):
        load_source_traced(get_source("medqa"), "local", tmp_path)


HUB_LAYOUTS = {  # Hub repos as their files are named (registry evidence), copied whole into <local_dir>/<key>/
    "medqa": (["phrases_no_exclude_train.jsonl"], ["phrases_no_exclude_test.jsonl"]),
    "ultrachat": (["data/train_sft-00000-of-00003.parquet", "data/train_sft-00001-of-00003.parquet"],
                  ["data/test_sft-00000-of-00001.parquet", "data/train_gen-00000-of-00003.parquet",
                   "data/test_gen-00000-of-00001.parquet"]),
    "headqa": (["en/train.parquet"], ["en/test.parquet", "en/validation.parquet", "es/train.parquet",
                                      "es/test.parquet"]),
    "pubmedqa": (["pqa_labeled/train-00000-of-00001.parquet"], ["pqa_artificial/train-00000-of-00001.parquet",
                                                                 "pqa_unlabeled/train-00000-of-00001.parquet"]),
    "niv2": (["train/task001_quoref_question_generation.jsonl", "train/task1195_disflqa_disfluent_to_fluent.jsonl"],
             ["test/task001_quoref_question_generation.jsonl"]),
    "medmcqa": (["data/train-00000-of-00001.parquet"], ["data/validation-00000-of-00001.parquet",
                                                        "data/test-00000-of-00001.parquet"]),
    "stackexchange": ([f"{d}/train-00000-of-00001.parquet" for d in get_source("stackexchange").data_dirs[:2]]
                      + ["data/medicalsciences.stackexchange.com/train-00000-of-00001.parquet"],
                      ["data/askubuntu.com/train-00000-of-00005.parquet"]),
}


@pytest.mark.parametrize("key", sorted(HUB_LAYOUTS))
def test_hub_repositories_copied_whole_load_their_split_only(tmp_path, key):
    train, other = HUB_LAYOUTS[key]
    rows = _sample(key)
    for rel in train:
        _write(tmp_path / key / rel, rows)
    for rel in other:
        _write(tmp_path / key / rel, rows[:1])
    got = load_source_traced(get_source(key), "local", tmp_path)
    assert len(got.dataset) == len(rows) * len(train)
    assert sorted(got.ignored) == sorted(other)
