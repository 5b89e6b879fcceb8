"""A small OpenAI-compatible completions server over a local transformers causal LM, for tests and benchmarks.

It serves ``POST /v1/completions``, ``POST /v1/chat/completions`` (the messages' contents joined by
blank lines, greedy, no chat template: a stand-in for a hosted chat API) and ``GET /v1/models`` with
the fields the ``openai`` teacher and readers read, the way vLLM fills them:

- ``echo=True`` with ``logprobs=N``: ``tokens``, ``token_logprobs`` (``None`` for the first
  token), ``top_logprobs`` and ``text_offset`` for the prompt and then the generated tokens;
  offsets are cumulative token-text lengths, and a BOS token counts with its own text
  (``"[CLS]"``, ``"<s>"``), so they are shifted against the prompt as vLLM's are;
- ``prompt_logprobs=N`` (vLLM's extension): per prompt token ``{token_id: {logprob, rank,
  decoded_token}}`` holding the prompt's token and the top ``N``;
- ``usage`` with ``prompt_tokens``; a prompt over the model's context gets HTTP 400 with
  vLLM's wording ("This model's maximum context length is ...").

Test modes: ``fail_first=N`` answers the first ``N`` completion requests with HTTP 503 and then
recovers; ``logprobs=False`` ignores ``echo``/``logprobs``/``prompt_logprobs``, like a server
that cannot score prompts. Prompts are tokenised as the ``hf`` teacher does (BOS when the
tokenizer has one, no other special tokens) and scored one at a time by a full forward pass.

It lives in the package (``uae.testing``, outside the product's namespaces), not under ``tests/``,
because the benchmark (``bench/labeling.py``) serves models with it too, and because it is a handy
way to try the ``openai`` teacher by hand::

    python -m uae.testing /path/to/causal-lm --port 8000
    uae label DATA --teacher openai:http://127.0.0.1:8000/v1
"""

from __future__ import annotations

import argparse
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from uae.teachers.causal_lm import bos_ids


class CompletionRequest(BaseModel):
    """The fields of an OpenAI completions request that this server reads; others are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str | None = None
    prompt: str | list[str]
    max_tokens: int = 16
    echo: bool = False
    logprobs: int | None = None
    prompt_logprobs: int | None = None


class ChatRequest(BaseModel):
    """The fields of an OpenAI chat completions request that this server reads; others are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str | None = None
    messages: list[dict[str, Any]]
    max_tokens: int = 16
    logprobs: bool = False
    top_logprobs: int | None = None


@dataclass
class ServerState:
    """What a test can inspect: requests seen and failures served."""

    requests: int = 0
    failures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Scorer:
    """A causal LM and its tokenizer, scoring prompts one by one with a full forward pass."""

    def __init__(self, model_dir: str, tokenizer: str | None = None) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        local = Path(model_dir).is_dir()
        tokenizer = tokenizer or model_dir
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer, local_files_only=Path(tokenizer).is_dir())
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=local).eval()
        self.context = int(self.model.config.max_position_embeddings)
        self.bos = bos_ids(self.tokenizer)
        self.lock = threading.Lock()

    def tokenize(self, text: str) -> tuple[list[int], list[str]]:
        """Ids and token texts; each token's text runs from the previous token's end to its own end."""
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        texts, previous_end = [], 0
        for _, end in encoded["offset_mapping"]:
            texts.append(text[previous_end:end])
            previous_end = end
        bos_texts = self.tokenizer.convert_ids_to_tokens(self.bos)
        return self.bos + list(encoded["input_ids"]), list(bos_texts) + texts

    @torch.inference_mode()
    def log_probs(self, ids: list[int]) -> torch.Tensor:
        """``[len(ids), vocab]`` log-probs: row ``i`` predicts token ``i + 1``."""
        with self.lock:
            logits = self.model(input_ids=torch.tensor([ids]), use_cache=False).logits[0]
        return torch.log_softmax(logits.float(), dim=-1)


def _error(status: int, message: str) -> JSONResponse:
    kind = "BadRequestError" if status == 400 else "ServiceUnavailableError"
    return JSONResponse({"object": "error", "message": message, "type": kind, "code": status}, status_code=status)


