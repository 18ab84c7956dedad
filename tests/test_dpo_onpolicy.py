"""On-policy pairs: K samples per prompt, a pluggable scorer, best vs worst; scorer adapters."""
from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass

import pytest

from standins import make_sft_standin

from med42_utils.dpo.onpolicy import build_pairs, generate_responses, onpolicy_pairs
from med42_utils.dpo.scorers import PairwiseJudgeScorer, RewardModelScorer, make_scorer
from med42_utils.params import load_params

PROMPT = [{"role": "user", "content": "What is a normal resting heart rate?"}]


@dataclass
class FakeVerdict:
    winner: str | None


class LongerWins:
    """A judge of the 06 shape: compare(...) -> Verdict; prefers the longer answer, ties on equal length."""

    def __init__(self):
        self.calls = []

    def compare(self, instruction, response_a, response_b, reference=None):
        self.calls.append((response_a, response_b))
        if len(response_a) == len(response_b):
            return FakeVerdict(None)
        return FakeVerdict("A" if len(response_a) > len(response_b) else "B")


class FirstAlwaysWins:
    def compare(self, instruction, response_a, response_b, reference=None):
        return FakeVerdict("A")


def test_judge_scorer_round_robin_both_orders():
    judge = LongerWins()
    responses = ["aa", "a", "aaaa", "bb"]
    scores = PairwiseJudgeScorer(judge).score("q", responses)
    n = len(responses)
    assert len(judge.calls) == n * (n - 1)                       # every ordered pair once
    assert {(a, b) for a, b in judge.calls} == {(x, y) for x in responses for y in responses if x != y}
    assert scores == [3.0, 0.0, 6.0, 3.0]                        # 2 wins per beaten rival, 0.5 per tie each order
    assert sum(scores) == n * (n - 1)


def test_both_orders_cancel_a_position_biased_judge():
    scores = PairwiseJudgeScorer(FirstAlwaysWins()).score("q", ["x", "y", "z"])
    assert len(set(scores)) == 1                                  # no response is preferred


def test_judge_scorer_rejects_bad_verdicts():
    class Broken:
        def compare(self, *a, **k):
            return FakeVerdict("C")

    with pytest.raises(ValueError, match="'A', 'B' or None, got 'C'"):
        PairwiseJudgeScorer(Broken()).score("q", ["x", "y"])
    with pytest.raises(TypeError, match="has no compare"):
        PairwiseJudgeScorer(object())


class TableScorer:
    def __init__(self, table):
        self.table = table

    def score(self, prompt, responses):
        return [self.table[r] for r in responses]


def test_build_pairs_keeps_best_and_worst_and_counts_drops():
    prompts = [PROMPT, PROMPT, PROMPT]
    responses = [["ok", "best", "worst"], ["same", "same"], ["x", "x"]]
    scorer = TableScorer({"ok": 0.5, "best": 2.0, "worst": -1.0, "same": 1.0, "x": 0.0})
    ds, report = build_pairs(prompts, responses, scorer, "onpolicy:t")
    assert len(ds) == 1
    assert ds[0]["chosen"] == [{"role": "assistant", "content": "best"}]
    assert ds[0]["rejected"] == [{"role": "assistant", "content": "worst"}]
    assert ds[0]["score_chosen"] == 2.0 and ds[0]["score_rejected"] == -1.0
    assert dict(report.dropped["onpolicy:t"]) == {"tied_scores": 2} and report.kept["onpolicy:t"] == 1


def test_reward_model_scorer_on_tiny_is_deterministic(tiny_model_path):
    """Mechanism test only: the tiny model with a seeded, untrained score head."""
    responses = ["Sixty to one hundred beats per minute.", "Blue.", "It depends on fitness."]
    params = load_params("tiny")
    a = RewardModelScorer.load(params, tiny_model_path, seed=3).score(PROMPT[0]["content"], responses)
    b = RewardModelScorer.load(params, tiny_model_path, seed=3).score(PROMPT[0]["content"], responses)
    assert len(a) == 3 and a == b and len(set(a)) == 3


def test_generation_is_params_driven_and_seeded(tiny_model_path):
    from med42_utils.models import load_model_and_tokenizer

    params = load_params("tiny")
    model, tok = load_model_and_tokenizer(params, tiny_model_path)
    kw = dict(temperature=1.0, top_k=50, top_p=1.0, max_new_tokens=6, seed=11)
    a = generate_responses(model, tok, [PROMPT], 3, **kw)
    b = generate_responses(model, tok, [PROMPT], 3, **kw)
    assert a == b and len(a[0]) == 3
    assert generate_responses(model, tok, [PROMPT], 3, **{**kw, "seed": 12}) != a


