"""A LangChain retriever over a :class:`~uae.retrieval.retriever.Retriever` (``pip install 'uae[langchain]'``).

    from uae import Retriever
    from uae.integrations.langchain import UAERetriever

    retriever = UAERetriever(retriever=Retriever.load("index"), k=5)
    docs = retriever.invoke("Who founded the town?")   # Documents with passage_id, score, title, doc_id in metadata
"""

from __future__ import annotations

from typing import Any

from uae.errors import import_optional

import_optional("langchain_core", "the LangChain retriever needs langchain-core: pip install 'uae[langchain]'")

from langchain_core.callbacks import CallbackManagerForRetrieverRun  # noqa: E402
from langchain_core.documents import Document  # noqa: E402
from langchain_core.retrievers import BaseRetriever  # noqa: E402
from pydantic import ConfigDict, Field  # noqa: E402


class UAERetriever(BaseRetriever):
    """Top-``k`` passages of a uae index as LangChain ``Document`` objects.

    Attributes:
        retriever: the uae retriever (model and index).
        k: passages per query.
        scope: restrict every query to this ``doc_id`` (``None``: the whole index).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    retriever: Any = Field(description="a uae.Retriever")
    k: int = Field(4, ge=1)
    scope: str | None = None

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        hits = self.retriever.search([query], self.k, [self.scope])[0]
        documents = []
        for hit in hits:
            record = self.retriever.hit_record(hit)
            text = record.pop("text")
            documents.append(Document(page_content=text, metadata=record, id=record["passage_id"]))
        return documents
