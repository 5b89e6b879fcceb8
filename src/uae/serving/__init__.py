"""Serving: the retrieval service over HTTP (FastAPI), ``uae serve``.

:func:`~uae.serving.server.create_app` builds the app around a :class:`~uae.retrieval.retriever.Retriever`;
:class:`~uae.serving.server.ServerSettings` holds its limits and batching.
"""

from uae.serving.server import ServerSettings, create_app

__all__ = ["ServerSettings", "create_app"]