def _complete(scorer: _Scorer, prompt: str, request: CompletionRequest, with_logprobs: bool) -> tuple[dict[str, Any], int, int]:
    """One choice (without its index), its prompt token count and its generated token count."""
    ids, texts = scorer.tokenize(prompt)
    prompt_count = len(ids)
    generated: list[int] = []
    log_probs = scorer.log_probs(ids)
    for _ in range(request.max_tokens):
        generated.append(int(log_probs[-1].argmax()))
        log_probs = scorer.log_probs(ids + generated)
    all_ids = ids + generated
    all_texts = texts + [scorer.tokenizer.decode([g]) for g in generated]
    completion = "".join(all_texts[prompt_count:])
    choice: dict[str, Any] = {"text": completion, "logprobs": None, "finish_reason": "length"}
    if with_logprobs and request.echo and request.logprobs is not None:
        choice["text"] = prompt + completion
        choice["logprobs"] = _echo_logprobs(scorer, all_ids, all_texts, log_probs, request.logprobs)
    elif with_logprobs and request.logprobs is not None and generated:
        echo = _echo_logprobs(scorer, all_ids, all_texts, log_probs, request.logprobs)
        choice["logprobs"] = {key: value[prompt_count:] for key, value in echo.items()}
    if with_logprobs and request.prompt_logprobs is not None:
        choice["prompt_logprobs"] = _prompt_logprobs(scorer, ids, texts, log_probs, max(request.prompt_logprobs, 1))
    return choice, prompt_count, len(generated)


def _echo_logprobs(scorer: _Scorer, ids: list[int], texts: list[str], log_probs: torch.Tensor, k: int) -> dict[str, list]:
    tokens, values, offsets, tops, offset = [], [], [], [], 0
    for position, (token_id, text) in enumerate(zip(ids, texts)):
        tokens.append(text)
        offsets.append(offset)
        offset += len(text)
        if position == 0:
            values.append(None)
            tops.append(None)
            continue
        row = log_probs[position - 1]
        values.append(float(row[token_id]))
        top_values, top_ids = torch.topk(row, max(k, 1))
        tops.append({scorer.tokenizer.convert_ids_to_tokens(int(i)): float(v) for v, i in zip(top_values, top_ids)})
    return {"tokens": tokens, "token_logprobs": values, "top_logprobs": tops, "text_offset": offsets}


def _prompt_logprobs(scorer: _Scorer, ids: list[int], texts: list[str], log_probs: torch.Tensor, k: int) -> list:
    entries: list[dict[str, Any] | None] = [None]
    for position in range(1, len(ids)):
        row = log_probs[position - 1]
        actual = ids[position]
        entry = {str(actual): {"logprob": float(row[actual]), "rank": int((row > row[actual]).sum()) + 1,
                               "decoded_token": texts[position]}}
        top_values, top_ids = torch.topk(row, k)
        for rank, (value, token_id) in enumerate(zip(top_values, top_ids), start=1):
            entry.setdefault(str(int(token_id)), {"logprob": float(value), "rank": rank,
                                                  "decoded_token": scorer.tokenizer.decode([int(token_id)])})
        entries.append(entry)
    return entries


