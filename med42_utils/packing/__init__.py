"""02_packing: assistant-only labels, TRL packing (wrapped vs bfd), loss equivalence, stats."""
from .equivalence import Equivalence, block_causal_mask, chunk_logits, loss_equivalence, per_token_nll
from .labels import IGNORE, LabelError, check_labels, tokenize_conversation, tokenize_dataset
from .pack import STRATEGIES, pack, packing_stats, padding_waste, position_ids, wrapped_split_samples

__all__ = [
    "Equivalence", "IGNORE", "LabelError", "STRATEGIES", "block_causal_mask", "check_labels", "chunk_logits",
    "loss_equivalence", "pack", "packing_stats", "padding_waste", "per_token_nll", "position_ids",
    "tokenize_conversation", "tokenize_dataset", "wrapped_split_samples",
]
