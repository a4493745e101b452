"""Your own arrays as a task: an ``.npz`` file of inputs, targets and optional lengths.

::

    np.savez("data.npz", inputs=x, targets=y, lengths=n)   # x [N, T, F], y see below, n [N]
    task = seqjax.tasks.arrays("data.npz", loss="mse")     # or in a config:
    # task: {name: arrays, path: data.npz, loss: mse}

The file is read once, with ``allow_pickle=False``, and checked when the task is built (before
anything compiles): every mismatch is a ``ValueError`` naming the array, its shape and the file.
The last ``eval_fraction`` of the examples (in file order: shuffle before saving if the order
means something) are held out for evaluation (``Task.sample_eval``); training samples the rest,
uniformly with replacement.
"""

from __future__ import annotations

import math
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from seqjax.checks import check_float
from seqjax.tasks.base import LOSSES, Batch, Task, make_sampler
from seqjax.tasks.text import unigram_entropy

__all__ = ["ARRAYS", "EXAMPLE_PATH", "arrays"]

ARRAYS = ("inputs", "targets", "lengths")
"""The arrays an ``.npz`` of the `arrays` task may hold; ``lengths`` is optional."""

EXAMPLE_PATH = pathlib.Path(__file__).resolve().parent.parent / "data" / "running_sum.npz"
"""The example file `arrays` reads without a ``path``."""


def _load(path: str, where: str) -> dict[str, np.ndarray]:
    file = pathlib.Path(path).expanduser()
    if not file.is_file():
        raise ValueError(
            f"{where}: `path`={path!r} is not a file (resolved to {file.resolve()}); a relative "
            f"path is read from the working directory {pathlib.Path.cwd()}."
        )
    try:
        data = np.load(file, allow_pickle=False)
    except (OSError, EOFError, ValueError) as e:
        raise ValueError(
            f"{where}: {file} is not an .npz archive of numeric arrays (numpy: {e}); save one "
            f"with np.savez(path, inputs=x, targets=y[, lengths=n])"
        ) from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(
            f"{where}: {file} holds one array of shape {np.shape(data)}, not an .npz archive; "
            f"save one with np.savez(path, inputs=x, targets=y[, lengths=n])"
        )
    with data:
        unknown = sorted(set(data.files) - set(ARRAYS))
        if unknown:
            raise ValueError(
                f"{where}: {file} holds arrays {unknown} besides {list(ARRAYS)}; expected only "
                f"inputs, targets and (optional) lengths, save it with those names"
            )
        try:
            return {name: data[name] for name in data.files}
        except ValueError as e:  # an object array, which would need pickle
            raise ValueError(
                f"{where}: {file} holds an array numpy cannot load without pickle ({e}); save "
                f"numeric arrays only (e.g. np.asarray(x, np.float32))"
            ) from None


def _describe(name: str, a: np.ndarray) -> str:
    return f"`{name}` has shape {a.shape} and dtype {a.dtype}"


def _infer_pattern(targets: np.ndarray, loss: str) -> str:
    """many_to_many for ``[N, T]`` classes or ``[N, T, D]`` values, else many_to_one."""
    return (
        "many_to_many" if targets.ndim == (2 if loss == "cross_entropy" else 3) else "many_to_one"
    )