def create_app(model_dir: str, fail_first: int = 0, logprobs: bool = True, served_name: str | None = None,
               tokenizer: str | None = None, api_key: str | None = None) -> FastAPI:
    """The FastAPI app serving ``model_dir``; ``app.state.server`` is its :class:`ServerState`.

    Args:
        model_dir: A transformers causal LM folder (or hub name already in the local cache).
        fail_first: Answer the first ``fail_first`` completion requests with HTTP 503.
        logprobs: When ``False``, never return log-probs (a server that cannot score prompts).
        served_name: The model name in ``/v1/models``; defaults to ``model_dir``.
        tokenizer: A separate tokenizer folder or name; defaults to the model's.
        api_key: When set, requests without ``Authorization: Bearer <api_key>`` get HTTP 401.
    """
    scorer = _Scorer(model_dir, tokenizer)
    name = served_name or str(model_dir)
    state = ServerState()
    app = FastAPI(title="uae testing completions server")
    app.state.server = state
    if api_key:

        @app.middleware("http")
        async def require_key(request, call_next):  # what a hosted API does with a missing or wrong key
            if request.headers.get("authorization") != f"Bearer {api_key}":
                return JSONResponse({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}},
                                    status_code=401)
            return await call_next(request)

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": name, "object": "model", "owned_by": "uae", "max_model_len": scorer.context}]}

    @app.post("/v1/completions")
    def completions(request: CompletionRequest):
        with state.lock:
            state.requests += 1
            failing = state.requests <= fail_first
            state.failures += failing
        if failing:
            return _error(503, "the server is warming up (uae.testing fail_first)")
        if request.model not in (None, name):
            return _error(404, f"the model {request.model!r} does not exist; this server serves {name!r}")
        prompts = [request.prompt] if isinstance(request.prompt, str) else request.prompt
        choices, prompt_tokens, completion_tokens = [], 0, 0
        for index, prompt in enumerate(prompts):
            length = len(scorer.tokenize(prompt)[0])
            if length + request.max_tokens > scorer.context:
                return _error(400, f"This model's maximum context length is {scorer.context} tokens. However, you "
                                   f"requested {length + request.max_tokens} tokens ({length} in the messages, "
                                   f"{request.max_tokens} in the completion). Please reduce the length of the prompt.")
            choice, n_prompt, n_generated = _complete(scorer, prompt, request, logprobs)
            choices.append({"index": index, **choice})
            prompt_tokens += n_prompt
            completion_tokens += n_generated
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens}
        return {"id": f"cmpl-{state.requests}", "object": "text_completion", "created": int(time.time()),
                "model": name, "choices": choices, "usage": usage}

    @app.post("/v1/chat/completions")
    def chat_completions(request: ChatRequest):
        with state.lock:
            state.requests += 1
        if request.model not in (None, name):
            return _error(404, f"the model {request.model!r} does not exist; this server serves {name!r}")
        prompt = "\n\n".join(str(m.get("content", "")) for m in request.messages)
        length = len(scorer.tokenize(prompt)[0])
        if length + request.max_tokens > scorer.context:
            return _error(400, f"This model's maximum context length is {scorer.context} tokens. However, you requested "
                               f"{length + request.max_tokens} tokens. Please reduce the length of the messages.")
        top = max(request.top_logprobs or 1, 1) if request.logprobs else None
        choice, n_prompt, n_generated = _complete(scorer, prompt, CompletionRequest(prompt=prompt, max_tokens=request.max_tokens,
                                                                                    logprobs=top), True)
        message = {"role": "assistant", "content": choice["text"]}
        logprobs = None
        if top is not None and choice["logprobs"]:
            echoed = choice["logprobs"]
            logprobs = {"content": [{"token": token, "logprob": value,
                                     "top_logprobs": [{"token": t, "logprob": v} for t, v in (tops or {}).items()]}
                                    for token, value, tops in zip(echoed["tokens"], echoed["token_logprobs"], echoed["top_logprobs"])]}
        return {"id": f"chatcmpl-{state.requests}", "object": "chat.completion", "created": int(time.time()), "model": name,
                "choices": [{"index": 0, "message": message, "finish_reason": "length", "logprobs": logprobs}],
                "usage": {"prompt_tokens": n_prompt, "completion_tokens": n_generated, "total_tokens": n_prompt + n_generated}}

    return app


@dataclass
class RunningServer:
    """A server started by :func:`serve`: its base URL (ending in ``/v1``) and its state."""

    base_url: str
    state: ServerState


@contextmanager
def serve(model_dir: str, host: str = "127.0.0.1", port: int = 0, **options: Any) -> Iterator[RunningServer]:
    """Run :func:`create_app` with uvicorn in a background thread, on a free port unless one is given.

    Args:
        model_dir: The causal LM to serve.
        host: Interface to bind.
        port: Port; ``0`` picks a free one.
        **options: ``fail_first``, ``logprobs``, ``served_name``, ``tokenizer``, ``api_key`` (see :func:`create_app`).

    Yields:
        The running server; it is stopped when the block exits.
    """
    import uvicorn

    app = create_app(str(model_dir), **options)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the testing server for {model_dir} did not start")
        time.sleep(0.01)
    try:
        yield RunningServer(f"http://{host}:{sock.getsockname()[1]}/v1", app.state.server)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def main() -> None:
    """``python -m uae.testing MODEL_DIR [--port N] [--fail-first N] [--no-logprobs]``."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model_dir")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--no-logprobs", action="store_true")
    parser.add_argument("--tokenizer", help="a separate tokenizer folder or name")
    args = parser.parse_args()
    app = create_app(args.model_dir, fail_first=args.fail_first, logprobs=not args.no_logprobs, tokenizer=args.tokenizer)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
