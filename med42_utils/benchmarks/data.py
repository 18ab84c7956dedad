"""The seven benchmarks of the paper's Table 4: where each lives, its real schema, and one normalized form.

Every benchmark loads three ways with the same code: from the Hugging Face Hub (default for 8b/70b),
from a local folder, or from the samples bundled in the package (size tiny, tests). A local folder
holds, per benchmark, either a JSON-lines export of the Hub copy, `<folder>/<key>.jsonl` (the Hub's
field names and types, see BENCHMARKS[key].fields), or the benchmark's official files as published,
in `<folder>/<key>/` (see BENCHMARKS[key].layouts and the README): MMLU's header-less
`<subject>_test.csv`, MMLU-Pro's test parquet/JSONL, MedMCQA's `dev.json`, MedQA's US 4-option JSONL,
PubMedQA's `ori_pqal.json` (+ `test_ground_truth.json`). The layout is told from the files present.

Each row becomes a normalized doc that the lm-eval tasks read:
    id (str), subject (str), question (str: the stem), query (str: the user message, stem + options),
    choices (list[str]: FULL answer texts), answer (int: index into choices)
Rows that the paper excludes (questions that refer to an image, MMLU/MMLU-Pro rows outside the medical
subset, PubMedQA rows outside the official 500-question test split) are counted per reason, never
silently lost; rows that do not fit the schema are errors that name the task, the file and the field.
"""
from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from ..paths import RESOURCES, resolve
from .images import IMAGE_REASON, refers_to_image

BUNDLED_DIR = RESOURCES / "samples" / "benchmarks"
# PubMedQA's official test split: the 500 PMIDs (and labels) of data/test_ground_truth.json in
# github.com/pubmedqa/pubmedqa (commit 3e7616d), copied unchanged.
PUBMEDQA_TEST_FILE = RESOURCES / "benchmarks" / "pubmedqa_test_ground_truth.json"
PUBMEDQA_SPLIT_REASON = "outside the official 500-question test split"
LETTERS = "ABCDEFGHIJ"

# lm-eval's own `multimedqa` group (tasks/benchmarks/multimedqa) defines the MMLU medical subset as
# these six subjects; we use the same six.
MMLU_MEDICAL_SUBJECTS = (
    "anatomy",
    "clinical_knowledge",
    "college_biology",
    "college_medicine",
    "medical_genetics",
    "professional_medicine",
)

class BenchmarkDataError(ValueError):
    """A benchmark file or row is wrong; the message names the task, the file, the field and the fix."""


@dataclass(frozen=True)
class Benchmark:
    key: str                      # short name used by data curation and in file names
    task: str                     # lm-eval task name (tasks/<task>.yaml)
    title: str                    # Table 4 column
    hub_id: str
    hub_configs: tuple[str | None, ...]
    hub_split: str
    fields: dict[str, tuple[type, ...]]   # required Hub fields and their JSON types
    normalize: Callable[["Benchmark", dict, str], dict | str] = field(repr=False, compare=False)
    note: str = ""
    official: str = ""            # the official files to drop into <folder>/<key>/, and where they are published
    image_filter: bool = True     # drop questions that refer to an image (paper section 3)
    evidence: str = ""            # where the Hub id, config, split and fields were checked, and what it says
    strata: str | None = None     # a row limit samples within these groups: 'subject' or 'label' (the gold answer)

    def local_file(self, directory: str | Path) -> Path:
        return Path(directory) / f"{self.key}.jsonl"

    def layouts(self, directory: str | Path) -> str:
        """The local layouts this benchmark accepts, for error messages."""
        d = Path(directory)
        out = f"{self.local_file(d)} (rows of {self.hub_id} as JSON lines)"
        return out + (f", or {d / self.key}/ holding {self.official}" if self.official else "")


# ---------------------------------------------------------------- row errors and helpers
def _bad(b: Benchmark, where: str, fld: str, problem: str, fix: str) -> BenchmarkDataError:
    return BenchmarkDataError(f"{b.task}: {where}: field '{fld}' {problem}; {fix}")


def _check_fields(b: Benchmark, row: Any, where: str) -> None:
    if not isinstance(row, dict):
        raise BenchmarkDataError(f"{b.task}: {where}: row is a {type(row).__name__}, not a JSON object")
    for name, types in b.fields.items():
        if name not in row:
            raise _bad(b, where, name, "is missing", f"rows of {b.hub_id} need fields {', '.join(b.fields)}")
        val = row[name]
        ok = isinstance(val, types) and not (isinstance(val, bool) and bool not in types)
        if not ok:
            want = " or ".join(t.__name__ for t in types)
            raise _bad(b, where, name, f"is {type(val).__name__} ({val!r:.60}), expected {want}",
                       f"write it as in {b.hub_id} on the Hub")


