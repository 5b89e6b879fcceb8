"""Retrieval: the value types every retriever shares, and the retrievers themselves.

- :mod:`~uae.retrieval.types`: ``Hit`` and ``Run`` (``{query_id: {passage_id: score}}``), the one definition.
- :mod:`~uae.retrieval.encoders`: the packaged MiniLM offline, any sentence-transformers model, encoding.
- :mod:`~uae.retrieval.bm25`: BM25 (bm25s) with per-query scope.
- :mod:`~uae.retrieval.index`: a FAISS index bound to the model that built it, editable while live.
- :mod:`~uae.retrieval.retriever`: ``Retriever.load(path).search(queries, k)``, and the cache of
  encoded corpora that the stages of one run share.
- :mod:`~uae.retrieval.mining`: candidate pools, BM25 and the base encoder fused by reciprocal rank.
- :mod:`~uae.retrieval.vector_store`: a Milvus collection as a second index behind the same interface.
- :mod:`~uae.retrieval.ray_encoding`: a corpus encoded on Ray in resumable parquet shards.

Import from the modules: this package imports nothing, so ``uae.retrieval.types`` stays light.
"""
