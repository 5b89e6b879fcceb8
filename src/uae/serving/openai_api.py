"""The OpenAI embeddings API over the served model: ``POST /v1/embeddings`` and ``GET /v1/models``.

Any OpenAI client (the ``openai`` package, LangChain's ``OpenAIEmbeddings``, LlamaIndex's
``OpenAIEmbedding``) can embed with ``uae serve`` by pointing its base URL at ``http://HOST:PORT/v1``
and naming the served model (``GET /v1/models`` lists it). ``encoding_format`` is ``float`` or
``base64`` (little-endian float32, which the ``openai`` client asks for by default); usage counts
are the model tokenizer's tokens, special tokens included, after truncation to the model's length.

(No ``from __future__ import annotations`` here: FastAPI must see the request model defined inside
:func:`add_openai_routes` as a class, not as a string it cannot resolve.)
"""

import base64
import copy
from typing import Annotated, Literal

import numpy as np
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or only whitespace")
    return value


def add_openai_routes(app: FastAPI, embedder, model, model_name: str, max_inputs: int, max_chars: int) -> None:
    """Add ``/v1/embeddings`` and ``/v1/models`` to ``app``.

    Args:
        app: the service.
        embedder: the service's embedding runner (``await embedder.submit(texts)`` -> unit vectors).
        model: the served encoder; its tokenizer counts usage (a private copy, used on the event loop only).
        model_name: the name clients pass as ``model`` (also accepted: ``uae``).
        max_inputs: most texts per request.
        max_chars: longest text, in characters.
    """
    tokenizer = copy.deepcopy(model.tokenizer)
    max_tokens = int(model.max_seq_length)
    Text = Annotated[str, StringConstraints(max_length=max_chars), AfterValidator(_not_blank)]

    class EmbeddingsRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        input: Text | list[Text] = Field(description="a text or a list of texts (token arrays are not accepted)")
        model: str = Field(description=f"the served model: {model_name!r} (or 'uae')")
        encoding_format: Literal["float", "base64"] = "float"
        dimensions: int | None = Field(None, description="must be the model's dimension if given (no truncation)")
        user: str | None = None

    @app.post("/v1/embeddings", responses={404: {"description": "model not served"}})
    async def embeddings(request: EmbeddingsRequest):
        """Embeddings in the OpenAI format, from the served model (unit-normalised)."""
        if request.model not in (model_name, "uae"):
            return _error(404, f"model: {request.model!r} is not served here; this server serves {model_name!r}", "model_not_found")
        texts = [request.input] if isinstance(request.input, str) else request.input
        if not 1 <= len(texts) <= max_inputs:
            return _error(422, f"input: expected 1 to {max_inputs} texts, got {len(texts)}", "invalid_input")
        dimension = int(model.get_sentence_embedding_dimension())
        if request.dimensions is not None and request.dimensions != dimension:
            return _error(422, f"dimensions: this model gives {dimension}-dimensional vectors only, got {request.dimensions}",
                          "invalid_dimensions")
        vectors = await embedder.submit(texts)
        tokens = sum(len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_tokens)["input_ids"])
        data = [{"object": "embedding", "index": i, "embedding": _encode_vector(v, request.encoding_format)}
                for i, v in enumerate(vectors)]
        return {"object": "list", "data": data, "model": model_name,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    @app.get("/v1/models")
    async def models() -> dict:
        """The one served model, in the OpenAI list format."""
        return {"object": "list", "data": [{"id": model_name, "object": "model", "created": 0, "owned_by": "uae"}]}


def _error(status: int, message: str, code: str) -> JSONResponse:
    """An error both OpenAI clients (``error.message``) and this service's other clients (``detail``) read."""
    return JSONResponse(status_code=status, content={"detail": message,
                                                     "error": {"message": message, "type": "invalid_request_error", "code": code}})


def _encode_vector(vector: np.ndarray, encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return np.asarray(vector, dtype=np.float32).tolist()
