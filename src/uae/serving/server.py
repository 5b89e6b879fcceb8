"""The retrieval service: FastAPI over a :class:`~uae.retrieval.retriever.Retriever`.

    app = create_app(Retriever.load("index"), ServerSettings())
    uvicorn.run(app, host="127.0.0.1", port=8000)        # or: uae serve MODEL --index index

Endpoints: ``POST /search``, ``POST /embed``, ``POST /passages`` (add), ``DELETE /passages``
(remove), ``GET /healthz``, ``GET /stats``, and the OpenAI embeddings API ``POST /v1/embeddings``,
``GET /v1/models`` (:mod:`uae.serving.openai_api`); optional bearer auth and a read-only mode
(:mod:`uae.serving.access`); the OpenAPI schema is at ``/openapi.json`` and
``/docs``. Request limits come from :class:`ServerSettings` and appear in the schema.

Concurrent requests are micro-batched: each query (or text to embed) goes into an asyncio queue;
one worker takes what has arrived, waiting at most ``max_wait_ms`` for more, up to ``max_batch``
items, and runs one encoder call (plus, for searches, one FAISS search) in a worker thread, so the
event loop stays free. With ``batching=False`` every request runs its own encoder call. Encoder
calls are serialised either way: a Hugging Face fast tokenizer must not be used from two threads
at once.
"""

import asyncio
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Generic, TypeVar

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, StrictInt, StringConstraints

from uae.data.schema import Passage
from uae.retrieval.encoders import encode
from uae.retrieval.index import DuplicatePassageError, UnknownPassageError
from uae.retrieval.retriever import FUSION_DEPTH, Retriever
from uae.retrieval.types import Hit
from uae.serving.access import AccessMiddleware
from uae.serving.openai_api import add_openai_routes

Item = TypeVar("Item")
Result = TypeVar("Result")


class ServerSettings(BaseModel):
    """Limits and batching of the service; every limit is enforced with a 422 that names it."""

    model_config = ConfigDict(extra="forbid")

    batching: bool = Field(True, description="micro-batch concurrent requests into one encoder call")
    max_batch: int = Field(64, ge=1, description="most queries per encoder call")
    max_wait_ms: float = Field(5.0, ge=0, description="longest wait for more queries before encoding")
    max_queries: int = Field(64, ge=1, description="most queries (or texts to embed) per request")
    max_query_chars: int = Field(2048, ge=1, description="longest query, in characters")
    max_k: int = Field(100, ge=1, description="largest k")
    max_passages: int = Field(1000, ge=1, description="most passages (or ids) per add or remove request")
    max_passage_chars: int = Field(20000, ge=1, description="longest passage or text to embed, in characters")
    max_title_chars: int = Field(1000, ge=1, description="longest passage title, in characters")
    max_body_bytes: int = Field(32 * 1024 * 1024, ge=1024, description="largest request body, in bytes (413 above it)")
    persist_dir: Path | None = Field(None, description="save the index here after every add or remove (concurrent edits "
                                     "share one save; an edit is acknowledged once a save that holds it is on disk)")
    latency_window: int = Field(10000, ge=1, description="latencies kept per endpoint for the percentiles")
    api_key: SecretStr | None = Field(None, description="when set, every endpoint but /healthz needs 'Authorization: Bearer <key>'")
    read_only: bool = Field(False, description="refuse POST and DELETE /passages")
    model_name: str | None = Field(None, description="the model's name in /stats and /v1/embeddings (default: its folder name)")
    hybrid: bool = Field(False, description="fuse every search's dense ranking with BM25's (reciprocal rank fusion)")


# -- micro-batching -------------------------------------------------------------------------


