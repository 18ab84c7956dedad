"""Pluggable scorers for on-policy pairs: `score(prompt: str, responses: list[str]) -> list[float]`.

- RewardModelScorer: a sequence-classification reward model (one logit per response).
  At size tiny it is the tiny Llama with a seeded, untrained score head: a mechanism test only,
  its scores carry no judgement of quality.
- PairwiseJudgeScorer: any judge with `compare(instruction, response_a, response_b, reference=None)`
  returning a verdict whose `.winner` is "A", "B", "tie" or None (the Elo notebook's judge, 06). Responses
  meet round-robin in both orders (to cancel position bias); a response scores 1 per win, 0.5 per tie.
"""
from __future__ import annotations

from itertools import combinations
from typing import Protocol, Sequence

from ..chat import fit_roles
from ..models import ensure_pad_token
from ..params import Params


class Scorer(Protocol):
    def score(self, prompt: str, responses: list[str]) -> list[float]: ...


def scorer_conversation(prompt: str, response: str) -> list[dict]:
    """The conversation a reward model scores: the prompt as the user turn, the response as the assistant's."""
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]


class RewardModelScorer:
    """Scores (prompt, response) with AutoModelForSequenceClassification (num_labels=1)."""

    def __init__(self, model, tokenizer, batch_size: int = 8):
        self.model, self.tokenizer, self.batch_size = model.eval(), tokenizer, batch_size
        ensure_pad_token(tokenizer)
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id

    @classmethod
    def load(cls, params: Params, name_or_path: str, seed: int = 0):
        """Load a reward model with the params' dtype and trust_remote_code, placed on the job's GPUs
        (inference.load_for_inference); `seed` fixes any newly initialised head (the tiny mechanism test)."""
        from ..inference import load_for_inference

        model, tok, _ = load_for_inference(params, name_or_path, kind="sequence_classification", seed=seed,
                                           what="reward model")
        return cls(model, tok)

    def score(self, prompt: str, responses: list[str]) -> list[float]:
        import torch

        texts = [
            self.tokenizer.apply_chat_template(fit_roles(self.tokenizer, scorer_conversation(prompt, r)), tokenize=False)
            for r in responses
        ]
        out: list[float] = []
        for i in range(0, len(texts), self.batch_size):
            enc = self.tokenizer(texts[i : i + self.batch_size], return_tensors="pt", padding=True,
                                 add_special_tokens=False).to(self.model.device)
            with torch.no_grad():
                logits = self.model(**enc).logits
            out.extend(logits[:, 0].float().tolist())
        return out


class PairwiseJudgeScorer:
    """Wins in round-robin pairwise comparisons, both orders, by a judge with compare(...) -> Verdict."""

    def __init__(self, judge, both_orders: bool = True):
        if not hasattr(judge, "compare"):
            raise TypeError(f"{type(judge).__name__} has no compare(instruction, response_a, response_b, reference=None)")
        self.judge, self.both_orders = judge, both_orders

    def _verdicts(self, prompt: str, pairs: Sequence[tuple[int, int]], responses: list[str]):
        items = [(prompt, responses[a], responses[b], None) for a, b in pairs]
        if hasattr(self.judge, "compare_many"):  # one batched call where the judge offers it
            return self.judge.compare_many(items)
        return [self.judge.compare(*item) for item in items]

    def score(self, prompt: str, responses: list[str]) -> list[float]:
        pairs = list(combinations(range(len(responses)), 2))
        if self.both_orders:
            pairs += [(b, a) for a, b in pairs]
        wins = [0.0] * len(responses)
        for (a, b), verdict in zip(pairs, self._verdicts(prompt, pairs, responses)):
            w = getattr(verdict, "winner", verdict)
            if w == "A":
                wins[a] += 1
            elif w == "B":
                wins[b] += 1
            elif w is None or w == "tie":
                wins[a] += 0.5
                wins[b] += 0.5
            else:
                raise ValueError(f"judge verdict winner must be 'tie', 'A', 'B' or None, got {w!r}")
        return wins


def make_scorer(params: Params, judge=None) -> Scorer:
    """The scorer dpo.onpolicy asks for: a reward model ('tiny' = the tiny base model), or the 06 judge."""
    op = params.dpo.onpolicy
    if op.scorer == "judge":
        if judge is None:
            from ..judging.judge import make_judge

            if params.judge.backend == "reference":  # 06's tiny judge needs reference answers; DPO prompts have none
                params = params.model_copy(deep=True)
                params.judge.backend = "logprob"
            judge = make_judge(params)
        return PairwiseJudgeScorer(judge)
    from ..tiny_model import resolve_named

    return RewardModelScorer.load(params, resolve_named(params, op.reward_model), seed=op.seed)
