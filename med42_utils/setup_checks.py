"""00's "What you should see": the chat template's loss mask and the plan's arithmetic, checked on this run."""
from __future__ import annotations

from .expectations import expect, show_expectations


def setup_expectations(stage_dir, params, enc: dict, tokenizer, runnable: dict):
    """Checks on 00's own results: the assistant mask covers the answer only, the rendered conversation carries
    the card's system prompt verbatim, and (at tiny) this machine can train both stages."""
    from .chat import SYSTEM_PROMPT

    mask = enc["assistant_masks"]
    ids = [t for t, m in zip(enc["input_ids"], mask) if m]
    text = tokenizer.decode(ids)
    rendered = tokenizer.decode(enc["input_ids"])
    items = [
        expect("the loss mask covers the assistant's answer and nothing before it",
               0 < sum(mask) < len(mask) and not any(mask[: mask.index(1)]) and text.rstrip().endswith("<|eot_id|>"),
               f"{sum(mask)} of {len(mask)} tokens carry loss, ending {text[-20:]!r}"),
        expect("the rendered conversation starts with the model card's system prompt, verbatim",
               SYSTEM_PROMPT in rendered and rendered.index(SYSTEM_PROMPT) < rendered.index("<|start_header_id|>user"),
               f"system prompt of {len(SYSTEM_PROMPT)} characters found in the {len(rendered):,}-character rendering"),
    ]
    if params.size == "tiny":
        items.append(expect("size tiny trains on this machine (both stages)", all(runnable.values()),
                            ", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in runnable.items())))
    return show_expectations(stage_dir, "00_setup", items)
