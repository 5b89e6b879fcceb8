"""uae: Utility-Aligned Embeddings.

Dense retrievers trained to fetch the passages that lower an LLM's perplexity on the
gold answer, not merely the passages that look like the question.
"""

__version__ = "0.1.0"
