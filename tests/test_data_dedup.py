"""Exact and near-duplicate removal (datasketch MinHash LSH) across sources, with counts per source."""
from __future__ import annotations

import numpy as np
from datasets import Dataset

from med42_utils.data.dedup import Signer, add_dedup_columns, exact_hash, exact_keep_mask, near_keep_mask

BASE = (
    "Regular exercise lowers resting blood pressure, improves cholesterol, helps control weight and blood sugar "
    "and strengthens the heart muscle so that it pumps more blood with every beat. Adults should aim for at least "
    "one hundred and fifty minutes of moderate activity such as brisk walking each week, plus strength work twice "
    "a week, and people with heart disease should ask their doctor which activities are safe for them."
)
OTHER = (
    "Iron deficiency anaemia is the commonest anaemia worldwide. It causes fatigue and pallor, a low mean corpuscular "
    "volume and a low ferritin; treatment is oral iron and finding the cause of blood loss, such as heavy periods or a "
    "bleeding lesion of the gut in older adults, which needs endoscopy."
)


def _chat(user, answer):
    return [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]


def _ds(rows):
    return Dataset.from_dict({"id": [f"r{i}" for i in range(len(rows))], "source": [s for s, _ in rows], "messages": [m for _, m in rows]})


def test_exact_hash_ignores_case_punctuation_and_spacing():
    assert exact_hash("What is Virchow's triad?") == exact_hash("what is virchow s   triad")
    assert exact_hash("What is Virchow's triad?") != exact_hash("What is Virchow's law?")
    assert exact_keep_mask(["a", "b", "a", "c", "b"]).tolist() == [True, True, False, True, False]


def test_minhash_estimates_similarity():
    sign = Signer(num_perm=128, shingle_size=5)
    a, b, c = sign(BASE), sign(BASE.replace("brisk walking", "fast walking")), sign(OTHER)
    assert np.mean(a == b) > 0.8
    assert np.mean(a == c) < 0.2
    assert np.array_equal(a, Signer(128, 5)(BASE))  # deterministic across signers (and processes)


def test_near_duplicates_removed_across_sources_first_kept():
    ds = _ds([
        ("opengpt", _chat("Benefits of exercise for the heart?", BASE)),
        ("ultrachat", _chat("What are the benefits of exercise for the heart?", BASE.replace("brisk walking", "fast walking"))),
        ("medquad", _chat("What is iron deficiency anaemia?", OTHER)),
        ("mediqa", _chat("Tell me about the heart.", "The heart is a muscular pump with four chambers.")),
    ])
    ds = add_dedup_columns(ds, num_perm=128, shingle_size=5, near=True, num_proc=None)
    keep = near_keep_mask(ds, num_perm=128, threshold=0.8)
    assert keep.tolist() == [True, False, True, True]