class MicroBatcher(Generic[Item, Result]):
    """Gathers items from concurrent callers into batches for one ``process`` call each.

    ``process(items) -> results`` (same length, same order) runs in a dedicated worker thread.
    A batch closes when it holds ``max_batch`` items or ``max_wait_s`` after its first item.
    """

    def __init__(self, process: Callable[[list[Item]], list[Result]], max_batch: int = 64, max_wait_s: float = 0.005):
        self.process = process
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.calls = 0
        self.items = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="uae-batch")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None

    async def submit(self, items: Sequence[Item]) -> list[Result]:
        """Queue ``items`` and wait for their results (they may share batches with other callers')."""
        self._ensure_worker()
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in items]
        for item, future in zip(items, futures):
            self._queue.put_nowait((item, future))
        return list(await asyncio.gather(*futures))

    async def stop(self) -> None:
        """Stop the worker; callers still waiting get an error."""
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        while self._queue is not None and not self._queue.empty():
            _, future = self._queue.get_nowait()
            if not future.done():
                future.set_exception(RuntimeError("the service is shutting down"))
        self._executor.shutdown(wait=False)

    def _ensure_worker(self) -> None:
        """Start the worker on the running loop (again, if a test client brought a new loop)."""
        loop = asyncio.get_running_loop()
        if self._worker is None or self._worker.done() or self._loop is not loop:
            self._loop, self._queue = loop, asyncio.Queue()
            self._worker = loop.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            deadline = self._loop.time() + self.max_wait_s
            while len(batch) < self.max_batch:
                if self._queue.empty():
                    remaining = deadline - self._loop.time()
                    if remaining <= 0:
                        break
                    try:
                        batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                    except asyncio.TimeoutError:
                        break
                else:
                    batch.append(self._queue.get_nowait())
            await self._process(batch)

    async def _process(self, batch: list[tuple[Item, asyncio.Future]]) -> None:
        waiting = [(item, future) for item, future in batch if not future.done()]
        if not waiting:
            return
        self.calls += 1
        self.items += len(waiting)
        try:
            results = await self._loop.run_in_executor(self._executor, self.process, [item for item, _ in waiting])
        except Exception as err:  # the callers get the error; the worker goes on
            for _, future in waiting:
                if not future.done():
                    future.set_exception(err)
            return
        for (_, future), result in zip(waiting, results):
            if not future.done():
                future.set_result(result)


class DirectRunner(Generic[Item, Result]):
    """The no-batching counterpart of :class:`MicroBatcher`: one ``process`` call per request."""

    def __init__(self, process: Callable[[list[Item]], list[Result]]):
        self.process = process
        self.calls = 0
        self.items = 0

    async def submit(self, items: Sequence[Item]) -> list[Result]:
        self.calls += 1
        self.items += len(items)
        return await run_in_threadpool(self.process, list(items))

    async def stop(self) -> None:
        return None


# -- request and response shapes ----------------------------------------------------------


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or only whitespace")
    return value


def _text(max_chars: int) -> Any:
    return Annotated[str, StringConstraints(max_length=max_chars), AfterValidator(_not_blank)]


class HitOut(BaseModel):
    id: str
    score: float
    doc_id: str | None
    text: str = Field(description="the passage as the encoder saw it (title. text)")
    title: str = ""


class SearchResultOut(BaseModel):
    hits: list[HitOut]


class SearchResponse(BaseModel):
    results: list[SearchResultOut] = Field(description="one entry per query, in request order")
    fingerprint: str = Field(description="fingerprint of the model that encoded the queries")


class EmbedResponse(BaseModel):
    embeddings: list[list[float]]
    dimension: int
    fingerprint: str


class ChangeResponse(BaseModel):
    changed: int = Field(description="passages added or removed")
    corpus_size: int
    persisted: bool = Field(description="whether the index folder was saved after the change")


