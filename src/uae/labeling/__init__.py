"""Labeling: a teacher scores every (query, pooled passage, gold answer), resumably.

- :mod:`~uae.labeling.jobs`: the job API both runners share: :class:`~uae.labeling.jobs.LabelingJob`
  (plan, manifest and fingerprint, parts, the final ``nlls.parquet``), the requests of a query,
  which answers can be labelled, and reading a finished folder.
- :mod:`~uae.labeling.local`: :func:`~uae.labeling.local.label_pools`, the parts one after the
  other in this process, with a progress bar.
- :mod:`~uae.labeling.ray`: :func:`~uae.labeling.ray.label_pools_ray`, the parts spread over Ray
  workers (``pip install 'uae[ray]'``), imported only when asked for.
"""

from uae.labeling.jobs import LabelingJob, LabelingSummary, answer_problem, read_labels, teacher_name
from uae.labeling.local import label_pools

__all__ = ["LabelingJob", "LabelingSummary", "answer_problem", "label_pools", "read_labels", "teacher_name"]
