"""Training: the student learns the teacher's targets.

- :mod:`~uae.training.losses`: UtilityModulatedInfoNCE and the ablations, in the
  sentence-transformers loss shape.
- :mod:`~uae.training.rows`: which pool passages a training row keeps, and its label.
- :mod:`~uae.training.trainer`: the sentence-transformers trainer wiring, the model card record,
  one progress bar (needs ``pip install 'uae[train]'``).
- :mod:`~uae.training.selection`: a dev split held out by document, and the checkpoint kept on it.
"""