def _request_models(settings: ServerSettings) -> dict[str, type[BaseModel]]:
    """Request bodies whose limits come from ``settings`` (so the OpenAPI schema shows them)."""
    query_text = _text(settings.max_query_chars)
    passage_text = _text(settings.max_passage_chars)
    identifier = Annotated[str, StringConstraints(min_length=1, max_length=512)]

    class SearchQuery(BaseModel):
        model_config = ConfigDict(extra="forbid")
        text: query_text
        scope: identifier | None = Field(None, description="search only the passages with this doc_id")

    class SearchRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        queries: list[SearchQuery] = Field(min_length=1, max_length=settings.max_queries)
        k: StrictInt = Field(10, ge=1, le=settings.max_k, description="passages per query (an integer, not a string or a boolean)")

    class EmbedRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        texts: list[passage_text] = Field(min_length=1, max_length=settings.max_queries)

    class NewPassage(BaseModel):
        model_config = ConfigDict(extra="forbid")
        id: identifier
        text: passage_text
        title: Annotated[str, StringConstraints(max_length=settings.max_title_chars)] = ""
        doc_id: identifier | None = None

    class AddRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        passages: list[NewPassage] = Field(min_length=1, max_length=settings.max_passages)

    class RemoveRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        ids: list[identifier] = Field(min_length=1, max_length=settings.max_passages)

    return {"search": SearchRequest, "embed": EmbedRequest, "add": AddRequest, "remove": RemoveRequest}


def _describe_error(error: dict) -> str:
    """One readable line for a pydantic/FastAPI validation error."""
    if error.get("type") == "json_invalid":
        position = error["loc"][1] if len(error["loc"]) > 1 else "?"
        reason = error.get("ctx", {}).get("error", "invalid JSON")
        return f"malformed JSON in the request body at character {position}: {reason}"
    location = ""
    for part in error["loc"][1:] if error["loc"][:1] == ("body",) else error["loc"]:
        location += f"[{part}]" if isinstance(part, int) else (f".{part}" if location else str(part))
    if not location:
        return f"request body: {error['msg']} (expected a JSON object)"
    return f"{location}: {error['msg'].removeprefix('Value error, ')}"


# -- statistics ---------------------------------------------------------------------------


class RequestStats:
    """Request counts by endpoint and status, and a window of latencies per endpoint."""

    def __init__(self, routes: set[str], window: int):
        self.routes = routes
        self.counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.latencies: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=window))
        self._lock = threading.Lock()

    def record(self, method: str, path: str, status: int, seconds: float) -> None:
        route = f"{method} {path}" if path in self.routes else "other"
        with self._lock:
            self.counts[route][str(status)] += 1
            self.latencies[route].append(seconds)

    def summary(self) -> dict[str, Any]:
        with self._lock:
            latency = {
                route: {f"p{q}": round(float(np.percentile(values, q)) * 1000, 3) for q in (50, 95, 99)} | {"count": len(values)}
                for route, values in self.latencies.items()
                if values
            }
            return {"requests": {route: dict(codes) for route, codes in self.counts.items()}, "latency_ms": latency}


