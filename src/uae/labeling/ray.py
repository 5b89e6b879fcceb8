"""Labeling spread over a Ray cluster: one teacher per worker, the same parts and manifest as the serial runner.

The driver plans the job exactly as :func:`uae.labeling.local.label_pools` does
(:class:`uae.labeling.jobs.LabelingJob`), checks the same manifest, and hands parts that are not on disk yet to a pool of Ray actors, one part at a time
per actor (a part keeps the queries that share passages together, so a worker receives whole
passage groups and its teacher can share each passage's work); each actor loads the teacher once (``load_teacher(spec)``), labels a part and sends
its rows back; the driver writes ``parts/part-NNNNN.parquet`` (temporary name, then rename) and
finally ``nlls.parquet``. So a job started serially can be finished on Ray and the other way
round, a killed job loses only the parts in flight, and only the driver needs the output folder
(workers need no shared file system). The progress bar advances per finished part.

Install: ``pip install 'uae[ray]'``.

One machine with several GPUs (a local Ray instance is started; one worker per GPU)::

    uae label DATA --pools pools.parquet --out labels --teacher hf:Qwen/Qwen2.5-7B-Instruct --ray

CPU workers instead (e.g. the ``dirichlet`` teacher, or ``openai:`` teachers that only wait on a
server): ``--workers 8 --gpus-per-worker 0``. A model too big for one GPU: ``--gpus-per-worker 2``
with ``vllm:`` and ``tensor_parallel_size=2``.

A cluster: start Ray on every node (``ray start --head --port=6379`` on the head,
``ray start --address=HEAD_IP:6379`` on the others), make ``uae`` and the model reachable on every
node (same environment; a hub name with a warm cache or a path on shared storage), then run on the
head node::

    uae label DATA --teacher hf:/shared/models/qwen2.5-7b --ray --ray-address auto

``--ray-address ray://HEAD_IP:10001`` connects from outside the cluster (Ray client); the
output folder then lives where the command runs.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from uae.data.schema import Corpus, Passage, Query
from uae.data.tables import Pools, nll_records_to_table
from uae.errors import import_optional
from uae.labeling.jobs import LabelingJob, LabelingSummary
from uae.labeling.local import ProgressCounter, label_part, labeling_progress
from uae.ray_actors import start_actors
from uae.teachers import PromptTemplates, load_teacher

INSTALL_HINT = "labeling with --ray needs Ray: pip install 'uae[ray]'"


def import_ray() -> Any:
    """The ``ray`` module, or an ImportError (:class:`~uae.errors.MissingExtra`) that says how to install it."""
    return import_optional("ray", INSTALL_HINT)


class LabelWorker:
    """One teacher on one Ray worker: labels whole parts sent by the driver."""

    def __init__(self, spec: str, templates: PromptTemplates | None, options: dict[str, Any]):
        self.teacher = load_teacher(spec, templates, **options)

    def describe(self) -> tuple[str, dict[str, Any]]:
        return self.teacher.name, self.teacher.describe()

    def fit(self, corpus_texts: list[str]) -> None:
        self.teacher.fit(corpus_texts)

    def stats(self) -> dict[str, Any]:
        return self.teacher.stats()

    def label(self, number: int, part: list[Query], pools: Pools, passages: list[Passage], chunk: int) -> tuple[int, pa.Table, int | None]:
        """Part ``number``'s rows and the tokens its teacher reported (``None`` if it does not count)."""
        counter = ProgressCounter(lambda pairs, tokens: None)
        records = label_part(part, pools, Corpus(passages), self.teacher, chunk, counter)
        return number, nll_records_to_table(records), counter.tokens