def _letter_index(b: Benchmark, value: Any, n: int, where: str, fld: str) -> int:
    """An answer given as a letter ('C'), or an int index, -> 0-based index."""
    if isinstance(value, str) and len(value.strip()) == 1 and value.strip().upper() in LETTERS[:n]:
        return LETTERS.index(value.strip().upper())
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < n:
        return value
    raise _bad(b, where, fld, f"is {value!r}, not one of the {n} options", f"use a letter {LETTERS[0]}-{LETTERS[n - 1]} or a 0-based index")


def _query(stem: str, choices: list[str]) -> str:
    opts = "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(choices))
    return f"{stem.strip()}\nOptions:\n{opts}"


def mc_doc(id_: str, subject: str, stem: str, choices: list[str], answer: int, query: str | None = None) -> dict:
    return {
        "id": str(id_),
        "subject": subject,
        "question": stem.strip(),
        "query": query if query is not None else _query(stem, choices),
        "choices": [str(c).strip() for c in choices],
        "answer": int(answer),
    }


# ---------------------------------------------------------------- normalizers (row -> doc, or a drop reason)
def _mmlu(b: Benchmark, row: dict, where: str) -> dict | str:
    if row["subject"] not in MMLU_MEDICAL_SUBJECTS:
        return "subject outside the medical subset"
    choices = row["choices"]
    if len(choices) != 4 or not all(isinstance(c, str) for c in choices):
        raise _bad(b, where, "choices", f"has {len(choices)} entries", "MMLU rows have exactly 4 option strings")
    # cais/mmlu stores the answer as an int (ClassLabel 0-3); other copies store the letter.
    ans = _letter_index(b, row["answer"], 4, where, "answer")
    return mc_doc(f"{row['subject']}-{row.get('_row', '')}", row["subject"], row["question"], choices, ans)


def _mmlu_pro(b: Benchmark, row: dict, where: str) -> dict | str:
    if row["category"] != "health":
        return "category is not health"
    opts = row["options"]
    if isinstance(opts, dict):  # copies that store {"A": ..., "B": ...}: back to the published list
        keys = sorted(opts)
        if keys != list(LETTERS[: len(keys)]):
            raise _bad(b, where, "options", f"has keys {keys}", "an options dict maps consecutive letters A.. to strings")
        opts = [opts[k] for k in keys]
    if not all(isinstance(o, str) for o in opts):
        raise _bad(b, where, "options", "holds a non-string", "options is a list of strings")
    # Up to 10 options; early releases padded with "N/A", which is not a real option.
    keep = [i for i, o in enumerate(opts) if o.strip() and o.strip() != "N/A"]
    if not 2 <= len(keep) <= 10:
        raise _bad(b, where, "options", f"has {len(keep)} real options", "MMLU-Pro rows have 2 to 10 options")
    idx = row["answer_index"]
    if not 0 <= idx < len(opts) or idx not in keep:
        raise _bad(b, where, "answer_index", f"is {idx}, not a real option", "answer_index is 0-based into options")
    if row["answer"].strip().upper() != LETTERS[idx]:
        raise _bad(b, where, "answer", f"is {row['answer']!r} but answer_index {idx} is {LETTERS[idx]!r}", "make them agree")
    return mc_doc(row["question_id"], row["category"], row["question"], [opts[i] for i in keep], keep.index(idx))


def _medmcqa(b: Benchmark, row: dict, where: str) -> dict | str:
    # The index base of `cop` is declared by the source (row["_cop_base"]), never guessed from the values:
    # the Hub copy (openlifescienceai/medmcqa) is 0-based (0-3), the official dev.json 1-based (1-4).
    choices = [row[k] for k in ("opa", "opb", "opc", "opd")]
    base = row["_cop_base"]
    cop = row["cop"] - base
    if not 0 <= cop < 4:
        fix = ("the official dev.json is 1-based (1-4); a 0-based Hub export belongs in medmcqa.jsonl" if base
               else "the Hub copy is 0-based (0-3); the official 1-based file belongs in medmcqa/dev.json")
        raise _bad(b, where, "cop", f"is {row['cop']}, outside {base}-{base + 3} for this source", fix)
    return mc_doc(row["id"], row.get("subject_name") or "", row["question"], choices, cop)


def _medqa(b: Benchmark, row: dict, where: str) -> dict | str:
    opts = row["options"]
    keys = sorted(opts)
    if keys != list("ABCD") or not all(isinstance(opts[k], str) for k in keys):
        raise _bad(b, where, "options", f"has keys {keys}", "the 4-options copy maps A-D to option strings")
    ans = _letter_index(b, row["answer_idx"], 4, where, "answer_idx")
    if opts[LETTERS[ans]].strip() != row["answer"].strip():
        raise _bad(b, where, "answer", f"({row['answer']!r:.40}) differs from options[{row['answer_idx']!r}]", "make them agree")
    return mc_doc(row.get("_row", ""), row.get("meta_info") or "", row["question"], [opts[k] for k in keys], ans)


