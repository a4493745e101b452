"""Character-level language modelling on any UTF-8 text; by default a public-domain
Shakespeare text shipped with seqjax.

The default text is ``seqjax/data/tinyshakespeare.txt`` (see ``seqjax/data/README.md``: the
first 190,596 characters of the tiny-shakespeare corpus, public domain); ``path=`` reads your
own file instead (``task: {name: char_lm, path: my.txt}`` in a config; a relative path is read
from the working directory). The vocabulary is the sorted set of the whole file's characters;
ids index into it. The first 90% of the characters are the ``train`` split, the last 10% the
``valid`` split, which `char_lm` holds out for evaluation (``Task.sample_eval``).

Three ways to use it:

* `char_lm`: a `Task` sampling random windows (next-character prediction);
* `load_corpus`: the whole encoded stream and the vocabulary, for generation and evaluation;
* `stream_batch`: the stream cut into B contiguous tracks, a `Batch` of streams for streaming
  truncated BPTT (``seqjax.train`` slices it into windows and carries the state across).
"""

from __future__ import annotations

import functools
import pathlib
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from seqjax.checks import check_int
from seqjax.tasks.base import Batch, Task, make_sampler, symbol_task

__all__ = ["CharCorpus", "char_lm", "decode", "encode", "load_corpus", "stream_batch"]

TEXT_PATH = pathlib.Path(__file__).resolve().parent.parent / "data" / "tinyshakespeare.txt"
SPLITS = ("train", "valid", "all")
TRAIN_FRACTION = 0.9
_SPLIT_PARTS = {"train": "the first 90%", "valid": "the last 10%", "all": "all"}


class CharCorpus(NamedTuple):
    """An encoded text.

    Attributes:
      text: the text of the split.
      vocab: the characters, sorted; character ``vocab[i]`` has id i. Shared by all splits.
      ids: ``[N]`` int32, the encoded text (read-only).
    """

    text: str
    vocab: tuple[str, ...]
    ids: np.ndarray


