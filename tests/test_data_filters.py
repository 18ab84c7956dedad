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


def test_stackexchange_site_skips_urls_that_are_not_strings_and_reads_the_next():
    """Hub rows can hold None (or a number) in `metadata`; they name no site, and the next URL still counts."""
    row = {"metadata": [None, 3, "https://biology.stackexchange.com/questions/7"]}
    assert F.stackexchange_site(row) == "biology"
    assert F.stackexchange_filter(row) is None
    assert F.stackexchange_filter({"metadata": [None, 42]}) == "no_site_in_metadata"
    assert F.stackexchange_filter({"metadata": None}) == "no_site_in_metadata"
    assert F.stackexchange_filter({}) == "no_site_in_metadata"


def test_stackexchange_site_is_the_label_just_before_stackexchange_com():
    """A www. in front does not hide the site; the current name medicalsciences maps to the key health."""
    assert F.stackexchange_site({"metadata": ["https://www.fitness.stackexchange.com/q/1"]}) == "fitness"
    assert F.stackexchange_site({"metadata": ["https://www.medicalsciences.stackexchange.com/q/1"]}) == "health"
    assert F.stackexchange_site({"metadata": ["HTTPS://Biology.StackExchange.com/q/1"]}) == "biology"
    assert F.stackexchange_filter({"metadata": ["https://www.fitness.stackexchange.com/q/1"]}) is None
    assert F.stackexchange_filter({"metadata": ["https://fitness.cooking.stackexchange.com/q/1"]}) == "site_not_selected"


def test_a_tie_of_english_and_spanish_function_words_is_not_english_nor_is_a_text_without_any():
    assert F.looks_english("the de") is False        # 1 English, 1 Spanish
    assert F.looks_english("the of de") is True      # 2 to 1
    assert F.looks_english("Furosemide 40 mg") is False
    assert F.looks_english("") is False


def test_headqa_language_counts_the_answers_too():
    """A question without function words (or no qtext at all) is decided by its answers' words, each answer
    a separate word; answers without `atext`, and entries that are not dicts, add nothing."""
    en_answers = [{"aid": 1, "atext": "The loop"}, {"aid": 2, "atext": "A salt"}]
    es_answers = [{"aid": 1, "atext": "El asa"}, {"aid": 2, "atext": "Una sal"}]
    for qtext in ("Furosemide?", None, ""):
        assert F.headqa_filter({"qtext": qtext, "answers": en_answers}) is None, qtext
        assert F.headqa_filter({"qtext": qtext, "answers": es_answers}) == "not_english", qtext
    # 'Which' + 'of' in the question ties with 'de' 'la' of the answers: not English; one English answer more tips it
    assert F.headqa_filter({"qtext": "Which of them?", "answers": [{"atext": "de la"}]}) == "not_english"
    assert F.headqa_filter({"qtext": "Which of them?", "answers": [{"atext": "de la"}, {"atext": "the"}]}) is None
    # an answer without text and one that is not a dict are skipped, not errors
    assert F.headqa_filter({"qtext": "Which drug?", "answers": [{"aid": 1}, "the of and", None]}) is None
    assert F.headqa_filter({"qtext": "¿Cuál?", "answers": [{"aid": 1}, "the of and"]}) == "not_english"
    assert F.headqa_filter({"qtext": "Which drug?", "answers": None}) is None
    assert F.headqa_filter({"qtext": None, "answers": None}) == "not_english"


def test_openorca_submix_is_the_id_before_its_first_dot_and_empty_without_an_id():
    assert F.openorca_submix({"id": "flan.2.17"}) == "flan"
    assert F.openorca_submix({"id": "niv.118933"}) == "niv"
    assert F.openorca_submix({"id": None}) == "" and F.openorca_submix({}) == ""
    assert F.openorca_filter("flan")({"id": "flan.2.17"}) is None
    assert F.openorca_filter("t0").__name__ == "openorca_t0_filter"
