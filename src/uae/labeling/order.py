"""The order of labeling work: queries that share passages in the same part, requests of a passage side by side.

Every (query, pooled passage, answer) pair puts the passage first in its prompt, and one passage
sits in many pools (every question of a document draws its pool from that document in scoped
retrieval; collection-wide pools overlap too). A teacher can only share the work of a passage
between requests it sees together, so:

- :func:`cut_parts` orders the queries by the passages they share (a breadth-first walk of the
  query-passage graph, seeded in input order) and cuts them into parts of at most
  ``part_queries`` queries that keep whole connected groups of queries where they fit: a group
  that fits the current part joins it, one that does not starts a new part, and one larger than
  a part (a long document's questions; collection-wide pools, where most queries are linked) is
  cut greedily (:func:`densest_parts`): each part grows by the query that shares the most pooled
  passages with it, so a passage's requests land in as few parts as they can;
- :func:`sharing_chunks` orders a part's requests (:func:`uae.labeling.jobs.part_requests`) for the teacher: the requests that share a prompt prefix
  (:func:`uae.teachers.prefix.sharing_key`: the passage, or the question when there is none) side
  by side, in chunks of about ``chunk`` requests that never split such a group unless it is
  larger than a chunk on its own.

The hf teacher runs each shared passage once per chunk; an ``openai:`` or ``vllm:`` teacher
sends a group's requests together, so a server's prefix cache sees them in a row; a Ray worker
gets whole parts, hence whole groups.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Sequence

from uae.data.schema import Query
from uae.data.tables import Pools
from uae.teachers.base import NLLRequest
from uae.teachers.prefix import sharing_groups


def query_walk(queries: Sequence[Query], pools: Pools) -> list[list[Query]]:
    """The connected groups of queries (linked by a shared pooled passage), each in breadth-first order.

    Groups come in the order of their first query in ``queries``; within a group, the neighbours
    of a query are visited in pool order, then input order, so the walk is deterministic.
    """
    by_passage: dict[str, list[int]] = {}
    for i, query in enumerate(queries):
        for candidate in pools[query.id]:
            by_passage.setdefault(candidate.passage_id, []).append(i)
    seen = [False] * len(queries)
    groups = []
    for seed in range(len(queries)):
        if seen[seed]:
            continue
        seen[seed] = True
        group, queue = [], deque([seed])
        while queue:
            current = queue.popleft()
            group.append(queries[current])
            for candidate in pools[queries[current].id]:
                for neighbour in by_passage[candidate.passage_id]:
                    if not seen[neighbour]:
                        seen[neighbour] = True
                        queue.append(neighbour)
        groups.append(group)
    return groups


def cut_parts(queries: Sequence[Query], pools: Pools, part_queries: int) -> list[list[Query]]:
    """Parts of at most ``part_queries`` queries that keep the queries sharing passages together (see the module docstring)."""
    parts: list[list[Query]] = []
    current: list[Query] = []
    for group in query_walk(queries, pools):
        if current and len(current) + len(group) > part_queries:
            parts.append(current)
            current = []
        if len(group) > part_queries:
            *full, group = densest_parts(group, pools, part_queries)
            parts += full
        current += group
    if current:
        parts.append(current)
    return parts


def densest_parts(group: Sequence[Query], pools: Pools, part_queries: int) -> list[list[Query]]:
    """``group`` cut into parts of ``part_queries`` queries (the last may be smaller), each grown greedily.

    A part starts from the first query of ``group`` not yet placed and repeatedly takes the
    query sharing the most pooled passages with the part so far (ties: the earlier in ``group``);
    when no unplaced query shares any, the next one in ``group`` order. Cutting a breadth-first
    walk instead puts a passage's queries wherever the walk happens to reach them, so a passage
    pooled for many queries is split over several parts and fed once in each.
    """
    passages = [{c.passage_id for c in pools[q.id]} for q in group]
    holders: dict[str, list[int]] = {}
    for i, ids in enumerate(passages):
        for passage_id in ids:
            holders.setdefault(passage_id, []).append(i)
    placed = [False] * len(group)
    parts: list[list[Query]] = []
    next_seed = 0
    while next_seed < len(group):
        part: list[int] = []
        shared: dict[int, int] = {}
        heap: list[tuple[int, int]] = []
        in_part: set[str] = set()
        while len(part) < part_queries:
            chosen = _pop_densest(heap, shared, placed)
            if chosen is None:
                while next_seed < len(group) and placed[next_seed]:
                    next_seed += 1
                if next_seed == len(group):
                    break
                chosen = next_seed
            placed[chosen] = True
            part.append(chosen)
            for passage_id in passages[chosen] - in_part:
                in_part.add(passage_id)
                for other in holders[passage_id]:
                    if not placed[other]:
                        shared[other] = shared.get(other, 0) + 1
                        heapq.heappush(heap, (-shared[other], other))
        parts.append([group[i] for i in part])
        while next_seed < len(group) and placed[next_seed]:
            next_seed += 1
    return parts


def _pop_densest(heap: list[tuple[int, int]], shared: dict[int, int], placed: list[bool]) -> int | None:
    """The unplaced query with the most passages shared with the part (stale heap entries skipped)."""
    while heap:
        negative, index = heapq.heappop(heap)
        if not placed[index] and shared[index] == -negative:
            return index
    return None


def sharing_chunks(requests: Sequence[NLLRequest], chunk: int) -> list[list[int]]:
    """Indices of ``requests`` in chunks of about ``chunk``, requests sharing a prompt prefix side by side.

    Groups (by :func:`~uae.teachers.prefix.sharing_key`) come in order of first appearance, each
    whole; a chunk is closed before a group that would overflow it, and a group larger than
    ``chunk`` is a chunk of its own.
    """
    chunks: list[list[int]] = []
    current: list[int] = []
    for members in sharing_groups(requests):
        if current and len(current) + len(members) > chunk:
            chunks.append(current)
            current = []
        current += members
    if current:
        chunks.append(current)
    return chunks