def _full_text(path: str | None) -> str:
    if path is None:
        if not TEXT_PATH.is_file():
            raise FileNotFoundError(
                f"char_lm: the shipped text {TEXT_PATH} is missing; reinstall seqjax with its "
                f"package data (seqjax/data/*.txt)."
            )
        return _read_text(str(TEXT_PATH), TEXT_PATH.stat().st_mtime_ns)
    file = pathlib.Path(path).expanduser()
    if not file.is_file():
        raise ValueError(
            f"char_lm: `path`={path!r} is not a file (resolved to {file.resolve()}); a relative "
            f"path is read from the working directory {pathlib.Path.cwd()}."
        )
    return _read_text(str(file), file.stat().st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _read_text(path: str, mtime_ns: int) -> str:
    del mtime_ns  # part of the cache key: an edited file is read again
    data = pathlib.Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(
            f"char_lm: {path} is not UTF-8 text: byte {e.start} is {data[e.start : e.start + 1]!r} "
            f"({e.reason}); convert the file to UTF-8 (e.g. iconv -t UTF-8)."
        ) from None


def encode(text: str, vocab: tuple[str, ...]) -> np.ndarray:
    """Encodes ``text`` as ``[len(text)]`` int32 ids into ``vocab``."""
    index = {c: i for i, c in enumerate(vocab)}
    unknown = sorted(set(text) - index.keys())
    if unknown:
        raise ValueError(
            f"encode: characters {unknown!r} are not in the vocabulary of {len(vocab)} "
            f"characters; encode only text over load_corpus().vocab."
        )
    return np.fromiter((index[c] for c in text), dtype=np.int32, count=len(text))


def decode(ids: np.ndarray | jax.Array, vocab: tuple[str, ...]) -> str:
    """Decodes int ids ``[N]`` back to a string."""
    return "".join(vocab[int(i)] for i in np.asarray(ids).reshape(-1))


def load_corpus(split: str = "train", path: str | None = None) -> CharCorpus:
    """The encoded text: the shipped Shakespeare, or the UTF-8 file at ``path``.

    Args:
      split: ``"train"`` (the first 90% of the characters), ``"valid"`` (the last 10%) or
        ``"all"``.
      path: a UTF-8 text file; None for the shipped Shakespeare text.

    Returns:
      A `CharCorpus` (cached while the file is unchanged; its ``ids`` are read-only). The
      vocabulary is that of the whole file, shared by all splits.
    """
    if split not in SPLITS:
        raise ValueError(f"load_corpus: `split` must be one of {SPLITS}, got {split!r}.")
    return _corpus(split, _full_text(path))


@functools.lru_cache(maxsize=2 * len(SPLITS))
def _corpus(split: str, text: str) -> CharCorpus:
    vocab = tuple(sorted(set(text)))
    cut = int(len(text) * TRAIN_FRACTION)
    text = {"train": text[:cut], "valid": text[cut:], "all": text}[split]
    ids = encode(text, vocab)
    ids.setflags(write=False)
    return CharCorpus(text, vocab, ids)


def unigram_entropy(ids: np.ndarray, vocab_size: int) -> float:
    """The entropy in nats of the empirical character distribution of ``ids``."""
    counts = np.bincount(np.asarray(ids).reshape(-1), minlength=vocab_size).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    return float(-np.sum(p * np.log(p)))


def _windows(ids_np: np.ndarray, length: int, vocab_size: int) -> Callable[[jax.Array], Batch]:
    """``example(key) -> Batch``: a window of ``length + 1`` characters at a random start."""
    n = ids_np.shape[0]
    ids = jnp.asarray(ids_np)

    def example(key: jax.Array) -> Batch:
        start = jax.random.randint(key, (), 0, n - length, dtype=jnp.int32)
        window = jax.lax.dynamic_slice(ids, (start,), (length + 1,))
        return Batch(
            jax.nn.one_hot(window[:-1], vocab_size, dtype=jnp.float32),
            window[1:],
            jnp.ones((length,), jnp.float32),
            jnp.asarray(length, jnp.int32),
        )

    return example


def char_lm(length: int = 100, split: str = "train", path: str | None = None) -> Task:
    """Character-level language modelling (next-character prediction) on a text.

    By default the tiny-shakespeare setting of Karpathy's char-rnn ("The Unreasonable
    Effectiveness of Recurrent Neural Networks", 2015) on a public-domain slice of it; with
    ``path``, any UTF-8 text file. Each example is a window of T + 1 consecutive characters at
    a uniformly random start in the split::

        inputs[t] = one_hot(c_{s+t}),   targets[t] = c_{s+t+1},   t < T

    Cross-entropy over the vocabulary of the whole file (``len(load_corpus().vocab)``
    classes). Evaluation (``Task.sample_eval``) draws its windows from the ``valid`` split, the
    last 10% of the characters, whatever ``split`` training samples. Baseline: the unigram
    entropy of the split in nats (the loss of predicting the character frequencies).

    Args:
      length: T >= 1, shorter than the split and than the ``valid`` split.
      split: ``"train"``, ``"valid"`` or ``"all"`` (see `load_corpus`): where training
        windows come from.
      path: a UTF-8 text file (a relative path is read from the working directory); None for
        the shipped Shakespeare text.

    Returns:
      A many_to_many `Task`: inputs ``[B, T, V]``, targets ``[B, T]`` int32.
    """
    where = "char_lm"
    if split not in SPLITS:
        raise ValueError(f"{where}: `split` must be one of {SPLITS}, got {split!r}.")
    if path is not None and not isinstance(path, str | pathlib.Path):
        raise TypeError(f"{where}: `path` must be a str, got {path!r} of type {type(path)}.")
    path = None if path is None else str(path)
    corpus = load_corpus(split, path)
    held_out = load_corpus("valid", path)
    length = check_int(where, "length", length, 1)
    source = "the shipped text" if path is None else path
    for name, part in ((split, corpus), ("valid", held_out)):
        if length >= part.ids.shape[0]:
            raise ValueError(
                f"{where}: `length` must be < {part.ids.shape[0]} (the characters of the "
                f"{name} split of {source}: {_SPLIT_PARTS[name]} of "
                f"{len(load_corpus('all', path).text)}), got {length}; use a shorter length "
                f"or a longer text."
            )
    vocab_size = len(corpus.vocab)
    task = symbol_task(
        where,
        _windows(corpus.ids, length, vocab_size),
        input_size=vocab_size,
        output_size=vocab_size,
        pattern="many_to_many",
        baseline=unigram_entropy(corpus.ids, vocab_size),
    )
    return task._replace(
        sample_eval=make_sampler(f"{where}_eval", _windows(held_out.ids, length, vocab_size))
    )


def stream_batch(
    batch_size: int, split: str = "train", max_steps: int | None = None, path: str | None = None
) -> Batch:
    """The corpus as B contiguous streams, for streaming truncated BPTT.

    The ids are cut into ``batch_size`` equal contiguous tracks (the tail that does not fill
    a track is dropped); track b continues the text where track b - 1 ends. Inputs are the
    characters, targets the next ones::

        inputs[b, t] = one_hot(c[b * M + t]),   targets[b, t] = c[b * M + t + 1],   t < M - 1

    with ``M = N // batch_size``. Feed it to ``seqjax.train`` with ``window=k`` to train on
    consecutive windows of k steps while carrying the state.

    Args:
      batch_size: B >= 1.
      split: ``"train"``, ``"valid"`` or ``"all"``.
      max_steps: if given, keep only the first ``max_steps`` steps of each track.
      path: a UTF-8 text file; None for the shipped Shakespeare text.

    Returns:
      A `Batch`: inputs ``[B, M - 1, V]`` float32, targets ``[B, M - 1]`` int32, mask ones,
      length ``[B]`` = M - 1.
    """
    where = "stream_batch"
    corpus = load_corpus(split, path)
    batch_size = check_int(where, "batch_size", batch_size, 1)
    track = corpus.ids.shape[0] // batch_size
    if track < 2:
        raise ValueError(
            f"{where}: `batch_size`={batch_size} leaves fewer than 2 characters per track in "
            f"the {split} split ({corpus.ids.shape[0]} characters); use a smaller batch_size."
        )
    tracks = corpus.ids[: batch_size * track].reshape(batch_size, track)
    steps = track - 1
    if max_steps is not None:
        steps = min(steps, check_int(where, "max_steps", max_steps, 1))
    inputs = jax.nn.one_hot(jnp.asarray(tracks[:, :steps]), len(corpus.vocab), dtype=jnp.float32)
    return Batch(
        inputs,
        jnp.asarray(tracks[:, 1 : steps + 1]),
        jnp.ones((batch_size, steps), jnp.float32),
        jnp.full((batch_size,), steps, jnp.int32),
    )
