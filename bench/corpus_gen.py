"""Generate a large synthetic corpus with realistic (Zipfian) word frequencies.

The vocabulary is taken from the bundled corpora, ordered by real frequency, and sampled with
Zipf weights ``1 / rank**1.07`` (natural-language word frequencies), so posting-list lengths
and query selectivity look like a real collection's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import numpy as np

from sleuth.corpus import load_documents
from sleuth.search.lexical import tokenize
from sleuth.types import Document


def vocabulary() -> list[str]:
    counts: Counter[str] = Counter()
    for name in ("hotpotqa-1100", "cranfield"):
        for doc in load_documents(name):
            counts.update(tokenize(f"{doc.title} {doc.text}"))
    return [word for word, _ in counts.most_common()]


def zipf_weights(size: int, exponent: float = 1.07) -> np.ndarray:
    weights = 1.0 / np.arange(1, size + 1) ** exponent
    return weights / weights.sum()


def synthetic_documents(count: int, seed: int = 0, words=(60, 100)) -> Iterator[Document]:
    vocab = vocabulary()
    rng = np.random.default_rng(seed)
    probabilities = zipf_weights(len(vocab))
    lengths = rng.integers(words[0], words[1] + 1, size=count)
    for start in range(0, count, 10_000):
        block = lengths[start : start + 10_000]
        ids = rng.choice(len(vocab), size=int(block.sum()), p=probabilities)
        offset = 0
        for n, length in enumerate(block):
            tokens = [vocab[i] for i in ids[offset : offset + length]]
            offset += length
            yield Document(f"p{start + n}", " ".join(tokens[:3]), " ".join(tokens[3:]))


def synthetic_queries(count: int, seed: int = 1) -> list[str]:
    """2-5 mid-frequency words each, like keyword queries written by people or LLMs."""
    vocab = vocabulary()
    rng = np.random.default_rng(seed)
    low, high = 50, min(20_000, len(vocab))
    return [
        " ".join(vocab[i] for i in rng.integers(low, high, size=rng.integers(2, 6)))
        for _ in range(count)
    ]


# --- Wikipedia-like passages at 21M scale -------------------------------------------------------
#
# ``synthetic_documents`` above samples a fixed ~49k-stem vocabulary: fine for 500k passages, but at
# Wikipedia scale the vocabulary keeps growing (Heaps' law) and a fixed one would make the term
# dictionary unrealistically small. ``wiki_documents`` draws words from a two-regime Zipf law
# (Ferrer i Cancho & Sole 2001): the frequent words with their real frequencies (raw words, stop
# words included, from the bundled corpora), then a tail with P(rank >= a + j) = a / (a + j), i.e.
# frequency ~ rank**-2, whose words are the bundled corpora's rare words followed by made-up words.
# Distinct words then grow about as sqrt(tokens): ~0.6M at 1M passages, ~3M at 21M.

WIKI_WORDS = 100  # wiki-18 (DPR, Search-R1) passages are 100 words of text plus the title
HEAD_MIN_COUNT = 5  # words seen at least this often in the bundled corpora keep their frequency
TAIL_MASS = 0.08  # share of running words from the tail (rare words, names, numbers)
TAIL_MAX = 8_000_000  # tail size cap; ranks beyond have under ~0.05 expected uses at 21M passages
BLOCK = 10_000  # passages per block; block b uses its own seed, so a corpus is a prefix of a larger
RAW_WORD = r"[a-z]+(?:'[a-z]+)?|\d+(?:[.,]\d+)*"
SYLLABLES = [c + v for c in "bdfglmnprtvz" for v in "aiou"]  # no English suffix ends in these + k


def raw_vocabulary() -> tuple[list[str], np.ndarray]:
    """Raw lowercase words of the bundled corpora by frequency (stop words kept), and counts."""
    import re

    counts: Counter[str] = Counter()
    for name in ("hotpotqa-1100", "cranfield"):
        for doc in load_documents(name):
            counts.update(re.findall(RAW_WORD, f"{doc.title} {doc.text}".lower(), re.ASCII))
    ordered = counts.most_common()
    return [w for w, _ in ordered], np.array([c for _, c in ordered], dtype=np.float64)


def made_up_words(indices: np.ndarray) -> np.ndarray:
    """Distinct pronounceable words for tail indices (bijective base-48 syllables + "k"), as bytes;
    the English stemmer leaves them whole, so each stays one distinct term."""
    base = len(SYLLABLES)
    n = indices.astype(np.int64) + 1
    digits = []
    while (n > 0).any():
        n = n - 1
        digits.append(np.where(n >= 0, n % base, -1))
        n = np.where(n >= 0, n // base, 0)
        n[digits[-1] < 0] = 0
    table = np.array([s.encode() for s in SYLLABLES], dtype="S2").view(np.uint8).reshape(-1, 2)
    width = 2 * len(digits) + 1
    out = np.zeros((len(indices), width), dtype=np.uint8)
    length = np.zeros(len(indices), dtype=np.int64)
    for d in reversed(digits):  # most significant syllable first
        used = d >= 0
        rows = np.nonzero(used)[0]
        out[rows, length[rows]] = table[d[used], 0]
        out[rows, length[rows] + 1] = table[d[used], 1]
        length[rows] += 2
    out[np.arange(len(indices)), length] = ord("k")
    return out.view(f"S{width}").ravel()


def alias_table(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker's alias table for the discrete distribution ``p``: draw k uniformly, keep it with
    probability ``prob[k]``, else take ``alias[k]``."""
    n = len(p)
    scaled = p / p.sum() * n
    prob, alias = np.ones(n), np.arange(n)
    small = [i for i in range(n) if scaled[i] < 1.0]
    large = [i for i in range(n) if scaled[i] >= 1.0]
    while small and large:
        s, big = small.pop(), large[-1]
        prob[s], alias[s] = scaled[s], big
        scaled[big] -= 1.0 - scaled[s]
        if scaled[big] < 1.0:
            small.append(large.pop())
    return prob, alias