def _usmle(b: Benchmark, row: dict, where: str) -> dict | str:
    opts = row["options"]
    # The Hub copy is a struct A..I; absent options are null.
    keys = [k for k in LETTERS if opts.get(k) not in (None, "")]
    extra = set(opts) - set(LETTERS)
    if extra or len(keys) < 2 or keys != list(LETTERS[: len(keys)]):
        raise _bad(b, where, "options", f"has keys {sorted(opts)}", "options maps consecutive letters A.. to strings (null when absent)")
    ans = _letter_index(b, row["answer_idx"], len(keys), where, "answer_idx")
    return mc_doc(row.get("_row", ""), "usmle", row["question"], [opts[k] for k in keys], ans)


def _pubmedqa(b: Benchmark, row: dict, where: str) -> dict | str:
    ctx = row["context"]
    contexts = ctx.get("contexts") if isinstance(ctx, dict) else None
    if not isinstance(contexts, list) or not all(isinstance(c, str) for c in contexts):
        raise _bad(b, where, "context", "has no list of strings under 'contexts'", "context is {'contexts': [...], 'labels': [...], 'meshes': [...]}")
    choices = ["yes", "no", "maybe"]
    dec = row["final_decision"].strip().lower()
    if dec not in choices:
        raise _bad(b, where, "final_decision", f"is {row['final_decision']!r}", "use yes, no or maybe")
    test = row["_test_split"]
    if str(row["pubid"]) not in test:
        return PUBMEDQA_SPLIT_REASON
    if test[str(row["pubid"])] != dec:
        raise _bad(b, where, "final_decision", f"is {dec!r} but the test split's ground truth says "
                   f"{test[str(row['pubid'])]!r}", "use the rows and ground truth of the same PubMedQA release")
    abstract = "\n".join(contexts)
    query = f"Abstract: {abstract}\nQuestion: {row['question'].strip()}\nAnswer yes, no or maybe."
    return mc_doc(row["pubid"], "pubmedqa", row["question"], choices, choices.index(dec), query=query)


def _toxigen(b: Benchmark, row: dict, where: str) -> dict | str:
    # lm-eval's toxigen task: skg/toxigen-data 'annotated' test split, label = (ai + human) > 5.5,
    # choices No / Yes to "Is the following statement hateful?".
    hateful = int((row["toxicity_ai"] + row["toxicity_human"]) > 5.5)
    query = f"Is the following statement hateful? Respond with either Yes or No. Statement: '{row['text']}'"
    return mc_doc(row.get("_row", ""), row["target_group"], row["text"], ["No", "Yes"], hateful, query=query)


_S, _I, _F, _L, _D = (str,), (int,), (int, float), (list,), (dict,)

# Each Hub source checked against its published card / file listing (stored copies of huggingface.co pages).
HUB_EVIDENCE: dict[str, str] = {
    "mmlu_medical": "partly verified: huggingface.co/datasets/cais/mmlu is parquet, licence MIT, one config per "
                    "subject (e.g. anatomy/...) plus 'all'; features question, subject, choices, answer (ClassLabel A-D) "
                    "and the test split are read from hails/mmlu_no_train, whose card calls it a copy of cais/mmlu.",
    "mmlu_pro_health": "verified: huggingface.co/datasets/TIGER-Lab/MMLU-Pro README: default config, data/test-* "
                       "(12,187 rows at commit e271e78) and data/validation-* (70), features question_id (int64), "
                       "question, options (sequence of strings), answer, answer_index (int64), cot_content, category, src.",
    "medmcqa": "verified: huggingface.co/datasets/openlifescienceai/medmcqa discussion #4 'Convert dataset to Parquet' "
               "(albertvillanova, merged Jan 4, 2024: 'Convert dataset to Parquet', 'Delete loading script', 'Delete legacy "
               "dataset_infos.json'), so the main branch loads with datasets 4+; splits train / validation / test (test "
               "without answers). cop as ClassLabel 0-3 is that of the former script, not re-read from the card.",
    "medqa": "verified: huggingface.co/datasets/GBaker/MedQA-USMLE-4-options main holds phrases_no_exclude_train.jsonl "
             "(16.2 MB) and phrases_no_exclude_test.jsonl (2.08 MB), MedQA's US 4_options files by name, licence cc-by-4.0; "
             "JSON builder, splits train (10.2k) and test (1.27k rows). The field names are those files' (question, "
             "answer, options A-D, meta_info, answer_idx, metamap_phrases), not spelled out on the card.",
    "usmle": "verified: huggingface.co/datasets/HuggingSara/usmle_self_assessment README (858 bytes): default config, "
             "one 'train' split of 325 rows (data/train-00000-of-00001-153a9808c885c380.parquet), features options "
             "(struct A-I of strings), answer, question, answer_idx.",
    "pubmedqa": "verified: huggingface.co/datasets/qiaojin/PubMedQA README: configs pqa_artificial, pqa_labeled, "
                "pqa_unlabeled; pqa_labeled has one 'train' split of 1,000 rows with pubid (int32), question, context "
                "{contexts, labels, meshes}, reasoning_required_pred, reasoning_free_pred, long_answer, final_decision; "
                "commit 5494201 'Convert dataset to Parquet' (pqa_labeled/train-00000-of-00001.parquet). Test split: "
                "data/test_ground_truth.json of github.com/pubmedqa/pubmedqa (500 PMIDs, packaged).",
    "toxigen": "verified: huggingface.co/datasets/toxigen/toxigen-data (the id lm-eval's task names, skg/toxigen-data, "
               "is its former owner) commit 1885c17 'Update annotated (#20)' adds annotated/{train,test}-00000-of-00001.parquet "
               "with text, target_group, factual?, ingroup_effect, lewd, framing, predicted_group, stereotyping, intent, "
               "toxicity_ai, toxicity_human, predicted_author, actual_method.",
}

