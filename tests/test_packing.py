"""Assistant-only labels, TRL packing (wrapped vs bfd), and the packed-loss equivalence."""
from __future__ import annotations

import json

import pytest
import torch

from med42_utils.packing import (
    IGNORE,
    LabelError,
    block_causal_mask,
    check_labels,
    chunk_logits,
    loss_equivalence,
    pack,
    packing_stats,
    padding_waste,
    position_ids,
    tokenize_conversation,
    tokenize_dataset,
    wrapped_split_samples,
)
from med42_utils.paths import RESOURCES

SAMPLE = RESOURCES / "samples" / "packing" / "curated_sample.jsonl"


@pytest.fixture(scope="module")
def tok(tiny_model_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_path)


@pytest.fixture(scope="module")
def model(tiny_model_path):
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float32, attn_implementation="sdpa")
    return m.eval()


@pytest.fixture(scope="module")
def curated():
    from datasets import Dataset

    return Dataset.from_list([json.loads(line) for line in SAMPLE.read_text().splitlines()])


@pytest.fixture(scope="module")
def tokenized(curated, tok):
    ds, drops = tokenize_dataset(curated, tok)
    assert drops == {}
    return ds


def test_labels_cover_exactly_the_assistant_turns(tok, curated):
    for row in curated:
        out = tokenize_conversation(tok, row["messages"])
        check_labels(tok, row["messages"], out["labels"])  # raises on any mismatch
        labelled = tok.decode([t for t in out["labels"] if t != IGNORE])
        for m in row["messages"]:
            if m["role"] == "user":
                assert m["content"] not in labelled
        assert labelled.endswith(tok.eos_token), "the model must learn to stop: <|eot_id|> is labelled"
        assert out["labels"][0] == IGNORE


def test_check_labels_catches_a_label_on_prompt_tokens(tok, curated):
    row = curated[0]
    out = tokenize_conversation(tok, row["messages"])
    bad = list(out["input_ids"])  # every token labelled, as without the generation markers
    with pytest.raises(LabelError, match="assistant turns"):
        check_labels(tok, row["messages"], bad)


def test_bad_rows_are_dropped_and_counted_per_source(tok, curated):
    from datasets import Dataset

    rows = curated.to_list()[:3] + [
        {"id": "x1", "source": "medqa", "messages": [{"role": "user", "content": "no answer here"}]},
        {"id": "x2", "source": "niv2", "messages": [{"role": "doctor", "content": "hi"}, {"role": "assistant", "content": "ok"}]},
    ]
    ds, drops = tokenize_dataset(Dataset.from_list(rows), tok)
    assert len(ds) == 3
    assert drops == {"medqa": {"no_assistant_turn": 1}, "niv2": {"bad_message": 1}}


def test_missing_column_is_a_clear_error(tok):
    from datasets import Dataset

    with pytest.raises(LabelError, match="source"):
        tokenize_dataset(Dataset.from_list([{"id": "a", "messages": []}]), tok)


def test_wrapped_fills_chunks_and_keeps_every_token(tokenized):
    L = 64
    packed = pack(tokenized, L, "wrapped")
    lens = [len(x) for x in packed["input_ids"]]
    assert all(n == L for n in lens[:-1]) and 0 < lens[-1] <= L
    flat = [t for x in packed["input_ids"] for t in x]
    assert flat == [t for x in tokenized["input_ids"] for t in x]
    flat_labels = [t for x in packed["labels"] for t in x]
    assert flat_labels == [t for x in tokenized["labels"] for t in x]
    assert "seq_lengths" not in packed.column_names


def test_bfd_keeps_samples_whole_and_records_boundaries(tokenized):
    L = 256
    packed = pack(tokenized, L, "bfd")
    originals = {tuple(x) for x in tokenized["input_ids"]}
    n_samples = 0
    for chunk in packed:
        assert sum(chunk["seq_lengths"]) == len(chunk["input_ids"]) <= L
        start = 0
        for n in chunk["seq_lengths"]:
            assert tuple(chunk["input_ids"][start:start + n]) in originals
            start += n
            n_samples += 1
        pos = position_ids(chunk)
        assert pos.count(0) == len(chunk["seq_lengths"])
    assert n_samples == len(tokenized)
    assert len(packed) < len(tokenized)