def test_onpolicy_pairs_on_tiny_with_the_reward_model(tiny_params, tiny_model_path):
    params = load_params("tiny", {"dpo.onpolicy.num_prompts": 3, "dpo.onpolicy.k": 3})
    ds, report = onpolicy_pairs(params, tiny_model_path, ["snorkel:train_iteration_2"], make_scorer(params))
    src = "onpolicy:snorkel:train_iteration_2"
    assert report.kept[src] + report.total_dropped(src) == 3
    assert len(ds) == report.kept[src] >= 1
    assert all(c > r for c, r in zip(ds["score_chosen"], ds["score_rejected"]))
    assert all(c[0]["content"] != r[0]["content"] for c, r in zip(ds["chosen"], ds["rejected"]))
    # the bad rows of the source are still reported
    assert report.dropped["snorkel:train_iteration_2"]["empty_rejected"] == 1


def test_onpolicy_round_trains_on_its_own_pairs(tiny_model_path, monkeypatch):
    """A round listed in dpo.onpolicy.rounds trains on pairs sampled from its starting model: the generation step
    writes them to disk before training starts, training reads that file and never samples (issue 29.4)."""
    import datasets

    from med42_utils.dpo import onpolicy, train
    from med42_utils.dpo.onpolicy_job import META, pairs_dir, read_pairs
    from med42_utils.dpo.rounds import run_rounds
    from med42_utils.manifest import StageMissingError, read_manifest
    from med42_utils.paths import run_dir
    from med42_utils.stages import stage_model_dir

    over = {"dpo.onpolicy.enabled": True, "dpo.onpolicy.rounds": ["round1"], "dpo.onpolicy.num_prompts": 4,
            "dpo.onpolicy.k": 3, "dpo.max_samples_per_source": 4, "dpo.warmup_ratio": 0.0}
    params = load_params("tiny", over)
    run = f"pytest-dpo-op-{uuid.uuid4().hex[:6]}"
    events = []
    sample, train_round = onpolicy.generate_responses, train.train_round

    def spy_sample(*a, **k):
        events.append(("sample", (pairs_dir(params, run, "round1") / META).is_file()))
        return sample(*a, **k)

    def spy_train(*a, **k):
        events.append(("train", (pairs_dir(params, run, "round1") / META).is_file()))
        out = train_round(*a, **k)
        events.append(("trained", None))
        return out

    monkeypatch.setattr(onpolicy, "generate_responses", spy_sample)
    monkeypatch.setattr(train, "train_round", spy_train)
    try:
        make_sft_standin(params, run, tiny_model_path)
        run_rounds(params, run, round="round1")
        # sampled once, before training, with no pairs file yet; training started with the file there
        assert events == [("sample", False), ("train", True), ("trained", None)]
        m = read_manifest(stage_model_dir(params, run, "dpo_round1").parent)
        assert m["onpolicy"] is True
        src = "onpolicy:ultrafeedback:train_prefs+snorkel:train_iteration_1"
        assert list(m["rows"]["kept"]) == [src]
        on_disk = datasets.load_from_disk(str(pairs_dir(params, run, "round1")))
        assert 1 <= m["train_pairs"] == len(on_disk) <= 4
        assert m["rows"]["kept"][src] == len(on_disk)

        # training alone reads the file: run it again with sampling forbidden
        def no_sampling(*a, **k):
            raise AssertionError("training sampled on-policy responses")

        monkeypatch.setattr(onpolicy, "generate_responses", no_sampling)
        again = train_round(params, run, "round1", force=True)
        assert again["train_pairs"] == len(on_disk)
        # without the file, training refuses and names the generation job
        shutil.rmtree(pairs_dir(params, run, "round1"))
        with pytest.raises(StageMissingError, match="med42_utils.dpo.onpolicy_job"):
            train_round(params, run, "round1", force=True)
        with pytest.raises(StageMissingError, match="missing"):
            read_pairs(params, run, "round1")
    finally:
        shutil.rmtree(run_dir("tiny", run), ignore_errors=True)


def test_pairs_are_made_again_only_when_their_inputs_change(tiny_model_path, monkeypatch):
    from med42_utils.dpo import onpolicy
    from med42_utils.dpo.onpolicy_job import pairs_ready
    from med42_utils.dpo.rounds import generate_where_gpus_are
    from med42_utils.manifest import write_manifest
    from med42_utils.paths import run_dir

    over = {"dpo.onpolicy.enabled": True, "dpo.onpolicy.rounds": ["round1"], "dpo.onpolicy.num_prompts": 2,
            "dpo.onpolicy.k": 2, "dpo.max_samples_per_source": 2}
    params = load_params("tiny", over)
    run = f"pytest-dpo-opk-{uuid.uuid4().hex[:6]}"
    calls = []
    sample = onpolicy.generate_responses
    monkeypatch.setattr(onpolicy, "generate_responses", lambda *a, **k: calls.append(1) or sample(*a, **k))
    try:
        d = make_sft_standin(params, run, tiny_model_path)
        generate_where_gpus_are(params, run, "round1")
        generate_where_gpus_are(params, run, "round1")
        assert len(calls) == 1 and pairs_ready(params, run, "round1")
        assert not pairs_ready(load_params("tiny", {**over, "dpo.onpolicy.k": 3}), run, "round1")
        write_manifest(d.parent, "03_sft", params, standin=True, retrained=True)  # a new SFT model
        assert not pairs_ready(params, run, "round1")
        generate_where_gpus_are(params, run, "round1")
        assert len(calls) == 2
    finally:
        shutil.rmtree(run_dir("tiny", run), ignore_errors=True)