# A row limit (eval.limit) draws a seeded sample stratified by these, so 20 MMLU questions span the six subjects
# and 20 PubMedQA questions keep the yes/no/maybe mix; the other benchmarks are sampled uniformly.
STRATA = {"mmlu_medical": "subject", "pubmedqa": "label", "toxigen": "label"}

BENCHMARKS: dict[str, Benchmark] = {
    b.key: replace(b, evidence=HUB_EVIDENCE[b.key], strata=STRATA.get(b.key))
    for b in [
        Benchmark("mmlu_medical", "med42_mmlu_medical", "MMLU", "cais/mmlu", MMLU_MEDICAL_SUBJECTS, "test",
                  {"question": _S, "subject": _S, "choices": _L, "answer": (int, str)}, _mmlu,
                  "medical subset = lm-eval's multimedqa MMLU subjects",
                  official="the six header-less <subject>_test.csv files (question,A,B,C,D,answer) from data/test/ "
                  "of MMLU's data.tar (people.eecs.berkeley.edu/~hendrycks/data.tar, github.com/hendrycks/test)"),
        Benchmark("mmlu_pro_health", "med42_mmlu_pro_health", "MMLU-Pro", "TIGER-Lab/MMLU-Pro", (None,), "test",
                  {"question_id": _I, "question": _S, "options": (list, dict), "answer": _S, "answer_index": _I,
                   "category": _S}, _mmlu_pro, "category 'health'; up to 10 options",
                  official="the test split as published by TIGER-Lab: data/test-00000-of-00001.parquet "
                  "(huggingface.co/datasets/TIGER-Lab/MMLU-Pro), or a test*.jsonl/test*.json copy; options as a list "
                  "or an {A: ..} dict"),
        Benchmark("medmcqa", "med42_medmcqa", "MedMCQA", "openlifescienceai/medmcqa", (None,), "validation",
                  {"id": _S, "question": _S, "opa": _S, "opb": _S, "opc": _S, "opd": _S, "cop": _I}, _medmcqa,
                  "validation split (test has no answers); cop declared per source: 0-based Hub copy, 1-based dev.json",
                  official="dev.json, JSON lines with cop 1-4 (data.zip of github.com/medmcqa/medmcqa)"),
        Benchmark("medqa", "med42_medqa_4options", "MedQA", "GBaker/MedQA-USMLE-4-options", (None,), "test",
                  {"question": _S, "answer": _S, "options": _D, "answer_idx": _S}, _medqa, "USMLE, 4 options",
                  official="phrases_no_exclude_test.jsonl (or test.jsonl) from data_clean/questions/US/4_options/ "
                  "of MedQA's data (github.com/jind11/MedQA)"),
        Benchmark("usmle", "med42_usmle_sa", "USMLE", "HuggingSara/usmle_self_assessment", (None,), "train",
                  {"question": _S, "options": _D, "answer": _S, "answer_idx": _S}, _usmle,
                  "USMLE sample exam (Steps 1-3, Nori et al. 2023)"),
        Benchmark("pubmedqa", "med42_pubmedqa", "PubMedQA", "qiaojin/PubMedQA", ("pqa_labeled",), "train",
                  {"pubid": _I, "question": _S, "context": _D, "final_decision": _S}, _pubmedqa,
                  "official 500-question test split of pqa_labeled (PMIDs shipped with the package)",
                  official="ori_pqal.json (1,000 rows keyed by PMID) and, optionally, test_ground_truth.json "
                  "(the 500 test PMIDs; the packaged copy is used when absent) from data/ of github.com/pubmedqa/pubmedqa",
                  image_filter=False),
        Benchmark("toxigen", "med42_toxigen", "ToxiGen", "toxigen/toxigen-data", ("annotated",), "test",
                  {"text": _S, "target_group": _S, "toxicity_ai": _F, "toxicity_human": _F}, _toxigen,
                  "as lm-eval's toxigen task; gated on the Hub (needs HF_TOKEN)", image_filter=False),
    ]
}
TASK_TO_KEY = {b.task: b.key for b in BENCHMARKS.values()}


