"""Is a packed chunk's loss the same as its samples' losses run alone?

With boundary-aware packing (position ids restart per sample, attention kept inside each sample)
it is, to float tolerance; with concatenate-and-chunk (continuous positions, causal attention
over the whole chunk) later samples see earlier ones and their losses change.

Transformers honours packed position ids only when it builds the mask itself without a KV cache
(attention_mask=None, past_key_values=None): a model in eval mode with use_cache on silently
ignores them. `chunk_logits` therefore always passes use_cache=False, and can instead build an
explicit block-diagonal 4D mask (mode="block_mask"), which any attention kernel honours.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


def block_causal_mask(seq_lengths: list[int], dtype: torch.dtype) -> torch.Tensor:
    """Additive [1, 1, n, n] mask: causal inside each sample, blocked across samples."""
    n = sum(seq_lengths)
    seg = torch.repeat_interleave(torch.arange(len(seq_lengths)), torch.tensor(seq_lengths))
    allowed = (seg[:, None] == seg[None, :]) & torch.ones(n, n, dtype=torch.bool).tril()
    mask = torch.zeros(n, n, dtype=dtype)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask[None, None]


@torch.no_grad()
def chunk_logits(model, input_ids: list[int], seq_lengths: list[int] | None, mode: str = "position_ids") -> torch.Tensor:
    """Logits [n, vocab] of one chunk.

    seq_lengths=None: one continuous sequence (positions 0..n-1, full causal attention).
    mode "position_ids": restarting position ids, no attention mask, no cache (transformers
    derives the per-sample mask from the position ids). mode "block_mask": the same position ids
    plus an explicit block-diagonal mask.
    """
    if mode not in ("position_ids", "block_mask"):
        raise ValueError(f"mode must be 'position_ids' or 'block_mask', got {mode!r}")
    ids = torch.tensor([input_ids], device=model.device)  # the model's device: a CUDA model gets CUDA inputs
    if seq_lengths is None:
        return model(input_ids=ids, use_cache=False).logits[0].float()
    if sum(seq_lengths) != len(input_ids):
        raise ValueError(f"seq_lengths sum to {sum(seq_lengths)} but the chunk has {len(input_ids)} tokens")
    pos = torch.tensor([[p for n in seq_lengths for p in range(n)]], device=model.device)
    kwargs = {"position_ids": pos, "use_cache": False}
    if mode == "block_mask":
        kwargs["attention_mask"] = block_causal_mask(seq_lengths, model.dtype).to(model.device)
    return model(input_ids=ids, **kwargs).logits[0].float()


def per_token_nll(logits: torch.Tensor, input_ids: list[int], seq_lengths: list[int]) -> torch.Tensor:
    """NLL of every next token inside each sample (never across a sample boundary)."""
    ids = torch.tensor(input_ids, device=logits.device)
    out, start = [], 0
    for n in seq_lengths:
        lg, tgt = logits[start:start + n - 1], ids[start + 1:start + n]
        out.append(torch.nn.functional.cross_entropy(lg, tgt, reduction="none"))
        start += n
    return torch.cat(out)


@dataclass
class Equivalence:
    samples: int
    tokens: int
    max_abs_diff_boundary_aware: float
    max_abs_diff_concatenated: float
    mean_loss_alone: float
    mean_loss_boundary_aware: float
    mean_loss_concatenated: float


def _three_ways(model, input_ids: list[int], seq_lengths: list[int], mode: str = "position_ids"):
    """Per-token next-token losses of a chunk's samples: each run alone, inside the chunk boundary-aware (`mode`),
    and inside the chunk plainly concatenated. In eval mode (no dropout); the model's mode is restored."""
    was_training = model.training
    model.eval()  # no dropout; use_cache=False keeps packed position ids honoured in eval mode
    try:
        alone, start = [], 0
        for n in seq_lengths:
            seg = input_ids[start:start + n]
            alone.append(per_token_nll(chunk_logits(model, seg, None), seg, [n]))
            start += n
        packed = per_token_nll(chunk_logits(model, input_ids, seq_lengths, mode), input_ids, seq_lengths)
        concat = per_token_nll(chunk_logits(model, input_ids, None), input_ids, seq_lengths)
    finally:
        model.train(was_training)
    return torch.cat(alone), packed, concat


def loss_equivalence(model, input_ids: list[int], seq_lengths: list[int], mode: str = "position_ids") -> Equivalence:
    """Per-token losses of one bfd chunk three ways: samples alone, packed with restarting
    positions (boundary-aware), and packed as one continuous sequence (concatenate-and-chunk)."""
    if len(seq_lengths) < 2:
        raise ValueError("the demonstration needs a chunk holding at least two samples")
    alone_t, packed, concat = _three_ways(model, input_ids, seq_lengths, mode)
    return Equivalence(
        samples=len(seq_lengths),
        tokens=int(alone_t.numel()),
        max_abs_diff_boundary_aware=float((packed - alone_t).abs().max()),
        max_abs_diff_concatenated=float((concat - alone_t).abs().max()),
        mean_loss_alone=float(alone_t.mean()),
        mean_loss_boundary_aware=float(packed.mean()),
        mean_loss_concatenated=float(concat.mean()),
    )


def per_sample_losses(model, input_ids: list[int], seq_lengths: list[int]) -> dict:
    """Mean next-token loss of each sample in a chunk, three ways (alone, boundary-aware, concatenated), and the
    per-token difference concatenated - alone along the chunk (0 at each sample's first token: nothing predicts it)."""
    alone_t, packed, concat = _three_ways(model, input_ids, seq_lengths)
    alone = torch.split(alone_t, [n - 1 for n in seq_lengths])
    rows, diff, i = [], [], 0
    for k, a in enumerate(alone):
        n = a.numel()
        rows.append({"sample": k + 1, "tokens": n + 1, "alone": float(a.mean()),
                     "boundary_aware": float(packed[i:i + n].mean()), "concatenated": float(concat[i:i + n].mean())})
        diff += [0.0] + (concat[i:i + n] - a).tolist()
        i += n
    return {"samples": rows, "diff_concatenated": diff}


def briefly_train(model, chunks: list[list[int]], steps: int, lr: float = 1e-2, batch: int = 4, seed: int = 0):
    """A few AdamW steps of next-token prediction on every token of full chunks, so that the model starts using
    its context (an untrained model predicts every token alike, whatever precedes it). In place; returns model."""
    if not chunks:
        raise ValueError("briefly_train needs at least one full chunk")
    g = torch.Generator().manual_seed(seed)
    x = torch.tensor(chunks)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        b = x[torch.randint(len(x), (batch,), generator=g)]
        model(input_ids=b, labels=b, use_cache=False).loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    return model