def test_stats_count_truncation_splits_and_waste(tokenized):
    L = 64
    packed = {s: pack(tokenized, L, s) for s in ("wrapped", "bfd")}
    stats = packing_stats(tokenized, packed, L, batch_size=2)
    lengths = tokenized["length"]
    assert stats["strategies"]["bfd"]["truncated_samples"] == sum(n > L for n in lengths)
    assert stats["strategies"]["bfd"]["tokens_lost_to_truncation"] == sum(max(0, n - L) for n in lengths)
    assert stats["strategies"]["wrapped"]["tokens_kept"] == sum(lengths)
    assert stats["strategies"]["wrapped"]["chunks"] == -(-sum(lengths) // L)  # only the last chunk is partial
    bfd = stats["strategies"]["bfd"]
    assert bfd["tokens_kept"] == sum(lengths) - bfd["tokens_lost_to_truncation"]
    assert bfd["efficiency"] == pytest.approx(bfd["tokens_kept"] / (bfd["chunks"] * L))
    assert sum(v["samples"] for v in stats["tokens_per_source"].values()) == len(tokenized)
    assert sum(v["tokens"] for v in stats["tokens_per_source"].values()) == stats["tokens"]
    assert 0 < stats["unpacked_padding_waste"]["batch_2"] < 1


def test_padding_waste_and_split_counting_by_hand():
    assert padding_waste([4, 2, 3, 3], 2) == pytest.approx(1 - 12 / 14)
    assert padding_waste([5, 5], 2) == 0
    # chunks of 4: [0-3][4-7][8-..]: sample 2 (3..5) and sample 3 (6..8) cross an edge
    assert wrapped_split_samples([3, 3, 3], 4) == 2
    assert wrapped_split_samples([4, 4], 4) == 0


def test_bad_strategy_names_the_key(tokenized):
    with pytest.raises(ValueError, match="packing.strategy"):
        pack(tokenized, 64, "greedy")


def _multi_sample_chunk(tokenized):
    packed = pack(tokenized, 256, "bfd")
    chunk = max(packed, key=lambda c: len(c["seq_lengths"]))
    assert len(chunk["seq_lengths"]) >= 2
    return chunk


@pytest.mark.parametrize("mode", ["position_ids", "block_mask"])
def test_boundary_aware_packing_loss_equals_samples_alone(model, tokenized, mode):
    chunk = _multi_sample_chunk(tokenized)
    eq = loss_equivalence(model, chunk["input_ids"], chunk["seq_lengths"], mode=mode)
    assert eq.max_abs_diff_boundary_aware < 1e-4
    # concatenate-and-chunk: later samples attend to earlier ones, so their losses change
    assert eq.max_abs_diff_concatenated > 1e-2
    assert eq.mean_loss_boundary_aware == pytest.approx(eq.mean_loss_alone, abs=1e-5)


def test_position_ids_are_ignored_with_a_kv_cache_which_the_helper_avoids(model, tokenized):
    """The pitfall the helper guards against: eval mode + use_cache silently drops packing."""
    chunk = _multi_sample_chunk(tokenized)
    ids = torch.tensor([chunk["input_ids"]])
    pos = torch.tensor([position_ids(chunk)])
    with torch.no_grad():
        cached = model(input_ids=ids, position_ids=pos, use_cache=True).logits[0]
        helper = chunk_logits(model, chunk["input_ids"], chunk["seq_lengths"])
        masked = chunk_logits(model, chunk["input_ids"], chunk["seq_lengths"], mode="block_mask")
    assert torch.allclose(helper, masked, atol=1e-4)
    assert not torch.allclose(cached, helper, atol=1e-3)


def test_block_mask_shape_and_blocks():
    m = block_causal_mask([2, 3], torch.float32)
    assert m.shape == (1, 1, 5, 5)
    allowed = m[0, 0] == 0
    assert allowed[1, 0] and not allowed[0, 1]  # causal
    assert not allowed[2, 1] and allowed[4, 2]  # blocked across samples, open within


def test_plot_chunk_draws_samples_mask_and_per_token_change():
    from med42_utils.packing import IGNORE
    from med42_utils.packing.stage import equivalence_table, plot_chunk

    lens = [5, 4]
    eq = {"seq_lengths": lens, "train_steps": 3,
          "chunk": {"input_ids": list(range(9)), "labels": [IGNORE] * 3 + [1, 2] + [IGNORE] * 2 + [3, 4]},
          "trained": {"diff_concatenated": [0.0] * 5 + [0.0, 1.5, -0.5, 0.2],
                      "samples": [{"sample": 1, "tokens": 5, "alone": 2.0, "boundary_aware": 2.0, "concatenated": 2.0},
                                  {"sample": 2, "tokens": 4, "alone": 3.0, "boundary_aware": 3.0, "concatenated": 2.6}]},
          "untrained": {"samples": [{"sample": 1, "tokens": 5, "alone": 6.9, "boundary_aware": 6.9, "concatenated": 6.9},
                                    {"sample": 2, "tokens": 4, "alone": 6.9, "boundary_aware": 6.9, "concatenated": 6.9}]}}
    fig = plot_chunk(eq)
    seg_ax, mask_ax, diff_ax = fig.axes
    assert seg_ax.images[0].get_array().tolist() == [[0] * 5 + [1] * 4]
    assert mask_ax.images[0].get_array().tolist() == [[0, 0, 0, 1, 1, 0, 0, 1, 1]]
    assert [b.get_height() for b in diff_ax.patches] == pytest.approx([0, 0, 0, 0, 0, 0, 1.5, 0.5, 0.2])
    assert all(ax.lines[0].get_xdata()[0] == 4.5 for ax in fig.axes)  # the boundary between the samples
    table = equivalence_table(eq)
    assert table.loc[("trained 3 steps", 2), "concatenated - alone"] == pytest.approx(-0.4)


# --- found by mutation testing (docs/testing.md) ---

def test_check_labels_catches_one_prompt_token_labelled_before_a_single_reply(tok, curated):
    row = curated[1]  # one assistant turn: the labelled span count is right, its text is not
    out = tokenize_conversation(tok, row["messages"])
    labels = list(out["labels"])
    first = next(i for i, t in enumerate(labels) if t != IGNORE)
    labels[first - 1] = out["input_ids"][first - 1]  # the last prompt token joins the reply's span
    with pytest.raises(LabelError, match="{% generation %} markers"):
        check_labels(tok, row["messages"], labels)


def test_tokenized_rows_keep_id_source_and_count_their_tokens(tokenized, curated):
    assert sorted(tokenized.column_names) == ["id", "input_ids", "labels", "length", "n_labels", "source"]
    assert tokenized["id"] == curated["id"] and tokenized["source"] == curated["source"]
    for row in tokenized:
        assert row["length"] == len(row["input_ids"]) > 0
        assert row["n_labels"] == sum(t != IGNORE for t in row["labels"]) > 0


def test_empty_conversations_and_repeated_drops_are_counted(tok, curated):
    from datasets import Dataset

    rows = curated.to_list()[:2] + [
        {"id": "e1", "source": "medqa", "messages": []},
        {"id": "e2", "source": "medqa", "messages": [{"role": "user", "content": "a"}]},
        {"id": "e3", "source": "medqa", "messages": [{"role": "user", "content": "b"}]},
    ]
    ds, drops = tokenize_dataset(Dataset.from_list(rows), tok)
    assert len(ds) == 2
    assert drops == {"medqa": {"no_messages": 1, "no_assistant_turn": 2}}


def test_tokenize_dataset_checks_the_labels_by_default(tok, curated, monkeypatch):
    from med42_utils.packing import labels as labels_mod

    def every_token_labelled(tokenizer, messages):  # what a template without generation markers gives
        ids = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
        return {"input_ids": list(ids), "labels": list(ids)}

    monkeypatch.setattr(labels_mod, "tokenize_conversation", every_token_labelled)
    small = curated.select(range(2))
    with pytest.raises(LabelError, match="assistant turns"):
        tokenize_dataset(small, tok)
    assert len(tokenize_dataset(small, tok, check=False)[0]) == 2


def test_packing_stats_by_hand():
    # lengths 3, 5, 10 into chunks of 8: wrapped [8, 8, 2] cuts the third sample; bfd [3+5], [10 cut to 8]
    tokenized = {"length": [3, 5, 10], "source": ["b", "a", "b"], "n_labels": [1, 2, 4]}
    packed = {"wrapped": {"input_ids": [[0] * 8, [0] * 8, [0] * 2]}, "bfd": {"input_ids": [[0] * 8, [0] * 8]}}
    s = packing_stats(tokenized, packed, 8, batch_size=2)
    assert (s["samples"], s["tokens"], s["label_tokens"], s["max_length"]) == (3, 18, 7, 8)
    assert s["sample_length"] == {"mean": 6.0, "max": 10}
    assert s["unpacked_padding_waste"] == pytest.approx({"batch_2": 1 - 18 / 20, "pad_to_max_length": 1 - 18 / 24})
    assert s["tokens_per_source"] == {"a": {"samples": 1, "tokens": 5, "label_tokens": 2},
                                      "b": {"samples": 2, "tokens": 13, "label_tokens": 5}}
    assert list(s["tokens_per_source"]) == ["a", "b"]
    assert s["strategies"]["wrapped"] == pytest.approx({"chunks": 3, "tokens_kept": 18, "efficiency": 0.75,
                                                        "fill": [1.0, 1.0, 0.25], "truncated_samples": 0,
                                                        "tokens_lost_to_truncation": 0, "split_samples": 1})
    assert s["strategies"]["bfd"] == pytest.approx({"chunks": 2, "tokens_kept": 16, "efficiency": 1.0, "fill": [1.0, 1.0],
                                                    "truncated_samples": 1, "tokens_lost_to_truncation": 2,
                                                    "split_samples": 0})
    empty = packing_stats({"length": [], "source": [], "n_labels": []}, {"bfd": {"input_ids": []}}, 8, batch_size=2)
    assert empty["sample_length"] == {"mean": 0.0, "max": 0}
    assert empty["unpacked_padding_waste"] == {"batch_2": 0.0, "pad_to_max_length": 0.0}
    assert empty["strategies"]["bfd"]["efficiency"] == 0.0 and empty["strategies"]["bfd"]["chunks"] == 0
    exact = packing_stats({"length": [8], "source": ["a"], "n_labels": [1]}, {"bfd": {"input_ids": [[0] * 8]}}, 8, 2)
    assert exact["strategies"]["bfd"]["truncated_samples"] == 0  # a sample of exactly max_length fits
    assert wrapped_split_samples([1, 1], 4) == 0  # two samples inside one chunk: neither is cut


# --- found by mutation testing, re-run without the spurious timeouts (docs/testing.md) ---

def test_packing_a_dataset_without_its_token_columns_or_with_an_unknown_strategy_names_the_fix(tokenized):
    with pytest.raises(ValueError, match=r"dataset to pack lacks \['labels'\]; tokenize it with "
                                         r"packing.tokenize_dataset first"):
        pack(tokenized.remove_columns(["labels"]), 64, "bfd")
    with pytest.raises(ValueError, match=r"unknown packing strategy 'greedy'; valid: wrapped, bfd \(packing.strategy\)"):
        pack(tokenized, 64, "greedy")


def test_more_samples_than_one_map_batch_still_pack_as_one_stream():
    """datasets maps in batches of 1,000 rows by default; packing must see all samples at once, or each batch ends
    in its own partial chunk (wrapped) and bfd bins each batch apart."""
    from datasets import Dataset

    n = 1500
    ds = Dataset.from_dict({"input_ids": [[1, 2, 3, 4]] * n, "labels": [[-100, 2, 3, 4]] * n})
    wrapped = pack(ds, 1024, "wrapped")
    assert [len(c) for c in wrapped["input_ids"]] == [1024] * 5 + [6000 - 5 * 1024]  # one partial chunk, at the end
    bfd = pack(ds, 1024, "bfd")
    assert len(bfd) == 6 and sorted(len(c) for c in bfd["input_ids"]) == [880] + [1024] * 5


def test_position_ids_restart_per_sample_for_bfd_and_count_the_chunk_for_wrapped():
    assert position_ids({"input_ids": [7, 8, 9, 10, 11], "seq_lengths": [2, 3]}) == [0, 1, 0, 1, 2]
    assert position_ids({"input_ids": [7, 8, 9]}) == [0, 1, 2]