@pytest.mark.slow
def test_sampling_split_over_gpus_gives_the_same_pairs(tiny_model_path, monkeypatch):
    """Issue 27: an on-policy job whose starting model fits one GPU samples on every GPU of the node, one worker
    process per GPU (here 2 workers on the CPU). Each prompt is seeded by its own index, so the pairs are the ones the
    job's own process makes; the worker count comes from the loader's placement (fit's rule)."""
    import datasets

    from med42_utils.dpo import onpolicy_job
    from med42_utils.inference import placement_for
    from med42_utils.paths import run_dir

    over = {"dpo.onpolicy.enabled": True, "dpo.onpolicy.rounds": ["round1"], "dpo.onpolicy.num_prompts": 3,
            "dpo.onpolicy.k": 2, "dpo.max_samples_per_source": 3}
    params = load_params("tiny", over)
    run = f"pytest-dpo-opg-{uuid.uuid4().hex[:6]}"
    try:
        make_sft_standin(params, run, tiny_model_path)
        one = onpolicy_job.make_pairs(params, run, "round1", slots=1)
        ds1 = datasets.load_from_disk(str(onpolicy_job.pairs_dir(params, run, "round1")))
        two = onpolicy_job.make_pairs(params, run, "round1", force=True, slots=2)
        ds2 = datasets.load_from_disk(str(onpolicy_job.pairs_dir(params, run, "round1")))
        assert one["pairs"] == two["pairs"] and one["rows"] == two["rows"]
        assert ds1.to_dict() == ds2.to_dict()
        assert not (onpolicy_job.pairs_dir(params, run, "round1").with_name("onpolicy.work")).exists()
        work = run_dir("tiny", run) / "work"  # a worker that fails: the error names its GPU and ends with its log
        with pytest.raises(RuntimeError, match=r"on-policy sampling worker \d on GPU \d failed .*worker-\d\.log"):
            onpolicy_job.sample_on_gpus(params, str(work / "no-model"), [PROMPT, PROMPT], 2, work)
    finally:
        shutil.rmtree(run_dir("tiny", run), ignore_errors=True)
    assert onpolicy_job.sampling_slots(params, tiny_model_path) == 1  # no GPU here: one process
    # on 8 x 80 GB the loader puts 8B on one GPU per replica (8 workers) and spreads 70B (1 process)
    from med42_utils.estimates import LLAMA3_70B, LLAMA3_8B

    assert [placement_for(s.parameters, 2, 8, 79.1, kv_bytes_per_token=s.kv_bytes_per_token()).replicas
            for s in (LLAMA3_8B, LLAMA3_70B)] == [8, 1]


def test_the_generation_job_is_planned_before_the_round_at_gpu_sizes(capsys):
    """At 8b the pairs come from their own one-process GPU job (rendered in the dry run before the training
    launch), which needs the starting model and the reward model; the training job no longer needs the latter."""
    from med42_utils.dpo.onpolicy_job import MODULE
    from med42_utils.dpo.rounds import run_rounds
    from med42_utils.preflight import stage_needs

    params = load_params("8b", {"dpo.onpolicy.enabled": True, "dpo.onpolicy.rounds": ["round2"]})
    run_rounds(params, "pytest-plan-only", round="round2", dry_run=True)
    out = capsys.readouterr().out
    assert MODULE in out and "med42_utils.dpo.train" in out
    assert out.index(MODULE) < out.index("med42_utils.dpo.train")
    assert "--round round2" in out
    gen = stage_needs(params, "r", "onpolicy_round2")
    assert [m for m, _ in gen.models] == [params.dpo.onpolicy.reward_model]
    assert stage_needs(params, "r", "dpo_round2").models == []


def test_judge_scorer_with_the_06_logprob_judge_on_tiny(tiny_params):
    """Integration: make_scorer(scorer='judge') wraps med42_utils.judging's tiny logprob judge."""
    pytest.importorskip("med42_utils.judging.judge")
    params = load_params("tiny", {"dpo.onpolicy.scorer": "judge"})
    scorer = make_scorer(params)
    assert isinstance(scorer, PairwiseJudgeScorer)
    responses = ["Sixty to one hundred beats per minute.", "Blue.", "Around 60-100 bpm at rest."]
    scores = scorer.score(PROMPT[0]["content"], responses)
    assert len(scores) == 3 and sum(scores) == pytest.approx(3 * 2)   # one point per ordered comparison
    assert scores == scorer.score(PROMPT[0]["content"], responses)     # deterministic judge