def arrays(
    path: str | None = None,
    loss: str = "mse",
    pattern: str | None = None,
    num_classes: int | None = None,
    eval_fraction: float = 0.1,
) -> Task:
    """A task over the examples of an ``.npz`` file.

    Arrays of the file (any others are an error):

    * ``inputs``: ``[N, T, F]`` float (or int, cast to float32), finite;
    * ``targets``: with ``loss="mse"``, ``[N, D]`` (many_to_one) or ``[N, T, D]``
      (many_to_many), finite floats; with ``loss="cross_entropy"``, int classes ``[N]``
      (many_to_one) or ``[N, T]`` (many_to_many) in ``[0, num_classes)``;
    * ``lengths`` (optional): ``[N]`` ints in ``[1, T]``, the valid steps of each example;
      without it every example has T. Inputs past an example's length are set to zero, and
      many_to_many targets there do not count (the mask).

    The pattern is inferred from the targets' rank and the loss (the list above) unless given;
    an ``[N, T]`` float target with ``loss="mse"`` is read as many_to_one with ``D = T``, so
    pass ``pattern="many_to_many"`` with ``[N, T, 1]`` targets for one value per step.

    Baseline: a trivial predictor, the mean target (``mse``: the variance of the training
    targets) or the class frequencies (``cross_entropy``: their entropy in nats), over the
    positions that count.

    Args:
      path: the ``.npz`` file (``np.savez``); a relative path is read from the working
        directory. Loaded with ``allow_pickle=False``. None: the shipped example
        ``seqjax/data/running_sum.npz`` (`EXAMPLE_PATH`): 256 sequences of 5 to 20 values
        in [-1, 1], ``inputs [256, 20, 1]``, ``lengths``, and their sums as ``targets
        [256, 1]`` (see ``seqjax/data/README.md``).
      loss: ``"mse"`` or ``"cross_entropy"``.
      pattern: ``"many_to_one"`` or ``"many_to_many"``; None infers it.
      num_classes: for ``cross_entropy``, the number of classes; None: the largest target + 1.
      eval_fraction: the share of examples, taken from the end of the file, held out for
        evaluation, in ``[0, 1)``; 0 evaluates on the training examples.

    Returns:
      A `Task` named ``"arrays"``: inputs ``[B, T, F]`` float32.
    """
    where = "arrays"
    if path is None:
        path = str(EXAMPLE_PATH)
    if not isinstance(path, str | pathlib.Path):
        raise TypeError(f"{where}: `path` must be a str, got {path!r} of type {type(path)}.")
    if loss not in LOSSES:
        raise ValueError(f"{where}: `loss` must be one of {list(LOSSES)}, got {loss!r}.")
    patterns = ("many_to_one", "many_to_many")
    if pattern is not None and pattern not in patterns:
        raise ValueError(
            f"{where}: `pattern` must be one of {list(patterns)} or None (inferred), got "
            f"{pattern!r}."
        )
    eval_fraction = check_float(where, "eval_fraction", eval_fraction, 0.0, 1.0, high_open=True)
    data = _load(str(path), where)
    file = str(path)
    for name in ("inputs", "targets"):
        if name not in data:
            raise ValueError(
                f"{where}: {file} has no `{name}` array (it holds {sorted(data)}); save it with "
                f"np.savez(path, inputs=x, targets=y[, lengths=n])"
            )

    x = data["inputs"]
    if x.ndim != 3 or not (
        np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)
    ):
        raise ValueError(
            f"{where}: {_describe('inputs', x)} in {file}; expected a numeric [N, T, F] array"
        )
    n, num_steps, _ = x.shape
    if n < 1 or num_steps < 1 or x.shape[2] < 1:
        raise ValueError(f"{where}: {_describe('inputs', x)} in {file}; expected N, T, F >= 1")
    bad = ~np.isfinite(x)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{where}: {_describe('inputs', x)} in {file} and holds {int(bad.sum())} NaN or "
            f"infinite values (the first at index {first}); clean or drop those examples"
        )

    lengths = data.get("lengths")
    if lengths is None:
        lengths = np.full((n,), num_steps, np.int32)
    elif lengths.shape != (n,) or not np.issubdtype(lengths.dtype, np.integer):
        raise ValueError(
            f"{where}: {_describe('lengths', lengths)} in {file}; expected [N] = [{n}] ints "
            f"(N from inputs {x.shape})"
        )
    elif lengths.min() < 1 or lengths.max() > num_steps:
        i = int(np.argmax((lengths < 1) | (lengths > num_steps)))
        raise ValueError(
            f"{where}: {_describe('lengths', lengths)} in {file} and lengths[{i}] = "
            f"{int(lengths[i])} is outside [1, T] = [1, {num_steps}] (T from inputs {x.shape})"
        )

    y = data["targets"]
    if y.shape[:1] != (n,):
        raise ValueError(
            f"{where}: {_describe('targets', y)} in {file}, but inputs has N = {n} examples "
            f"({x.shape}); the first axis of every array is the example"
        )
    if pattern is None:
        pattern = _infer_pattern(y, loss)
    many = pattern == "many_to_many"
    if loss == "cross_entropy":
        want_rank, want = (2, f"[N, T] = [{n}, {num_steps}]") if many else (1, f"[N] = [{n}]")
        if not np.issubdtype(y.dtype, np.integer) or y.ndim != want_rank:
            raise ValueError(
                f"{where}: {_describe('targets', y)} in {file}; loss='cross_entropy' with "
                f"pattern {pattern!r} expects int class indices {want}"
            )
    else:
        want_rank, want = (3, f"[N, T, D] = [{n}, {num_steps}, D]") if many else (2, f"[{n}, D]")
        if not np.issubdtype(y.dtype, np.number) or y.ndim != want_rank:
            raise ValueError(
                f"{where}: {_describe('targets', y)} in {file}; loss='mse' with pattern "
                f"{pattern!r} expects numeric targets {want}"
            )
        if not np.isfinite(y).all():
            raise ValueError(f"{where}: {_describe('targets', y)} in {file} and holds NaN or inf")
    if many and y.shape[1] != num_steps:
        raise ValueError(
            f"{where}: {_describe('targets', y)} in {file}, but inputs has T = {num_steps} "
            f"steps ({x.shape}); many_to_many targets have one entry per input step"
        )

    steps_valid = np.arange(num_steps)[None, :] < lengths[:, None]  # [N, T]
    mask = steps_valid.astype(np.float32) if many else np.ones((n,), np.float32)
    if loss == "cross_entropy":
        counted = y[steps_valid] if many else y
        if counted.min() < 0:
            raise ValueError(f"{where}: {_describe('targets', y)} in {file} has negative classes")
        top = int(counted.max())
        if num_classes is None:
            num_classes = top + 1
        elif (
            isinstance(num_classes, bool) or not isinstance(num_classes, int) or top >= num_classes
        ):
            raise ValueError(
                f"{where}: {_describe('targets', y)} in {file} has classes up to {top}, but "
                f"num_classes={num_classes!r}; pass an int above {top} or None"
            )
        output_size = num_classes
        y = y.astype(np.int32)
    else:
        output_size = int(y.shape[-1])
        y = y.astype(np.float32)

    n_eval = math.ceil(n * eval_fraction) if eval_fraction > 0 else 0
    if n_eval >= n:
        raise ValueError(
            f"{where}: eval_fraction={eval_fraction} holds out {n_eval} of the {n} examples of "
            f"{file} (inputs {x.shape}), leaving none to train on; lower it or add examples"
        )
    n_train = n - n_eval
    x = np.where(steps_valid[:, :, None], x, 0).astype(np.float32)
    arrays_np = (x, y, mask, lengths.astype(np.int32))
    train = tuple(a[:n_train] for a in arrays_np)
    held_out = tuple(a[n_train:] for a in arrays_np)

    task = Task(
        name=where,
        sample=make_sampler(where, _examples(train)),
        input_size=int(x.shape[2]),
        output_size=output_size,
        pattern=pattern,
        loss=loss,
        metric="accuracy" if loss == "cross_entropy" else "mse",
        baseline=_baseline(loss, train[1], train[2], output_size),
    )
    if n_eval:
        task = task._replace(sample_eval=make_sampler(f"{where}_eval", _examples(held_out)))
    return task


def _examples(part: tuple[np.ndarray, ...]) -> Any:
    """``example(key) -> Batch``: one example of ``part``, uniformly at random."""
    inputs, targets, mask, lengths = (jnp.asarray(a) for a in part)
    num = inputs.shape[0]

    def example(key: jax.Array) -> Batch:
        i = jax.random.randint(key, (), 0, num, dtype=jnp.int32)
        return Batch(inputs[i], targets[i], mask[i], lengths[i])

    return example


def _baseline(loss: str, targets: np.ndarray, mask: np.ndarray, output_size: int) -> float:
    """The loss of the mean target (mse) or of the class frequencies (cross-entropy)."""
    values = targets[mask > 0]  # [K] classes or [K, D] values, the positions that count
    if loss == "cross_entropy":
        return unigram_entropy(values, output_size)
    values = values.reshape(-1, output_size).astype(np.float64)
    return float(np.mean((values - values.mean(axis=0)) ** 2))
