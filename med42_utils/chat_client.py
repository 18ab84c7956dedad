"""The one client of OpenAI-compatible /chat/completions endpoints: the answers through a server per model
(med42_utils.serve) and the judge's backend 'openai' (judging.judge.OpenAIJudge) send their requests here."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor


class ServerError(RuntimeError):
    """A server that did not come up or a request that failed; `code` is the last HTTP status answered, if any."""

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.code = code


def chat(api_base: str, model: str, messages: list[dict], sampling: dict, seed: int | None = None,
         retries: int = 3, backoff: float = 1.0, timeout: float = 300.0, api_key: str | None = None,
         extra: dict | None = None) -> tuple[str, int]:
    """One /chat/completions request: (text, completion tokens). Server errors (5xx, 408, 409, 429) and dropped
    connections are retried with backoff; anything else (another HTTP error, a response of another shape) raises
    at once, naming the endpoint."""
    body = {"model": model, "messages": messages, "temperature": sampling["temperature"],
            "top_p": sampling["top_p"], "max_tokens": sampling["max_new_tokens"]}
    if seed is not None:
        body["seed"] = seed
    body.update(extra or {})  # e.g. vLLM's top_k / repetition_penalty (transformers serve is not sent them)
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = "Bearer " + api_key
    req = urllib.request.Request(f"{api_base.rstrip('/')}/chat/completions", json.dumps(body).encode(), headers)
    last, code = "", None
    for i in range(retries + 1):
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                doc = json.loads(r.read().decode())
            text = doc["choices"][0]["message"]["content"] or ""
            return text, int((doc.get("usage") or {}).get("completion_tokens") or 0)
        except urllib.error.HTTPError as e:
            last, code = f"HTTP {e.code} from {api_base}: {e.read()[:300].decode(errors='replace')}", e.code
            if e.code not in (408, 409, 429) and e.code < 500:
                break
        except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
            last, code = f"cannot reach {api_base}: {getattr(e, 'reason', e)}", None
        except (KeyError, IndexError, TypeError, ValueError) as e:
            last, code = f"unexpected response shape from {api_base}: {type(e).__name__}", None
            break
        if i < retries:
            time.sleep(backoff * 2**i)
    raise ServerError(f"{last} (after {i + 1} tries)", code)


def chat_many(api_base: str, model: str, conversations: list[list[dict]], sampling: dict, concurrency: int = 8,
              seed: int | None = None, **kw):
    """Yield (text, completion tokens) for each conversation in order, at most `concurrency` in flight."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1 (got {concurrency})")
    with ThreadPoolExecutor(concurrency) as pool:
        futures = [pool.submit(chat, api_base, model, c, sampling, None if seed is None else seed + i, **kw)
                   for i, c in enumerate(conversations)]
        try:
            for f in futures:
                yield f.result()
        finally:
            for f in futures:
                f.cancel()
