"""Adapters for RAG frameworks, each an optional extra imported only when used.

- :mod:`uae.integrations.langchain`: ``UAERetriever``, a LangChain ``BaseRetriever`` over a
  :class:`~uae.retrieval.retriever.Retriever` (``pip install 'uae[langchain]'``).
- :mod:`uae.integrations.llamaindex`: ``UAELlamaIndexRetriever``, a LlamaIndex ``BaseRetriever``
  (``pip install 'uae[llamaindex]'``).
"""
