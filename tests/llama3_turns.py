"""Which turn each token of a Llama 3 chat belongs to, read from the token ids alone (independent of the packing
and label code it checks): '<|start_header_id|>role<|end_header_id|>' opens a turn, '<|eot_id|>' closes it."""
from __future__ import annotations

HEADER = "header"    # <|begin_of_text|>, <|start_header_id|> role <|end_header_id|> and the blank line after it
UNKNOWN = "unknown"  # before the first header of a row that starts inside a turn (packing cuts conversations)


def token_turns(ids: list[int], tokenizer) -> list[str]:
    """One entry per token: 'system' / 'user' / 'assistant' for a turn's text and its closing <|eot_id|>,
    HEADER for the markup around the role, UNKNOWN before the first header of the row."""
    start = tokenizer.convert_tokens_to_ids("<|start_header_id|>")
    end = tokenizer.convert_tokens_to_ids("<|end_header_id|>")
    eot = tokenizer.convert_tokens_to_ids("<|eot_id|>")
    bos = tokenizer.convert_tokens_to_ids("<|begin_of_text|>")
    out, role, in_header, name, blank = [], UNKNOWN, False, [], False
    for t in ids:
        if blank and t not in (start, eot) and not tokenizer.decode([t]).strip():
            out.append(HEADER)  # the "\n\n" that ends a header
            continue
        blank = False
        if t == start:
            in_header, name = True, []
            out.append(HEADER)
        elif t == end and in_header:
            in_header, role, blank = False, tokenizer.decode(name).strip(), True
            out.append(HEADER)
        elif in_header:
            name.append(t)
            out.append(HEADER)
        elif t == bos:
            out.append(HEADER)
        else:
            out.append(role)
            if t == eot:
                role = HEADER  # between turns
    return out