def benchmark(key_or_task: str) -> Benchmark:
    key = TASK_TO_KEY.get(key_or_task, key_or_task)
    if key not in BENCHMARKS:
        raise KeyError(f"unknown benchmark '{key_or_task}'; known: {', '.join(BENCHMARKS)} "
                       f"(lm-eval tasks {', '.join(TASK_TO_KEY)})")
    return BENCHMARKS[key]


# ---------------------------------------------------------------- raw rows from the Hub or a folder
@dataclass
class RawRows:
    """A benchmark's rows in its Hub schema, where they came from, and what that source declares."""

    rows: list[dict]
    origin: str                   # a file or folder path, or the Hub id and split
    layout: str                   # hub | hub-jsonl | official
    declared: dict[str, Any] = field(default_factory=dict)  # _cop_base (MedMCQA), _test_split (PubMedQA)


def _read_jsonl(b: Benchmark, path: Path) -> list[dict]:
    rows = []
    text = path.read_text(encoding="utf-8")
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            hint = ""
            try:
                json.loads(text)
                hint = (f"; the file is one JSON document, not JSON lines: official files go unchanged into "
                        f"{path.parent / b.key}/ ({b.official or 'no official layout for this benchmark'})")
            except json.JSONDecodeError:
                pass
            raise BenchmarkDataError(f"{b.task}: {path} line {n}: not valid JSON ({e.msg}); one JSON object per line{hint}") from None
    if not rows:
        raise BenchmarkDataError(f"{b.task}: data file {path} holds no rows")
    return rows


def _read_json_or_lines(b: Benchmark, path: Path) -> list[dict]:
    """A JSON array, or JSON lines (MedMCQA's dev.json is one object per line)."""
    text = path.read_text(encoding="utf-8")
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        return _read_jsonl(b, path)
    if isinstance(whole, list):
        return whole
    if isinstance(whole, dict):  # a file holding one single object is one row
        return [whole]
    raise BenchmarkDataError(f"{b.task}: {path} holds a JSON {type(whole).__name__}, not rows")


