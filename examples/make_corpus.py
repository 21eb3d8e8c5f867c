"""A synthetic news corpus for the bundled example, in Vespa's feed JSON (one put per line).

    python examples/make_corpus.py [--docs 100000] [--seed 20261126] [--out FILE]   (default: stdout)
    python examples/make_corpus.py --query science        a topic's query vector, as JSON

Every article belongs to one of TOPICS; its embedding is the topic's centre plus noise,
normalised (cosine to its centre about 0.8), written in Vespa's hex cell form (the cells'
big-endian float32 bits), which is several times faster to feed than 32 JSON numbers.
Popularity is in [0, 1]. A query for a topic is that topic's centre (`topic_query`), so
the demo can show that the documents it finds are the topic's.

The output depends only on the seed: each random stream (centres, topics, noise,
popularity, titles) has its own generator, so the corpus of N documents is the first N
lines of any larger one, however it is produced.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator

import numpy as np

SEED = 20261126
DIM = 32
NOISE = 0.13  # per cell; with 32 cells, cosine to the topic centre about 1 / sqrt(1 + 32 * 0.13**2) = 0.8
CHUNK = 8192
TOPICS = ("politics", "business", "technology", "science", "health", "sports", "culture", "travel",
          "food", "climate", "space", "education", "music", "film", "finance", "games")
_WORDS = ("new", "report", "weekly", "inside", "analysis", "update", "guide", "review", "story", "notes",
          "brief", "explainer", "interview", "outlook", "debate", "digest")


def _streams(seed: int) -> dict[str, np.random.Generator]:
    names = ("centres", "topics", "noise", "popularity", "titles")
    return dict(zip(names, (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(names)))))


def _normalise(x: np.ndarray) -> np.ndarray:
    # element-wise float64 rather than np.linalg.norm (BLAS), so the bits do not depend on the machine
    return x / np.sqrt((x * x).sum(axis=-1, keepdims=True))


def topic_centres(seed: int = SEED) -> np.ndarray:
    """[len(TOPICS), DIM] unit vectors, float64."""
    return _normalise(_streams(seed)["centres"].standard_normal((len(TOPICS), DIM)))


def topic_query(topic: str, seed: int = SEED) -> list[float]:
    """The query embedding for a topic: its centre, as float32 values."""
    return [float(v) for v in topic_centres(seed)[TOPICS.index(topic)].astype(np.float32)]


def doc_id(i: int) -> str:
    return f"id:news:news::{i}"


def iter_lines(docs: int, seed: int = SEED) -> Iterator[str]:
    """The corpus's feed lines (no trailing newline), document 0 first."""
    rngs = _streams(seed)
    centres = topic_centres(seed)
    done = 0
    while done < docs:
        k = min(CHUNK, docs - done)
        topic = rngs["topics"].integers(0, len(TOPICS), size=k)
        emb = _normalise(centres[topic] + NOISE * rngs["noise"].standard_normal((k, DIM)))
        cells = emb.astype(">f4")
        pop = rngs["popularity"].beta(2.0, 5.0, size=k)
        words = rngs["titles"].integers(0, len(_WORDS), size=(k, 2))
        for j in range(k):
            i = done + j
            title = f"{TOPICS[topic[j]]}: {_WORDS[words[j, 0]]} {_WORDS[words[j, 1]]} {i}"
            yield (f'{{"put":"{doc_id(i)}","fields":{{"title":"{title}",'
                   f'"embedding":{{"values":"{cells[j].tobytes().hex()}"}},"popularity":{pop[j]:.4f}}}}}')
        done += k


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--out", help="file to write (default: standard output)")
    ap.add_argument("--query", choices=TOPICS, metavar="TOPIC",
                    help=f"write the query vector of a topic instead, as a JSON array ({', '.join(TOPICS)})")
    args = ap.parse_args()
    if args.query:
        text = json.dumps(topic_query(args.query, args.seed)) + "\n"
        if args.out:
            with open(args.out, "w", encoding="utf-8") as f:
                f.write(text)
        else:
            sys.stdout.write(text)
        return
    out = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout
    try:
        for line in iter_lines(args.docs, args.seed):
            out.write(line)
            out.write("\n")
    finally:
        if out is not sys.stdout:
            out.close()


if __name__ == "__main__":
    main()
