"""A LlamaIndex retriever over a :class:`~uae.retrieval.retriever.Retriever` (``pip install 'uae[llamaindex]'``).

    from uae import Retriever
    from uae.integrations.llamaindex import UAELlamaIndexRetriever

    retriever = UAELlamaIndexRetriever(Retriever.load("index"), k=5)
    nodes = retriever.retrieve("Who founded the town?")   # NodeWithScore, node.metadata holds title and doc_id
"""

from __future__ import annotations

from uae.errors import import_optional

import_optional("llama_index.core", "the LlamaIndex retriever needs llama-index-core: pip install 'uae[llamaindex]'")

from llama_index.core.retrievers import BaseRetriever  # noqa: E402
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode  # noqa: E402


class UAELlamaIndexRetriever(BaseRetriever):
    """Top-``k`` passages of a uae index as LlamaIndex ``NodeWithScore`` objects.

    Args:
        retriever: the uae retriever (model and index).
        k: passages per query.
        scope: restrict every query to this ``doc_id`` (``None``: the whole index).
    """

    def __init__(self, retriever, k: int = 4, scope: str | None = None) -> None:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        self.retriever, self.k, self.scope = retriever, k, scope
        super().__init__()

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self.retriever.search([query_bundle.query_str], self.k, [self.scope])[0]
        nodes = []
        for hit in hits:
            record = self.retriever.hit_record(hit)
            node = TextNode(id_=record["passage_id"], text=record["text"],
                            metadata={"title": record["title"], "doc_id": record["doc_id"]})
            nodes.append(NodeWithScore(node=node, score=record["score"]))
        return nodes
