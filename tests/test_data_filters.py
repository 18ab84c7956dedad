"""The Table 5 footnote filters, each on rows in its source's schema."""
from __future__ import annotations

from med42_utils.data import filters as F


def _se(site):
    host = f"https://{site}.stackexchange.com"
    return {"metadata": [f"{host}/questions/1", host, f"{host}/users/2/"]}


def test_stackexchange_keeps_exactly_the_six_sites():
    for site in ("academia", "bioinformatics", "biology", "cogsci", "fitness", "health"):
        assert F.stackexchange_filter(_se(site)) is None, site
    assert F.stackexchange_filter(_se("medicalsciences")) is None  # health's current name
    for site in ("cooking", "english", "math", "bio", "meta"):
        assert F.stackexchange_filter(_se(site)) == "site_not_selected", site
    assert F.stackexchange_filter({"metadata": []}) == "no_site_in_metadata"
    assert F.stackexchange_filter({"metadata": ["https://stackoverflow.com/q/1"]}) == "no_site_in_metadata"


def test_headqa_english_only_and_no_images():
    en = {"qtext": "Which of the following drugs is a loop diuretic?", "answers": [{"aid": 1, "atext": "Furosemide"}], "image": None}
    es = {"qtext": "¿Cuál de los siguientes fármacos es un diurético de asa?", "answers": [{"aid": 1, "atext": "Furosemida"}], "image": None}
    assert F.headqa_filter(en) is None
    assert F.headqa_filter(es) == "not_english"
    assert F.headqa_filter({**en, "image": "img/1.png"}) == "has_image"


def test_mmlu_thirteen_subjects():
    assert len(F.MMLU_SUBJECTS) == 13
    for s in F.MMLU_SUBJECTS:
        assert F.mmlu_filter({"subject": s}) is None
    for s in ("astronomy", "high_school_chemistry", "marketing", None):
        assert F.mmlu_filter({"subject": s}) == "subject_not_selected"


def test_niv2_domain_tasks():
    assert F.niv2_filter({"task_name": "task1495_adverse_drug_event_classification"}) is None
    assert F.niv2_filter({"task_name": "task1448_disease_entity_extraction"}) is None
    assert F.niv2_filter({"task_name": "task591_sciq_answer_generation"}) is None
    assert F.niv2_filter({"task_name": "task001_quoref_question_generation"}) == "task_not_selected"
    assert F.niv2_filter({"task_name": "task190_snli_classification"}) == "task_not_selected"


def test_openorca_submix_attribution():
    t0, flan, cot = F.openorca_filter("t0"), F.openorca_filter("flan"), F.openorca_filter("cot")
    assert t0({"id": "t0.123"}) is None and t0({"id": "flan.123"}) == "other_submix"
    assert flan({"id": "flan.9"}) is None and flan({"id": "niv.9"}) == "other_submix"
    assert cot({"id": "cot.4"}) is None and cot({"id": "t0.4"}) == "other_submix"
