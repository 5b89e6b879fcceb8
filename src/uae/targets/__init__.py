"""Targets: from the teacher's answer NLLs to what the student is trained to reproduce.

- :mod:`~uae.targets.utilities`: NLLs -> utilities, ``u(d) = nll(a|q) - nll(a|q,d)`` per answer token.
- :mod:`~uae.targets.distributions`: utilities -> target distributions over a pool
  (:class:`uae.config.TargetConfig`), and one training row's label (confidence and gold rules).
- :mod:`~uae.targets.mixing`: several teachers into one target, and the labels a model is
  trained on (:func:`~uae.targets.mixing.load_training_labels`).
"""

from uae.targets.distributions import (
    CONSTANT_ATOL,
    MASKED,
    RowTarget,
    build_targets,
    confidence_threshold,
    row_target,
    stable_softmax,
    target_distribution,
)
from uae.targets.mixing import (
    CombineMode,
    TrainingLabels,
    combine_teacher_utilities,
    load_teacher_utilities,
    load_training_labels,
    mixed_training_utilities,
    targets_as_utilities,
    teacher_weights,
)
from uae.targets.utilities import group_nlls, pool_utilities, query_utilities, utilities_from_labels, utilities_from_nlls

__all__ = [
    "CONSTANT_ATOL", "MASKED", "CombineMode", "RowTarget", "TrainingLabels", "build_targets", "combine_teacher_utilities",
    "confidence_threshold", "group_nlls", "load_teacher_utilities", "load_training_labels", "mixed_training_utilities",
    "pool_utilities", "query_utilities", "row_target", "stable_softmax", "target_distribution", "targets_as_utilities",
    "teacher_weights", "utilities_from_labels", "utilities_from_nlls",
]