def label_pools_ray(
    queries: Sequence[Query],
    pools: Pools,
    corpus: Corpus,
    teacher_spec: str,
    out_dir: str | os.PathLike,
    part_queries: int = 64,
    chunk_requests: int = 256,
    teacher_options: dict[str, Any] | None = None,
    templates: PromptTemplates | None = None,
    workers: int | None = None,
    gpus_per_worker: float | None = None,
    cpus_per_worker: float = 1.0,
    address: str | None = None,
    init_options: dict[str, Any] | None = None,
    progress: bool = True,
) -> LabelingSummary:
    """Like :func:`uae.labeling.local.label_pools`, with the parts spread over Ray workers.

    Args:
        queries: Queries to label; those without answers or pools are skipped and counted.
        pools: Candidate pools, ``{query_id: [Candidate, ...]}``.
        corpus: Passage texts.
        teacher_spec: What :func:`uae.teachers.load_teacher` builds on each worker.
        out_dir: Folder for parts, manifest and the final table (on the driver).
        part_queries: Queries per part file (the unit of resumption and of scheduling).
        chunk_requests: Requests per ``teacher.score`` call inside a part.
        teacher_options: Keyword options of the teacher (``batch_tokens``, ``model``, ...).
        templates: Prompt templates; the teacher's default when ``None``.
        workers: Number of workers; defaults to one per GPU (``gpus_per_worker`` each), or one per
            ``cpus_per_worker`` CPUs on a cluster without GPUs; never more than the parts to do.
        gpus_per_worker: GPUs reserved by each worker; defaults to 1 when the cluster has GPUs, else 0.
        cpus_per_worker: CPUs reserved by each worker.
        address: Ray address (``auto``, ``ray://host:10001``); ``None`` starts a fresh local
            instance (never one found through ``RAY_ADDRESS`` or ``/tmp/ray``: a cluster is used only
            when named) unless Ray is already initialised in this process.
        init_options: Further ``ray.init`` arguments (``num_cpus``, ``runtime_env``, ...).
        progress: Show a progress bar (advances per finished part).
    """
    ray = import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address or "local", include_dashboard=False, log_to_driver=False, **(init_options or {}))
    try:
        job = LabelingJob.plan(queries, pools, corpus, out_dir, part_queries, teacher={})
        pending = job.pending()
        actors = start_actors(ray, LabelWorker, (teacher_spec, templates, teacher_options or {}), workers,
                              gpus_per_worker, cpus_per_worker, max(1, len(pending)))
        name, job.summary.teacher = ray.get(actors[0].describe.remote())
        job.check_manifest()
        started = time.perf_counter()
        if pending:
            corpus_texts = ray.put(corpus.texts)
            ray.get([actor.fit.remote(corpus_texts) for actor in actors])
            job.summary.tokens = _run_parts(ray, actors, job, pending, corpus, chunk_requests,
                                            f"labeling with {name} on {len(actors)} Ray workers", progress)
            job.summary.teacher_stats = merge_stats(ray.get([actor.stats.remote() for actor in actors]))
        job.summary.seconds = time.perf_counter() - started
        return job.finish()
    finally:
        if started_here:
            ray.shutdown()


def merge_stats(stats: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The workers' ``Teacher.stats()`` as one: numbers added up, nested dicts merged, other values kept when all agree."""
    merged: dict[str, Any] = {}
    for one in stats:
        for key, value in one.items():
            if key not in merged:
                merged[key] = merge_stats([value]) if isinstance(value, dict) else value
            elif isinstance(value, dict):
                merged[key] = merge_stats([merged[key], value])
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                merged[key] += value
            elif merged[key] != value:
                merged[key] = "differs between workers"
    return merged


def _run_parts(ray: Any, actors: list[Any], job: LabelingJob, pending: list[int], corpus: Corpus, chunk: int,
               description: str, progress: bool) -> int | None:
    """Keep every actor busy with one part until none is left; write each part as it comes back."""
    queue = deque(pending)
    in_flight: dict[Any, Any] = {}

    def submit(actor: Any) -> None:
        number = queue.popleft()
        part = job.parts[number]
        part_pools = {q.id: job.pools[q.id] for q in part}
        passage_ids = dict.fromkeys(c.passage_id for q in part for c in part_pools[q.id])
        in_flight[actor.label.remote(number, part, part_pools, [corpus[pid] for pid in passage_ids], chunk)] = actor

    with labeling_progress(job.pair_count(pending), description, enabled=progress) as advance:
        for actor in actors:
            if queue:
                submit(actor)
        while in_flight:
            [done], _ = ray.wait(list(in_flight), num_returns=1)
            actor = in_flight.pop(done)
            number, table, tokens = ray.get(done)
            job.write_part(number, table)
            advance(job.pair_count([number]), tokens)
            if queue:
                submit(actor)
    return advance.tokens
