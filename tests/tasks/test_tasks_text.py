"""The shipped Shakespeare text: corpus, vocabulary, windows, and streams."""

from __future__ import annotations

import pathlib

import jax
import numpy as np
import pytest

from seqjax import tasks
from seqjax.tasks.text import TEXT_PATH


def test_shipped_text_and_its_readme():
    assert TEXT_PATH.is_file()
    size = TEXT_PATH.stat().st_size
    assert 150_000 < size < 300_000
    readme = pathlib.Path(TEXT_PATH.parent, "README.md").read_text()
    assert "public domain" in readme.lower() and "karpathy/char-rnn" in readme
    assert TEXT_PATH.read_text().startswith("First Citizen:\nBefore we proceed any further")


def test_corpus_vocabulary_and_splits():
    full = tasks.load_corpus("all")
    assert full.vocab == tuple(sorted(set(full.text)))
    assert full.ids.dtype == np.int32 and not full.ids.flags.writeable
    assert tasks.decode(full.ids[:200], full.vocab) == full.text[:200]
    train, valid = tasks.load_corpus("train"), tasks.load_corpus("valid")
    assert train.vocab == valid.vocab == full.vocab
    assert train.text + valid.text == full.text
    assert len(train.text) == int(0.9 * len(full.text))
    with pytest.raises(ValueError, match=r"not in the vocabulary"):
        tasks.encode("~", full.vocab)


def test_char_lm_windows_are_substrings_and_targets_the_next_characters(draw):
    task, batch = draw("char_lm")
    corpus = tasks.load_corpus("train")
    assert task.output_size == len(corpus.vocab)
    for b in range(16):
        text = tasks.decode(batch.inputs[b].argmax(-1), corpus.vocab)
        nxt = tasks.decode(batch.targets[b], corpus.vocab)
        assert text[1:] == nxt[:-1]
        assert text + nxt[-1] in corpus.text


def test_valid_split_task():
    task = tasks.char_lm(length=8, split="valid")
    batch = task.sample(jax.random.key(0), 2)
    valid = tasks.load_corpus("valid")
    text = tasks.decode(np.asarray(batch.inputs[0]).argmax(-1), valid.vocab)
    assert text in valid.text


def test_stream_batch_tracks_are_contiguous():
    stream = tasks.stream_batch(4, split="valid", max_steps=50)
    valid = tasks.load_corpus("valid")
    track = valid.ids.shape[0] // 4
    assert stream.inputs.shape == (4, 50, len(valid.vocab))
    assert stream.targets.shape == stream.mask.shape == (4, 50)
    np.testing.assert_array_equal(np.asarray(stream.length), 50)
    for b in range(4):
        ids = valid.ids[b * track : b * track + 51]
        np.testing.assert_array_equal(np.asarray(stream.inputs[b]).argmax(-1), ids[:-1])
        np.testing.assert_array_equal(np.asarray(stream.targets[b]), ids[1:])
    full = tasks.stream_batch(2, split="valid")
    assert full.inputs.shape[1] == valid.ids.shape[0] // 2 - 1
