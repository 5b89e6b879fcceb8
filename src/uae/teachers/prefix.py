"""Passage-prefix reuse: which requests share a prompt prefix worth running once, and how much it saves.

The prompt puts the passage first (``Context: {passage}\\nQuestion: ...\\nAnswer: ...``) and the
same passage sits in many pools, so the requests of one passage share a long head. The hf
teacher runs that head once, keeps its key/value cache and scores every continuation (question
and answer) on top of it (:meth:`uae.teachers.hf.HFTeacher.score`). This module decides what is
shared, on token ids only:

- requests are grouped by :func:`sharing_key` (the passage; for requests without a passage, the
  question, so that the gold answers of one question share it);
- a group's shared prefix is the longest common prefix of the members' full token ids
  (:func:`common_prefix_length`), never assumed from strings, so a BPE merge across the
  passage/question boundary, a passage cut to fit the context or a BOS token can never make a
  member's prefix differ from the one that was run; it is capped one token before the earliest
  answer, so that every answer token is predicted inside the continuation pass;
- a group is shared when it has at least two members and its prefix has at least
  ``min_prefix_tokens`` tokens; the other requests are scored as before, without a cache.

It needs no model, so the labeling benchmark counts with it what reuse saves on a dataset
(:func:`fed_tokens`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from uae.teachers.base import NLLRequest
from uae.teachers.causal_lm import EncodedRequest

MIN_PREFIX_TOKENS = 16
"""A shorter shared prefix is not worth a forward pass of its own."""


def sharing_key(request: NLLRequest) -> tuple[str, str]:
    """What requests that may share a prefix have in common: their passage, else their question."""
    if request.passage is None:
        return ("question", request.question)
    return ("passage", request.passage)


def sharing_groups(requests: Sequence[NLLRequest]) -> list[list[int]]:
    """Indices of ``requests`` grouped by :func:`sharing_key`, groups in order of first appearance."""
    groups: dict[tuple[str, str], list[int]] = {}
    for index, request in enumerate(requests):
        groups.setdefault(sharing_key(request), []).append(index)
    return list(groups.values())


def common_prefix_length(sequences: Sequence[Sequence[int]]) -> int:
    """Length of the longest common prefix of ``sequences`` (0 for none)."""
    if not sequences:
        return 0
    first, length = sequences[0], min(len(s) for s in sequences)
    for other in sequences[1:]:
        position = 0
        while position < length and other[position] == first[position]:
            position += 1
        length = position
    return length


@dataclass(frozen=True)
class PrefixGroup:
    """Requests scored on one shared prefix: ``members`` index the encoded requests, all starting with the same ``prefix_length`` ids."""

    members: tuple[int, ...]
    prefix_length: int


def prefix_groups(requests: Sequence[NLLRequest], encoded: Sequence[EncodedRequest],
                  min_prefix_tokens: int = MIN_PREFIX_TOKENS) -> tuple[list[PrefixGroup], list[int]]:
    """The groups worth sharing, in order of first appearance, and the indices scored alone.

    Args:
        requests: The requests, in input order.
        encoded: Their token ids (``encoded[i]`` belongs to ``requests[i]``).
        min_prefix_tokens: The shortest shared prefix worth a forward pass of its own.
    """
    groups, alone = [], []
    for members in sharing_groups(requests):
        shared = common_prefix_length([encoded[i].ids for i in members])
        length = min(shared, min(encoded[i].answer_start for i in members) - 1)
        if len(members) >= 2 and length >= max(1, min_prefix_tokens):
            groups.append(PrefixGroup(tuple(members), length))
        else:
            alone += members
    return groups, sorted(alone)


def fed_tokens(encoded: Sequence[EncodedRequest], groups: Sequence[PrefixGroup]) -> int:
    """Tokens fed to the model when ``groups`` share their prefixes (each prefix once) and the rest run whole."""
    total = sum(len(item.ids) for item in encoded)
    return total - sum((len(group.members) - 1) * group.prefix_length for group in groups)


@dataclass
class ReuseStats:
    """What prefix reuse did in a teacher's lifetime (counters; not part of any fingerprint).

    Attributes:
        enabled: Whether reuse is on and exact for this model.
        reason: Why it is off (``None`` when on).
        groups: Shared prefixes run.
        shared_requests: Requests scored on a shared prefix.
        alone_requests: Requests scored without one (alone in their group, or a prefix too short).
        tokens_saved: Prefix tokens not fed again thanks to sharing.
        fallbacks: Requests scored without reuse because it is not exact for this model, by reason.
    """

    enabled: bool = True
    reason: str | None = None
    groups: int = 0
    shared_requests: int = 0
    alone_requests: int = 0
    tokens_saved: int = 0
    fallbacks: Counter[str] = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view, for ``labeling_summary.json``."""
        return {"enabled": self.enabled, "reason": self.reason, "groups": self.groups,
                "shared_requests": self.shared_requests, "alone_requests": self.alone_requests,
                "tokens_saved": self.tokens_saved, "fallbacks": dict(self.fallbacks)}