def joined_rows(words: np.ndarray, per_row: int) -> tuple[str, list[int], list[int]]:
    """Words (zero-padded bytes; b"" for none) joined by spaces, ``per_row`` words a row: the text
    of all rows and each row's [start, end) in it, built with array operations (a Python loop
    over 2 billion words would make the generator slower than the index it feeds)."""
    padded = words.view(np.uint8).reshape(len(words), -1)
    present = padded[:, 0] != 0
    rows = np.empty((len(words), padded.shape[1] + 1), dtype=np.uint8)
    rows[:, :-1], rows[:, -1] = padded, np.where(present, ord(" "), 0)
    text = rows[rows != 0].tobytes().decode("ascii")
    sizes = (np.count_nonzero(padded, axis=1) + present).reshape(-1, per_row).sum(axis=1)
    ends = np.cumsum(sizes)
    return text, (ends - sizes).tolist(), (ends - 1).tolist()  # (the last space is left out)


class WikiVocabulary:
    """The word distribution of ``wiki_documents``: ``sample(rng, n)`` draws word ranks."""

    def __init__(self) -> None:
        words, counts = raw_vocabulary()
        head = int((counts >= HEAD_MIN_COUNT).sum())
        self.head = head
        self.head_p = counts[:head] / counts[:head].sum() * (1 - TAIL_MASS)
        self.head_cdf = np.cumsum(self.head_p)
        self.real = np.array([w.encode() for w in words], dtype="S24")  # head + rare real words
        self.size = head + TAIL_MAX
        self.alias_prob, self.alias = alias_table(np.append(self.head_p, TAIL_MASS))

    def sample(self, rng: np.random.Generator, n: int, skip: int = 0) -> np.ndarray:
        """Word ranks (0-based): the head by real frequency, the tail ~ rank**-2 (truncated);
        ``skip``: only ranks from ``skip`` on (title words are no stop words)."""
        if skip:  # few draws: invert the cumulative distribution
            low = self.head_cdf[skip - 1]
            u = low + rng.random(n) * (1.0 - low)
            ranks = np.searchsorted(self.head_cdf, u, side="right")
        else:  # Walker's alias method: O(1) a draw (searchsorted was half the generator's time)
            pick = rng.integers(0, len(self.alias), n)
            ranks = np.where(rng.random(n) < self.alias_prob[pick], pick, self.alias[pick])
        tail = ranks >= self.head
        a = float(self.head)
        v = rng.random(int(tail.sum()))  # where in the tail
        # inverse of the truncated P(J >= j) = (a/(a+j) - c) / (1 - c), c = a/(a+TAIL_MAX)
        c = a / (a + TAIL_MAX)
        j = np.floor(a / (1 - v * (1 - c)) - a).astype(np.int64)
        ranks[tail] = self.head + np.minimum(j, TAIL_MAX - 1)
        return ranks

    def words(self, ranks: np.ndarray) -> np.ndarray:
        """The words (bytes) of ranks: real words first, then made-up ones."""
        out = np.empty(len(ranks), dtype="S24")
        real = ranks < len(self.real)
        out[real] = self.real[ranks[real]]
        made = ~real
        if made.any():
            unique, inverse = np.unique(ranks[made] - len(self.real), return_inverse=True)
            out[made] = made_up_words(unique)[inverse]
        return out