def test_near_dedup_keeps_distinct_rows_and_threshold_matters():
    half = " ".join(BASE.split()[: len(BASE.split()) // 2])
    ds = _ds([("a", _chat("q", BASE)), ("b", _chat("q", half + " " + OTHER))])
    ds = add_dedup_columns(ds, num_perm=128, shingle_size=5, near=True, num_proc=None)
    assert near_keep_mask(ds, 128, 0.8).tolist() == [True, True]


def test_bundled_near_duplicate_is_clearly_above_threshold():
    """The planted OpenGPT/UltraChat pair must not sit on the LSH threshold, where detection is a coin flip."""
    from med42_utils.data.dedup import shingles
    from med42_utils.data.loading import load_source
    from med42_utils.data.registry import get_source
    from med42_utils.data.text import conversation_text
    from med42_utils.params import load_params

    texts = []
    for key in ("opengpt", "ultrachat"):
        spec = get_source(key)
        texts += [conversation_text(spec.adapter(r)) for r in load_source(spec, "bundled", None) if "regular exercise" in str(r)]
    a, b = (shingles(t, load_params("tiny").data.dedup.shingle_size) for t in texts)
    assert len(a & b) / len(a | b) >= load_params("tiny").data.dedup.minhash_threshold + 0.08


def test_near_dedup_keeps_the_first_row_of_each_cluster():
    """Hand-built signatures: A~B share band 0, B~C share band 1, A and C share no band; D is alone.
    Linked rows form one cluster (A, B, C) whose first row A is kept; D is kept."""
    from datasets import Dataset

    from med42_utils.data.dedup import lsh_bands

    num_perm = 128
    b, r = lsh_bands(0.8, num_perm)
    rng = np.random.default_rng(0)
    a, c, d = (rng.integers(0, 2**32, num_perm, dtype=np.uint64).astype(np.uint32) for _ in range(3))
    bb = rng.integers(0, 2**32, num_perm, dtype=np.uint64).astype(np.uint32)
    bb[:r] = a[:r]  # band 0 equals A's
    bb[r : 2 * r] = c[r : 2 * r]  # band 1 equals C's
    ds = Dataset.from_dict({"minhash": [a.tolist(), bb.tolist(), c.tolist(), d.tolist()]})
    assert b >= 2 and near_keep_mask(ds, num_perm, 0.8).tolist() == [True, False, False, True]
    # read in batches smaller than the dataset: the same answer (each batch's band keys land in its own rows)
    assert near_keep_mask(ds, num_perm, 0.8, batch_size=1).tolist() == [True, False, False, True]
    assert near_keep_mask(ds, num_perm, 0.8, batch_size=3).tolist() == [True, False, False, True]
    assert near_keep_mask(ds, num_perm, 0.8).dtype == bool  # a mask Dataset.filter / numpy indexing can take


def test_shingles_of_a_short_text_are_every_window_of_words():
    """Six words at size 5 are two shingles; five words one; fewer words the whole text (normalized)."""
    from med42_utils.data.dedup import shingles

    assert shingles("A b, C d e f", 5) == {b"a b c d e", b"b c d e f"}
    assert shingles("one two three four five six seven", 5) == {
        b"one two three four five", b"two three four five six", b"three four five six seven"}
    assert shingles("a b c d e", 5) == {b"a b c d e"}
    assert shingles("Short text!", 5) == {b"short text"}


def test_answers_that_differ_only_in_their_last_word_are_both_kept():
    """Same question, answers differing in the last word: at size 5 they share 2 of 4 shingles (Jaccard 0.5),
    far under tiny's 0.8 threshold, so both rows stay. A shingle loop that skipped the last window would make
    the two texts identical and drop one."""
    from med42_utils.data.dedup import shingles
    from med42_utils.data.text import conversation_text
    from med42_utils.params import load_params

    d = load_params("tiny").data.dedup
    a = _chat("Antidote for paracetamol overdose?", "Acetylcysteine, given intravenously.")
    b = _chat("Antidote for paracetamol overdose?", "Acetylcysteine, given orally.")
    sa, sb = (shingles(conversation_text(m), d.shingle_size) for m in (a, b))
    assert len(sa & sb) / len(sa | sb) == 0.5
    ds = add_dedup_columns(_ds([("opengpt", a), ("ultrachat", b)]), num_perm=d.num_perm,
                           shingle_size=d.shingle_size, near=True, num_proc=None)
    assert near_keep_mask(ds, d.num_perm, d.minhash_threshold).tolist() == [True, True]
    assert exact_keep_mask(ds["exact_hash"]).tolist() == [True, True]


def test_signatures_are_datasketch_minhash_of_the_shingles_with_the_stated_scheme_and_hash():
    """Signer = datasketch's MinHash (seed 1, affine32 permutations, 32-bit xxhash of each shingle) of the text's
    shingles: the signature the LSH bands are cut from, the same in every process and every run."""
    from datasketch import MinHash

    from med42_utils.data.dedup import MINHASH_SEED, SCHEME, shingles, xxh32

    assert (MINHASH_SEED, SCHEME) == (1, "affine32") and xxh32(b"abc") == 852579327  # xxh32 of b"abc", seed 0
    m = MinHash(num_perm=64, seed=1, scheme="affine32", hashfunc=xxh32)
    m.update_batch(list(shingles(BASE, 5)))
    assert np.array_equal(Signer(64, 5)(BASE), m.hashvalues)
    sha1 = MinHash(num_perm=64, seed=1, scheme="affine32")  # datasketch's default shingle hash
    sha1.update_batch(list(shingles(BASE, 5)))
    assert not np.array_equal(Signer(64, 5)(BASE), sha1.hashvalues)


def test_dedup_columns_are_a_16_hex_hash_and_uint32_signatures_only_when_near():
    ds = _ds([("a", _chat("q", BASE)), ("b", _chat("q", OTHER))])
    near = add_dedup_columns(ds, num_perm=64, shingle_size=5, near=True, num_proc=None)
    assert all(len(h) == 16 and int(h, 16) >= 0 for h in near["exact_hash"])
    assert near.features["minhash"].feature.dtype == "uint32" and len(near[0]["minhash"]) == 64
    exact_only = add_dedup_columns(ds, num_perm=64, shingle_size=5, near=False, num_proc=None)
    assert "minhash" not in exact_only.column_names and exact_only["exact_hash"] == near["exact_hash"]


def test_an_empty_or_missing_text_normalizes_to_nothing():
    """None, '' and punctuation alone are all the empty text: the same exact hash, no words."""
    from med42_utils.data.text import normalize, words

    assert normalize(None) == normalize("") == normalize("  ?! -- ") == ""
    assert words(None) == words("") == []
    assert exact_hash("") == exact_hash("...") == exact_hash(None)
    assert exact_hash("") != exact_hash("xxxx")