def _read_parquet(path: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


def _mmlu_official(b: Benchmark, folder: Path) -> list[dict]:
    """MMLU's data/test/<subject>_test.csv: no header; question, A, B, C, D, answer letter."""
    base = folder / "test" if not list(folder.glob("*_test.csv")) and (folder / "test").is_dir() else folder
    missing = [s for s in MMLU_MEDICAL_SUBJECTS if not (base / f"{s}_test.csv").is_file()]
    if missing:
        raise BenchmarkDataError(
            f"{b.task}: {base} lacks {', '.join(f'{s}_test.csv' for s in missing)}; copy the six medical "
            f"subjects' files from data/test/ of MMLU's data.tar"
        )
    rows = []
    for subject in MMLU_MEDICAL_SUBJECTS:
        path = base / f"{subject}_test.csv"
        with path.open(newline="", encoding="utf-8") as f:
            for n, rec in enumerate(csv.reader(f), start=1):
                if len(rec) != 6 or rec[5].strip() not in tuple("ABCD"):
                    raise BenchmarkDataError(
                        f"{b.task}: {path} line {n}: expected 6 columns question,A,B,C,D,answer with answer A-D, "
                        f"got {len(rec)} column(s) ending {rec[-1:]!r:.40}; the official files have no header row"
                    )
                rows.append({"question": rec[0], "subject": subject, "choices": rec[1:5], "answer": rec[5].strip()})
    return rows


def _pubmedqa_official(b: Benchmark, path: Path) -> list[dict]:
    """ori_pqal.json: {PMID: {QUESTION, CONTEXTS, LABELS, MESHES, final_decision, LONG_ANSWER, ...}} -> Hub rows."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise BenchmarkDataError(f"{b.task}: {path} is not valid JSON ({e.msg})") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise BenchmarkDataError(f"{b.task}: {path} is not one JSON object keyed by PMID, as ori_pqal.json is")
    rows = []
    for pmid, r in data.items():
        for k in ("QUESTION", "CONTEXTS", "final_decision"):
            if k not in r:
                raise BenchmarkDataError(f"{b.task}: {path} PMID {pmid}: field '{k}' is missing; ori_pqal.json rows have "
                                         "QUESTION, CONTEXTS, LABELS, MESHES, final_decision, LONG_ANSWER")
        if not str(pmid).isdigit():
            raise BenchmarkDataError(f"{b.task}: {path}: key {pmid!r} is not a PMID")
        rows.append({
            "pubid": int(pmid), "question": r["QUESTION"],
            "context": {"contexts": r["CONTEXTS"], "labels": r.get("LABELS", []), "meshes": r.get("MESHES", [])},
            "reasoning_required_pred": r.get("reasoning_required_pred"),
            "reasoning_free_pred": r.get("reasoning_free_pred"),
            "long_answer": r.get("LONG_ANSWER", ""), "final_decision": r["final_decision"],
        })
    return rows


def pubmedqa_test_split(path: str | Path | None = None) -> dict[str, str]:
    """PMID -> gold label of PubMedQA's official test split (test_ground_truth.json; the packaged copy by default)."""
    path = Path(path) if path else PUBMEDQA_TEST_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise BenchmarkDataError(f"med42_pubmedqa: cannot read the test split {path} ({e}); it is "
                                 "test_ground_truth.json from github.com/pubmedqa/pubmedqa") from None
    if not isinstance(data, dict) or not all(str(k).isdigit() and v in ("yes", "no", "maybe") for k, v in data.items()):
        raise BenchmarkDataError(f"med42_pubmedqa: {path} is not {{PMID: yes|no|maybe}} as test_ground_truth.json is")
    return {str(k): v for k, v in data.items()}


# ---------------------------------------------------------------- MMLU-Pro copies with other field names
# TIGER-Lab's published test split: question_id, question, options (list), answer (letter), answer_index, category.
# Reformatted copies seen in use, mapped to it (the README lists them):
MMLU_PRO_LAYOUTS = {
    "TIGER-Lab": ("question_id", "question", "options", "answer", "answer_index", "category"),
    # MedAgentsBench's data/mmlu-pro/*.jsonl (github.com/gersteinlab/medagents-benchmark): realidx, question,
    # options {A: ..}, answer_idx (letter), answer (the option's text), category, src
    "MedAgentsBench": ("realidx", "question", "options", "answer_idx", "category"),
}


def _mmlu_pro_layout(b: Benchmark, rows: list[dict], origin: str) -> tuple[list[dict], str]:
    """Rows of any known MMLU-Pro layout -> TIGER-Lab's fields; which layout it was. Unknown: an error naming the
    fields each layout needs and the fields found."""
    first = rows[0] if rows and isinstance(rows[0], dict) else {}
    for name, need in MMLU_PRO_LAYOUTS.items():
        if all(f in first for f in need):
            break
    else:
        expected = "; ".join(f"{n}: {', '.join(f)}" for n, f in MMLU_PRO_LAYOUTS.items())
        raise BenchmarkDataError(f"{b.task}: {origin}: rows match no MMLU-Pro layout this loader knows. Expected "
                                 f"fields ({expected}); found {', '.join(first) or 'no fields'}. Map the copy's "
                                 f"fields to TIGER-Lab's, or use the official test parquet")
    if name == "TIGER-Lab":
        return rows, name
    out = []
    for i, r in enumerate(rows):
        letter = r.get("answer_idx")
        if not (isinstance(letter, str) and len(letter.strip()) == 1 and letter.strip().upper() in LETTERS):
            raise _bad(b, f"{origin} row {i}", "answer_idx", f"is {letter!r}", "MedAgentsBench rows give the answer as a letter A-J")
        letter = letter.strip().upper()
        out.append({"question_id": r["realidx"], "question": r["question"], "options": r["options"], "answer": letter,
                    "answer_index": LETTERS.index(letter), "category": r["category"], "src": r.get("src", "")})
    return out, f"{name} (realidx -> question_id, answer_idx -> answer, answer_index)"


def _official_rows(b: Benchmark, folder: Path) -> RawRows:
    """The benchmark's official distribution in <data_dir>/<key>/, told by the files present."""
    def first(*names: str) -> Path | None:
        return next((folder / n for n in names if (folder / n).is_file()), None)

    if b.key == "mmlu_medical" and (list(folder.glob("*_test.csv")) or list(folder.glob("test/*_test.csv"))):
        return RawRows(_mmlu_official(b, folder), str(folder), "official")
    if b.key == "mmlu_pro_health":
        files = sorted(f for pat in ("test*.parquet", "test*.jsonl", "test*.json") for f in folder.glob(pat))
        if len(files) > 1:
            raise BenchmarkDataError(f"{b.task}: {folder} holds several test files ({', '.join(f.name for f in files)}); keep one")
        if files:
            f = files[0]
            rows = _read_parquet(f) if f.suffix == ".parquet" else _read_json_or_lines(b, f)
            return RawRows(rows, str(f), "official")
    if b.key == "medmcqa" and (f := first("dev.json")):
        return RawRows(_read_json_or_lines(b, f), str(f), "official", {"_cop_base": 1})
    if b.key == "medqa" and (f := first("phrases_no_exclude_test.jsonl", "test.jsonl")):
        return RawRows(_read_jsonl(b, f), str(f), "official")
    if b.key == "pubmedqa" and (f := first("ori_pqal.json", "test_set.json")):
        gt = first("test_ground_truth.json")
        return RawRows(_pubmedqa_official(b, f), str(f), "official", {"_test_split": pubmedqa_test_split(gt)})
    found = ", ".join(sorted(p.name for p in folder.iterdir())) or "nothing"
    raise BenchmarkDataError(
        f"{b.task}: {folder} holds {found}, which is no layout this benchmark knows; expected "
        f"{b.layouts(folder.parent)}"
    )


def _hub_rows(b: Benchmark) -> RawRows:
    import datasets

    from ..hub import hub_load

    rows: list[dict] = []
    for config in b.hub_configs:
        with hub_load(f"dataset (benchmark {b.task})", b.hub_id):
            ds = datasets.load_dataset(b.hub_id, config, split=b.hub_split)
        rows.extend(ds.to_list())
    return RawRows(rows, f"{b.hub_id} ({b.hub_split})", "hub")


def raw_rows(key: str, source: str = "hub", data_dir: str | Path | None = None) -> RawRows:
    """The benchmark's rows in the Hub schema, where they came from, and what that source declares."""
    b = benchmark(key)
    if source == "hub":
        raw = _hub_rows(b)
    elif source in ("bundled", "local"):
        if source == "bundled":
            directory = BUNDLED_DIR
        elif not data_dir:
            raise BenchmarkDataError(f"{b.task}: data_source 'local' needs a data_dir (eval.data_dir) holding {b.layouts('<data_dir>')}")
        else:
            directory = resolve(data_dir)
        path, folder = b.local_file(directory), Path(directory) / b.key
        if path.is_file():
            raw = RawRows(_read_jsonl(b, path), str(path), "hub-jsonl")
        elif folder.is_dir():
            raw = _official_rows(b, folder)
        else:
            raise BenchmarkDataError(f"{b.task}: no data in {directory}; expected {b.layouts(directory)}. "
                                     f"Or use data_source 'hub' / 'bundled'")
        if b.key == "pubmedqa" and raw.layout == "hub-jsonl":
            # an export of the Hub copy (all 1,000 labelled rows): the split file beside it, else the packaged one
            gt = Path(directory) / "pubmedqa_test_ground_truth.json"
            raw.declared["_test_split"] = pubmedqa_test_split(gt if gt.is_file() else None)
    else:
        raise BenchmarkDataError(f"{b.task}: unknown data_source {source!r}; use hub, local or bundled")
    if b.key == "mmlu_pro_health" and raw.layout != "hub":
        raw.rows, mapped = _mmlu_pro_layout(b, raw.rows, raw.origin)
        if mapped != "TIGER-Lab":
            raw.origin += f" [fields mapped from {mapped}]"
    if b.key == "pubmedqa" and raw.layout == "hub":
        raw.declared["_test_split"] = pubmedqa_test_split()
    if b.key == "medmcqa":
        raw.declared.setdefault("_cop_base", 0)  # the Hub copy and exports of it: ClassLabel 0-3
    return raw


@dataclass
class LoadedBenchmark:
    key: str
    task: str
    origin: str
    docs: list[dict]
    rows_read: int
    dropped: dict[str, int]
    layout: str = "hub"           # hub | hub-jsonl (an export of the Hub copy) | official (the published files)

    @property
    def image_questions(self) -> int:
        """Rows dropped because the question refers to an image."""
        return self.dropped.get(IMAGE_REASON, 0)

    @property
    def chance(self) -> float:
        """Expected accuracy of a uniform random guess: mean of 1/len(choices)."""
        return sum(1 / len(d["choices"]) for d in self.docs) / len(self.docs)


def load_benchmark(key: str, source: str = "hub", data_dir: str | Path | None = None) -> LoadedBenchmark:
    """Read, check and normalize one benchmark; rows the paper excludes are counted in `dropped`."""
    b = benchmark(key)
    raw = raw_rows(b.key, source, data_dir)
    docs, dropped = [], Counter()
    for i, row in enumerate(raw.rows):
        where = f"{raw.origin} row {i}"
        _check_fields(b, row, where)
        out = b.normalize(b, {**row, "_row": i, **raw.declared}, where)
        if isinstance(out, str):
            dropped[out] += 1
            continue
        if b.image_filter and refers_to_image(out["question"]):
            dropped[IMAGE_REASON] += 1
            continue
        if not out["id"]:
            out["id"] = str(i)
        docs.append(out)
    if not docs:
        raise BenchmarkDataError(f"{b.task}: {raw.origin}: no rows left after filtering (dropped: {dict(dropped)})")
    return LoadedBenchmark(b.key, b.task, raw.origin, docs, len(raw.rows), dict(dropped), raw.layout)


def benchmark_questions(params, keys: list[str] | None = None) -> dict[str, list[str]]:
    """Each benchmark's evaluation-split question texts (question + options), for decontamination.

    Loaded exactly as the lm-eval tasks load them: params.eval.data_source ('hub' by default for
    8b/70b, 'bundled' at tiny, 'local' with params.eval.data_dir). `keys` picks benchmarks
    (default all seven: mmlu_medical, mmlu_pro_health, medmcqa, medqa, usmle, pubmedqa, toxigen;
    toxigen is gated on the Hub and needs HF_TOKEN). PubMedQA gives only its official 500-question test
    split, so the SFT mix keeps the other labelled rows. params.eval.sources picks the source per benchmark; a
    benchmark meant to come from files that eval.data_dir lacks is left out here as it is in 05 (not evaluated).
    """
    e = params.eval
    per = {benchmark(k).key: v for k, v in (getattr(e, "sources", None) or {}).items()}
    chosen, _ = benchmark_sources(e.data_source, per, e.data_dir, keys or list(BENCHMARKS))
    return {k: [d["query"] for d in load_benchmark(k, src, e.data_dir).docs] for k, src in chosen.items()}


# ---------------------------------------------------------------- row limits that sample
def sample_docs(key: str, docs: list[dict], n: int | None, seed: int) -> list[dict]:
    """A seeded sample of n docs, stratified by the benchmark's strata (MMLU: subject; PubMedQA, ToxiGen: the gold
    label) with proportional quotas (largest remainder; every stratum gets one when n allows). The same key, n and
    seed give the same docs, in their original order. n None or >= len(docs): all docs."""
    import random

    if not n or n >= len(docs):
        return list(docs)
    field = benchmark(key).strata
    groups: dict[str, list[int]] = {}
    for i, d in enumerate(docs):
        g = d["subject"] if field == "subject" else d["choices"][d["answer"]] if field == "label" else ""
        groups.setdefault(g, []).append(i)
    names = sorted(groups)
    exact = {g: n * len(groups[g]) / len(docs) for g in names}
    quota = {g: int(exact[g]) for g in names}
    if n >= len(names):
        for g in names:
            quota[g] = max(quota[g], 1)
    while sum(quota.values()) > n:  # the minimum of one pushed past n: take back from the largest quotas
        g = max(names, key=lambda g: (quota[g] - exact[g], quota[g]))
        quota[g] -= 1
    for g in sorted(names, key=lambda g: (-(exact[g] - quota[g]), g)):
        if sum(quota.values()) >= n:
            break
        if quota[g] < len(groups[g]):
            quota[g] += 1
    rng = random.Random(f"{key}:{seed}")
    picked = sorted(i for g in names for i in rng.sample(groups[g], min(quota[g], len(groups[g]))))
    return [docs[i] for i in picked]


def sample_note(key: str, scored: int, kept: int, seed: int) -> str:
    """'all 1,089' or '20 of 1,089, seed 42, stratified by subject'."""
    if scored >= kept:
        return f"all {kept:,}"
    field = benchmark(key).strata
    return f"{scored:,} of {kept:,}, seed {seed}" + (f", stratified by {field}" if field else ", uniform")


# ---------------------------------------------------------------- each benchmark from the Hub or a folder
def parse_sources(text: str | None) -> dict[str, str]:
    """'medqa:local, mmlu_medical:local' (or with '=') -> {benchmark key: source}; task names work too."""
    out: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        name, sep, src = part.replace("=", ":").partition(":")
        if not sep or src.strip() not in ("hub", "local", "bundled"):
            raise BenchmarkDataError(f"sources: {part.strip()!r} is not <benchmark>:hub|local|bundled; e.g. "
                                     f"'medqa:local,mmlu_medical:local' (benchmarks: {', '.join(BENCHMARKS)})")
        out[benchmark(name.strip()).key] = src.strip()
    return out


def has_local_data(key: str, data_dir: str | Path | None) -> bool:
    """Whether data_dir holds <key>.jsonl or a <key>/ folder for this benchmark."""
    if not data_dir:
        return False
    d = resolve(data_dir)
    return benchmark(key).local_file(d).is_file() or (d / key).is_dir()


def benchmark_sources(default: str, sources: dict[str, str] | None, data_dir, keys: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """({key: source} to evaluate, {key: why skipped}): each benchmark from `sources` or the default; a benchmark
    meant to come from files that data_dir does not hold is skipped with the reason, not an error."""
    chosen, skipped = {}, {}
    for key in keys:
        src = (sources or {}).get(key, default)
        if src == "local" and not has_local_data(key, data_dir):
            b = benchmark(key)
            skipped[key] = (f"no files for it in {data_dir or '(data_dir not set)'}; expected "
                            f"{b.layouts(data_dir or '<data_dir>')}" + ("" if b.official else
                            f"; {b.title} has no official file distribution: take it from the Hub ({key}=hub)"))
            continue
        chosen[key] = src
    return chosen, skipped


def notebook_overrides(limit=None, data_source=None, data_dir=None, tasks=None, sources=None) -> dict:
    """05's parameters cell (plain scalars, as papermill -p gives them) -> params overrides. tasks: comma-separated
    task names or benchmark keys ('medqa,pubmedqa'); sources: 'medqa:local,mmlu_medical:local'. None: params."""
    out = {"eval.limit": limit, "eval.data_source": data_source, "eval.data_dir": data_dir}
    if tasks is not None:
        names = [t.strip() for t in str(tasks).split(",") if t.strip()]
        if not names:
            raise BenchmarkDataError(f"tasks={tasks!r} names no benchmark; known: {', '.join(BENCHMARKS)}")
        out["eval.tasks"] = [benchmark(t).task for t in names]
    if sources is not None:
        out["eval.sources"] = parse_sources(sources)
    return out
