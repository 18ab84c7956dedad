"""How long the chosen and rejected answers of a round's pairs are (DPO can learn length as well as quality)."""
from __future__ import annotations


def _text(msgs) -> str:
    return msgs if isinstance(msgs, str) else "".join(m["content"] for m in msgs)


def pair_lengths(ds, tokenizer) -> dict:
    """Token and word counts of the answers of the pairs a round trains on: means, and how many pairs have
    the longer answer chosen (ties counted apart). Input: TRL's conversational pairs (chosen/rejected)."""
    ct, rt, cw, rw = [], [], [], []
    for row in ds:
        c, r = _text(row["chosen"]), _text(row["rejected"])
        ct.append(len(tokenizer(c, add_special_tokens=False)["input_ids"]))
        rt.append(len(tokenizer(r, add_special_tokens=False)["input_ids"]))
        cw.append(len(c.split()))
        rw.append(len(r.split()))
    n = len(ct)
    if n == 0:
        raise ValueError("pair_lengths: the round has no pairs")
    return {
        "pairs": n,
        "chosen_tokens_mean": sum(ct) / n, "rejected_tokens_mean": sum(rt) / n,
        "chosen_words_mean": sum(cw) / n, "rejected_words_mean": sum(rw) / n,
        "chosen_longer": sum(a > b for a, b in zip(ct, rt)),
        "same_length": sum(a == b for a, b in zip(ct, rt)),
        "rejected_longer": sum(a < b for a, b in zip(ct, rt)),
    }


def lengths_table(manifests: dict[str, dict]):
    """One row per round from the rounds' manifests: pairs, mean answer length (tokens, words), chosen longer in k of n."""
    import pandas as pd

    rows = []
    for name, m in manifests.items():
        L = m.get("lengths")
        if not L:
            continue
        rows.append({"round": name, "pairs": L["pairs"],
                     "chosen tokens (mean)": round(L["chosen_tokens_mean"], 1),
                     "rejected tokens (mean)": round(L["rejected_tokens_mean"], 1),
                     "chosen / rejected": round(L["chosen_tokens_mean"] / max(L["rejected_tokens_mean"], 1e-9), 2),
                     "chosen words (mean)": round(L["chosen_words_mean"], 1),
                     "rejected words (mean)": round(L["rejected_words_mean"], 1),
                     "chosen longer": f"{L['chosen_longer']} of {L['pairs']}"})
    return pd.DataFrame(rows).set_index("round") if rows else pd.DataFrame()


def answer_lengths(answers, tokenizer, max_new_tokens: int):
    """The sample answers table with each answer's length in tokens and words, and whether it hit the
    generation cap (max_new_tokens): a capped answer's length says nothing about the model's preference."""
    out = answers.copy()
    toks = [len(tokenizer(a, add_special_tokens=False)["input_ids"]) for a in out["answer"]]
    out.insert(1, "tokens", toks)
    out.insert(2, "words", [len(a.split()) for a in out["answer"]])
    out.insert(3, "hit the cap", [t >= max_new_tokens for t in toks])
    return out