def wiki_documents(count: int, seed: int = 0, seen: np.ndarray | None = None) -> Iterator[Document]:
    """``count`` Wikipedia-like passages (ids "1", "2", ...): a title of 1-3 words that are not
    among the 200 most frequent, and 100 words of text, streamed block by block (memory
    independent of ``count``) and deterministic (block b is seeded by (seed, b), so a smaller
    corpus is a prefix of a larger one). ``seen``, a bool array of ``WikiVocabulary().size``, is
    marked with every word rank used (to count distinct words)."""
    vocab = WikiVocabulary()
    for block_start in range(0, count, BLOCK):
        rng = np.random.default_rng([seed, block_start // BLOCK])
        n_docs = min(BLOCK, count - block_start)
        ranks = vocab.sample(rng, n_docs * WIKI_WORDS)
        titles = vocab.sample(rng, n_docs * 3, skip=200).reshape(n_docs, 3)
        if seen is not None:
            seen[ranks] = True
            seen[titles.ravel()] = True
        text, starts, ends = joined_rows(vocab.words(ranks), WIKI_WORDS)
        title_words = vocab.words(titles.ravel()).reshape(n_docs, 3)
        title_words[np.arange(3)[None, :] >= rng.integers(1, 4, size=n_docs)[:, None]] = b""
        titles_text, title_starts, title_ends = joined_rows(title_words.ravel(), 3)
        titles_text = titles_text.title()
        for i, (begin, end, t_begin, t_end) in enumerate(
            zip(starts, ends, title_starts, title_ends, strict=True)
        ):
            yield Document(
                str(block_start + i + 1), titles_text[t_begin:t_end], text[begin:end] + "."
            )


def wiki_queries(count: int, seed: int = 1) -> list[str]:
    """Keyword queries of 3-10 words drawn from the corpus's own word distribution (stop words,
    frequent words and rare ones in their running-text shares), like the short questions and
    keyword lists search agents send."""
    vocab = WikiVocabulary()
    rng = np.random.default_rng([seed, 10**9])
    lengths = rng.integers(3, 11, size=count)
    words = vocab.words(vocab.sample(rng, int(lengths.sum()))).tolist()
    out, offset = [], 0
    for n in lengths.tolist():
        out.append(b" ".join(words[offset : offset + n]).decode())
        offset += n
    return out