class StatsMiddleware:
    """Pure ASGI middleware that times every HTTP request and records its status."""

    def __init__(self, app, stats: RequestStats):
        self.app = app
        self.stats = stats

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500

        async def send_and_note(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            self.stats.record(scope["method"], scope["path"], status, time.perf_counter() - started)


class BodyLimitMiddleware:
    """Pure ASGI middleware: a request body over ``max_bytes`` gets a 413, by its Content-Length or, without one, as it arrives."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        detail = f"request body larger than {self.max_bytes} bytes (max_body_bytes)"
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return await JSONResponse(status_code=413, content={"detail": detail})(scope, receive, send)
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, detail)  # FastAPI answers it while reading the body
            return message

        await self.app(scope, limited_receive, send)


# -- the application ----------------------------------------------------------------------


class _Engine:
    """The blocking work behind the endpoints: encoder calls (serialised) and index searches."""

    def __init__(self, retriever: Retriever, max_batch: int, hybrid: bool = False):
        self.retriever = retriever
        self.max_batch = max_batch
        self.hybrid = hybrid
        self.encoder_calls = 0
        self._encoder_lock = threading.Lock()

    def encode(self, texts: list[str]) -> np.ndarray:
        with self._encoder_lock:
            self.encoder_calls += 1
            return encode(self.retriever.model, texts, batch_size=self.max_batch, progress=False)

    def embed(self, texts: list[str]) -> list[np.ndarray]:
        return list(self.encode(texts))

    def search(self, items: list[tuple[str, str | None, int]]) -> list[list[tuple[Hit, Passage]]]:
        """One encoder call and one index search for ``(text, scope, k)`` items; each keeps its own k.

        Each hit comes with its passage as the search saw it, so a passage removed while the
        response is being written is still returned whole (the result is one version of the index).
        With hybrid search, a passage only BM25 found comes from the BM25 index's own snapshot.
        """
        texts, scopes, depth = [text for text, _, _ in items], [scope for _, scope, _ in items], max(k for _, _, k in items)
        vectors = self.encode(texts)
        if not self.hybrid:
            hits = self.retriever.index.search_passages(vectors, depth, scopes)
        else:
            dense = self.retriever.index.search_passages(vectors, max(depth, FUSION_DEPTH), scopes)
            seen = {hit.passage_id: passage for pairs in dense for hit, passage in pairs}
            fused = self.retriever.fuse_with_bm25(texts, [[hit for hit, _ in pairs] for pairs in dense], depth, scopes)
            lexical = self.retriever.bm25().corpus
            hits = [[(hit, seen.get(hit.passage_id) or lexical[hit.passage_id]) for hit in query_hits] for query_hits in fused]
        return [query_hits[:k] for query_hits, (_, _, k) in zip(hits, items)]


def create_app(retriever: Retriever, settings: ServerSettings | None = None) -> FastAPI:
    """The FastAPI application serving ``retriever``.

    Args:
        retriever: a model and the index it built (``Retriever.load`` has checked they match).
        settings: limits, batching and persistence; defaults to ``ServerSettings()``.

    Returns:
        The app, ready for uvicorn or ``fastapi.testclient.TestClient``.
    """
    settings = settings or ServerSettings()
    engine = _Engine(retriever, settings.max_batch, settings.hybrid)
    if settings.batching:
        wait = settings.max_wait_ms / 1000
        searcher = MicroBatcher(engine.search, settings.max_batch, wait)
        embedder = MicroBatcher(engine.embed, settings.max_batch, wait)
    else:
        searcher, embedder = DirectRunner(engine.search), DirectRunner(engine.embed)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        await searcher.stop()
        await embedder.stop()

    app = FastAPI(title="uae retrieval service", version="1", lifespan=lifespan,
                  description="Utility-aligned dense retrieval: search, embed, and edit a live FAISS index.")
    models = _request_models(settings)
    stats = RequestStats({"/search", "/embed", "/passages", "/healthz", "/stats", "/v1/embeddings", "/v1/models"},
                         settings.latency_window)
    api_key = settings.api_key.get_secret_value() if settings.api_key else None
    app.add_middleware(AccessMiddleware, api_key=api_key, read_only=settings.read_only)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(StatsMiddleware, stats=stats)  # added last, so outermost: it sees the 413s too
    model_name = settings.model_name or retriever.model_name
    app.state.retriever, app.state.settings, app.state.engine = retriever, settings, engine
    index = retriever.index
    committer = GroupCommit(index, settings.persist_dir)
    index.has_scope("")  # builds the scope table now, so later checks on the event loop never wait for the lock

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [_describe_error(error) for error in exc.errors()]
        return JSONResponse(status_code=422, content={"detail": "; ".join(problems), "errors": problems})

    SearchRequest, EmbedRequest, AddRequest, RemoveRequest = (models[n] for n in ("search", "embed", "add", "remove"))

    @app.post("/search", response_model=SearchResponse, responses={404: {"description": "unknown scope"}})
    async def search(request: SearchRequest) -> dict:
        """Top-k passages for each query; a query with a ``scope`` sees only that document's passages."""
        for position, query in enumerate(request.queries):
            if query.scope is not None and not index.has_scope(query.scope):
                raise HTTPException(404, f"queries[{position}].scope: unknown scope {query.scope!r} (no passage has this doc_id)")
        results = await searcher.submit([(q.text, q.scope, request.k) for q in request.queries])
        return {"results": [{"hits": [_hit_out(hit, passage) for hit, passage in hits]} for hits in results],
                "fingerprint": index.meta.fingerprint}

    @app.post("/embed", response_model=EmbedResponse)
    async def embed(request: EmbedRequest) -> dict:
        """Unit-normalised embeddings of the texts, from the served model."""
        vectors = await embedder.submit(request.texts)
        return {"embeddings": [v.tolist() for v in vectors], "dimension": index.meta.dimension,
                "fingerprint": index.meta.fingerprint}

    add_openai_routes(app, embedder, retriever.model, model_name, settings.max_queries, settings.max_passage_chars)

    @app.post("/passages", response_model=ChangeResponse, responses={409: {"description": "id already indexed"}})
    async def add_passages(request: AddRequest) -> dict:
        """Encode and add passages to the live index (all or nothing)."""
        passages = [Passage(id=p.id, text=p.text, title=p.title, doc_id=p.doc_id) for p in request.passages]
        clashes = [p.id for p in passages if p.id in index]
        if clashes:
            raise HTTPException(409, str(DuplicatePassageError(clashes)))
        vectors = np.stack(await embedder.submit([p.full_text for p in passages]))
        try:
            await run_in_threadpool(index.add, passages, vectors)
        except DuplicatePassageError as err:
            raise HTTPException(409, str(err)) from None
        return {"changed": len(passages), "corpus_size": len(index), "persisted": await committer.commit()}

    @app.delete("/passages", response_model=ChangeResponse, responses={404: {"description": "unknown passage id"}})
    async def remove_passages(request: RemoveRequest) -> dict:
        """Remove passages from the live index by id (all or nothing)."""
        try:
            removed = await run_in_threadpool(index.remove, request.ids)
        except UnknownPassageError as err:
            raise HTTPException(404, str(err)) from None
        return {"changed": removed, "corpus_size": len(index), "persisted": await committer.commit()}

    @app.get("/healthz")
    async def healthz() -> dict:
        """Liveness: the model and index are loaded."""
        return {"status": "ok", "corpus_size": len(index)}

    @app.get("/stats")
    async def get_stats() -> dict:
        """Corpus size, the model binding, request counts and latency percentiles, batching counters."""
        return {
            "corpus_size": len(index),
            "tombstones": index.tombstones,
            "index": {"kind": index.meta.kind, "params": index.meta.params, "dimension": index.meta.dimension,
                      "hybrid": settings.hybrid},
            "model": {"name": model_name, "fingerprint": index.meta.fingerprint},
            "batching": {"enabled": settings.batching, "max_batch": settings.max_batch, "max_wait_ms": settings.max_wait_ms,
                         "encoder_calls": engine.encoder_calls, "search_batches": searcher.calls,
                         "search_queries": searcher.items},
            **stats.summary(),
        }

    return app


def _hit_out(hit: Hit, passage: Passage) -> dict:
    return {"id": hit.passage_id, "score": hit.score, "doc_id": passage.doc_id, "text": passage.full_text, "title": passage.title}


class GroupCommit:
    """Saves the index after edits, one save for all the edits that arrived while the previous one ran.

    Each edit, once applied in memory, calls :meth:`commit` and returns when a save that started
    after it has finished: an acknowledged edit is on disk, and a burst of N edits costs about two
    saves, not N. The save itself holds the index lock only to snapshot it (see ``DenseIndex.save``).
    """

    def __init__(self, index, folder: Path | None):
        self.index = index
        self.folder = folder
        self.saves = 0
        self._requested = 0
        self._saved = 0
        self._counter = threading.Lock()
        self._writer = threading.Lock()

    async def commit(self) -> bool:
        """Wait until this edit is saved; ``False`` when the service does not persist."""
        if self.folder is None:
            return False
        with self._counter:
            self._requested += 1
            wanted = self._requested
        await run_in_threadpool(self._save_through, wanted)
        return True

    def _save_through(self, wanted: int) -> None:
        with self._writer:
            if self._saved >= wanted:
                return  # a save that started after this edit has finished meanwhile
            with self._counter:
                covered = self._requested  # every edit counted so far is already in memory, so in this save
            self.index.save(self.folder)
            self.saves += 1
            self._saved = covered
