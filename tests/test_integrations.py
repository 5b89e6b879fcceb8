"""LangChain and LlamaIndex retrievers over a uae Retriever, each skipped when its framework is absent."""

from __future__ import annotations

import pytest

from uae.data.schema import Corpus, Passage
from uae.retrieval.retriever import Retriever


@pytest.fixture(scope="module")
def retriever(tiny_encoder_dir):
    corpus = Corpus(Passage(f"p{i}", f"passage {i} about {topic}", title=topic.title(), doc_id=f"d{i % 2}")
                    for i, topic in enumerate(["rivers", "castles", "engines", "gardens"]))
    return Retriever.build(str(tiny_encoder_dir), corpus, progress=False)


def test_langchain_retriever_returns_documents_in_rank_order(retriever):
    pytest.importorskip("langchain_core")
    from uae.integrations.langchain import UAERetriever

    expected = retriever.search(["castle history"], 3)[0]
    documents = UAERetriever(retriever=retriever, k=3).invoke("castle history")
    assert [d.metadata["passage_id"] for d in documents] == [h.passage_id for h in expected]
    first = retriever.index.get(expected[0].passage_id)
    assert documents[0].page_content == first.text and documents[0].metadata["title"] == first.title
    assert documents[0].metadata["doc_id"] == first.doc_id and documents[0].metadata["score"] == pytest.approx(expected[0].score)
    scoped = UAERetriever(retriever=retriever, k=4, scope="d1").invoke("castle history")
    assert {d.metadata["doc_id"] for d in scoped} == {"d1"} and len(scoped) == 2


def test_llamaindex_retriever_returns_scored_nodes(retriever):
    pytest.importorskip("llama_index.core")
    from uae.integrations.llamaindex import UAELlamaIndexRetriever

    expected = retriever.search(["engine parts"], 2)[0]
    nodes = UAELlamaIndexRetriever(retriever, k=2).retrieve("engine parts")
    assert [n.node.node_id for n in nodes] == [h.passage_id for h in expected]
    assert [n.score for n in nodes] == pytest.approx([h.score for h in expected])
    assert nodes[0].node.metadata["title"] == retriever.index.get(expected[0].passage_id).title
