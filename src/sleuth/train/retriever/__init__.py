"""Promptagator: few-shot dense retrieval from at most 8 labelled (query, passage) pairs.

An LLM writes queries for corpus passages from the 8 examples; a query is kept only if the
current retriever ranks its own passage in the top k for it (round-trip consistency); the
packaged MiniLM encoder is fine-tuned on the kept pairs (in-batch negatives plus BM25 hard
negatives), and the corpus is indexed again with it. ``sleuth train retriever`` runs it all.
"""

from sleuth.train.retriever.examples import MAX_EXAMPLES, Example, load_examples
from sleuth.train.retriever.pipeline import RetrieverTrainConfig, train_retriever

__all__ = ["MAX_EXAMPLES", "Example", "RetrieverTrainConfig", "load_examples", "train_retriever"]
