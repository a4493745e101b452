"""Tasks over the user's own files: ``char_lm(path=...)`` on a UTF-8 text and ``arrays`` on an
``.npz``. Every file is written into ``tmp_path``; the references are NumPy and Python strings."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax import tasks
from seqjax.experiment.builders import make_eval_fn
from seqjax.experiment.config import ConfigError, config_from_data
from seqjax.models import Model
from seqjax.tasks.arrays import EXAMPLE_PATH

N, T, F = 10, 6, 2


def _sample(task, seed=0, batch_size=64, sample=None):
    batch = (sample or task.sample)(jax.random.key(seed), batch_size)
    return jax.tree.map(np.asarray, batch)


# ---------------------------------------------------------------------------- char_lm on a file


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    # 90% "a"-"d" with accents; the held-out last 10% uses letters training never sees.
    train = "".join("abcdé"[i % 5] for i in range(900))
    held_out = "".join("xyzw"[i % 4] for i in range(100))
    path = tmp_path_factory.mktemp("text") / "mine.txt"
    path.write_text(train + held_out, encoding="utf-8")
    return path, train, held_out


def test_char_lm_reads_a_utf8_file_and_holds_out_its_last_tenth(text_file):
    path, train, held_out = text_file
    task = tasks.char_lm(length=8, path=str(path))
    vocab = tasks.load_corpus("all", str(path)).vocab
    assert vocab == tuple(sorted(set(train + held_out)))
    assert task.input_size == task.output_size == len(vocab) == 9
    assert tasks.load_corpus("train", str(path)).text == train
    for sample, source in ((task.sample, train), (task.sample_eval, held_out)):
        batch = _sample(task, sample=sample)
        for b in range(8):
            window = tasks.decode(batch.inputs[b].argmax(-1), vocab)
            assert window + tasks.decode(batch.targets[b, -1:], vocab) in source
    # the unigram entropy of the training split: five equally frequent characters
    assert task.baseline == pytest.approx(np.log(5))


def test_evaluation_of_char_lm_samples_the_held_out_part(text_file):
    # make_eval_fn (what seqjax.run evaluates with), on a model that spreads its prediction
    # evenly over the four held-out letters: log(4) on held-out text, ~30 nats on training text.
    path, _, _ = text_file
    task = tasks.char_lm(length=8, path=str(path))
    vocab = tasks.load_corpus("all", str(path)).vocab
    logits = jnp.asarray([0.0 if c in "xyzw" else -30.0 for c in vocab])

    def apply(params, inputs, length):
        del params, length
        return jnp.broadcast_to(logits, inputs.shape[:-1] + logits.shape), None

    model = Model(None, apply, task.pattern, task.input_size, task.output_size, lambda: None)
    with jax.numpy_dtype_promotion("standard"):
        metrics = make_eval_fn(model, task, batch_size=4, num_batches=2)(None)
    assert float(metrics["loss"]) == pytest.approx(np.log(4), abs=1e-5)


def test_char_lm_file_errors(tmp_path, text_file):
    with pytest.raises(ValueError, match=r"`path`='nope\.txt' is not a file .*working directory"):
        tasks.char_lm(path="nope.txt")
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\xe9 au lait".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1\.txt is not UTF-8 text: byte 3 is b'\\xe9'"):
        tasks.char_lm(path=str(latin1))
    path, _, _ = text_file
    with pytest.raises(ValueError, match=r"`length` must be < 100 \(the characters of the valid"):
        tasks.char_lm(length=100, path=str(path))


def test_char_lm_path_in_a_config_is_checked_before_anything_compiles(text_file):
    path, _, _ = text_file
    cfg = config_from_data({"task": {"name": "char_lm", "path": str(path), "length": 8}})
    assert cfg.task.options["path"] == str(path)
    with pytest.raises(ConfigError, match="not a file"):
        config_from_data({"task": {"name": "char_lm", "path": "missing.txt"}})


# ---------------------------------------------------------------------------- arrays


def _save(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


@pytest.fixture(scope="module")
def regression_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, T, F)).astype(np.float32)
    lengths = rng.integers(1, T + 1, N).astype(np.int32)
    y = rng.standard_normal((N, T, 3)).astype(np.float32)
    path = _save(
        tmp_path_factory.mktemp("arrays") / "reg.npz", inputs=x, targets=y, lengths=lengths
    )
    return path, x, y, lengths


def test_arrays_many_to_many_regression_with_lengths(regression_file):
    path, x, y, lengths = regression_file
    task = tasks.arrays(path, loss="mse")
    assert (task.name, task.pattern, task.loss, task.metric) == (
        "arrays",
        "many_to_many",
        "mse",
        "mse",
    )
    assert (task.input_size, task.output_size) == (F, 3)
    n_train = N - 1  # eval_fraction 0.1 of 10 examples: the last one is held out
    batch = _sample(task)
    for b in range(batch.inputs.shape[0]):
        (i,) = [j for j in range(n_train) if np.array_equal(batch.targets[b], y[j])]
        n = lengths[i]
        assert batch.length[b] == n
        np.testing.assert_array_equal(batch.inputs[b, :n], x[i, :n])
        assert np.all(batch.inputs[b, n:] == 0)  # padded steps are zeros
        np.testing.assert_array_equal(batch.mask[b], np.arange(T) < n)
    held = _sample(task, sample=task.sample_eval)
    assert np.all(held.targets == y[-1])
    # the baseline is the variance of the training targets at the counted steps (mean predictor)
    counted = y[:n_train][np.arange(T)[None, :] < lengths[:n_train, None]]
    assert task.baseline == pytest.approx(float(np.mean((counted - counted.mean(0)) ** 2)))


def test_arrays_classification_patterns_are_inferred(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((N, T, F))
    one = _save(tmp_path / "one.npz", inputs=x, targets=rng.integers(0, 4, N))
    many = _save(tmp_path / "many.npz", inputs=x, targets=rng.integers(0, 3, (N, T)))
    t1 = tasks.arrays(one, loss="cross_entropy", eval_fraction=0.0)
    assert (t1.pattern, t1.metric, t1.output_size, t1.sample_eval) == (
        "many_to_one",
        "accuracy",
        4,
        None,
    )
    b1 = _sample(t1)
    assert b1.targets.shape == (64,) and b1.targets.dtype == np.int32
    assert b1.inputs.dtype == np.float32 and np.all(b1.mask == 1) and np.all(b1.length == T)
    t2 = tasks.arrays(many, loss="cross_entropy", num_classes=5)
    assert (t2.pattern, t2.output_size) == ("many_to_many", 5)
    assert _sample(t2).targets.shape == (64, T)
    # given, not inferred: one value per step as [N, T, 1]
    reg = _save(tmp_path / "reg.npz", inputs=x, targets=rng.standard_normal((N, T, 1)))
    assert tasks.arrays(reg, pattern="many_to_many").pattern == "many_to_many"


def test_the_shipped_example_is_what_its_readme_code_makes():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 21, 256).astype(np.int32)
    x = rng.uniform(-1, 1, (256, 20, 1)).astype(np.float32)
    x[np.arange(20)[None, :] >= lengths[:, None]] = 0
    assert EXAMPLE_PATH.stat().st_size < 50_000
    with np.load(EXAMPLE_PATH, allow_pickle=False) as data:
        np.testing.assert_array_equal(data["inputs"], x)
        np.testing.assert_array_equal(data["lengths"], lengths)
        np.testing.assert_allclose(data["targets"], x.sum(axis=1), rtol=1e-6)
    task = tasks.arrays()
    assert (task.pattern, task.input_size, task.output_size) == ("many_to_one", 1, 1)
    assert task.baseline > 1.0  # the variance of sums of 5 to 20 uniform values


def _bad(tmp_path, name="bad.npz", **arrays):
    return _save(tmp_path / name, **arrays)


X = np.zeros((N, T, F), np.float32)
Y = np.zeros((N, 2), np.float32)
NAN_X = X.copy()
NAN_X[3, 2, 1] = np.nan

BAD_FILES = [
    (dict(targets=Y), {}, r"bad\.npz has no `inputs` array \(it holds \['targets'\]\)"),
    (dict(inputs=X), {}, r"bad\.npz has no `targets` array"),
    (
        dict(inputs=X[0], targets=Y),
        {},
        r"`inputs` has shape \(6, 2\) .*expected a numeric \[N, T, F\]",
    ),
    (
        dict(inputs=NAN_X, targets=Y),
        {},
        r"`inputs` has shape \(10, 6, 2\).*bad\.npz and holds 1 NaN .*index \(3, 2, 1\)",
    ),
    (dict(inputs=X, targets=Y[:7]), {}, r"`targets` has shape \(7, 2\).*inputs has N = 10"),
    (
        dict(inputs=X, targets=Y, lengths=np.full(N, T + 1)),
        {},
        r"`lengths` has shape \(10,\).*lengths\[0\] = 7 is outside \[1, T\] = \[1, 6\]",
    ),
    (
        dict(inputs=X, targets=Y, lengths=np.full(4, 2)),
        {},
        r"`lengths` has shape \(4,\).*\[N\] = \[10\]",
    ),
    (dict(inputs=X, targets=Y, length=np.full(N, 2)), {}, r"holds arrays \['length'\] besides"),
    (
        dict(inputs=X, targets=Y),
        dict(loss="cross_entropy"),
        r"`targets` has shape \(10, 2\) and dtype float32.*expects int class indices \[N, T\]",
    ),
    (
        dict(inputs=X, targets=np.zeros((N, T - 1, 1))),
        dict(pattern="many_to_many"),
        r"`targets` has shape \(10, 5, 1\).*inputs has T = 6",
    ),
    (
        dict(inputs=X, targets=np.full(N, 7)),
        dict(loss="cross_entropy", num_classes=3),
        r"classes up to 7, but num_classes=3",
    ),
    (
        dict(inputs=X, targets=Y),
        dict(loss="hinge"),
        r"`loss` must be one of \['mse', 'cross_entropy'\]",
    ),
    (dict(inputs=X, targets=Y), dict(eval_fraction=0.95), r"holds out 10 of the 10 examples"),
]


@pytest.mark.parametrize(("arrays", "options", "message"), BAD_FILES)
def test_arrays_errors_name_the_array_its_shape_and_the_file(tmp_path, arrays, options, message):
    path = _bad(tmp_path, **arrays)
    with pytest.raises(ValueError, match=message):
        tasks.arrays(path, **options)


def test_arrays_refuses_pickle_and_non_archives(tmp_path):
    objects = tmp_path / "objects.npz"
    np.savez(objects, inputs=np.array([{"a": 1}], dtype=object), targets=Y)
    with pytest.raises(ValueError, match=r"objects\.npz holds an array numpy cannot load without"):
        tasks.arrays(str(objects))
    single = tmp_path / "single.npy"
    np.save(single, X)
    with pytest.raises(ValueError, match=r"single\.npy holds one array of shape \(10, 6, 2\)"):
        tasks.arrays(str(single))
    text = tmp_path / "text.npz"
    text.write_text("not numpy")
    with pytest.raises(ValueError, match=r"text\.npz is not an \.npz archive"):
        tasks.arrays(str(text))


def test_arrays_errors_surface_when_the_config_is_read(tmp_path):
    path = _bad(tmp_path, inputs=NAN_X, targets=Y)
    with pytest.raises(ConfigError, match=r"bad\.npz and holds 1 NaN"):
        config_from_data({"task": {"name": "arrays", "path": path}})
