"""Argument checks shared by every public function: one place for each kind of check.

Each raises ``ValueError`` (``TypeError`` for a value of the wrong kind) naming where the value
was given (``"unroll"``, ``"fit"``, ``"adding"``), the argument, and the value received, so a
message reads ``unroll: truncate must be a positive int, got 0``. The task factories use
`check_int`, `check_float` and `check_bool`, which also convert NumPy scalars.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["check_bool", "check_float", "check_int", "model_inputs", "positive_int", "rate"]


def positive_int(value: Any, name: str, where: str, *, extra: str = "") -> int:
    """Returns ``value`` if it is an int >= 1 (not a bool); raises otherwise.

    Args:
      value: the value to check.
      name: the argument's name, as the caller spells it.
      where: the function or config section it was given to.
      extra: words added after "a positive int" (e.g. ``" or 'auto'"``).
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{where}: {name} must be a positive int{extra}, got {value!r}")
    return value


def rate(value: Any, name: str, where: str, *, traced: bool = True) -> None:
    """Checks a dropout-like probability in [0, 1): a Python number, or (``traced=True``) a
    float scalar array, whose range the caller checks (a traced value cannot be compared in
    Python; a swept rate is one, see `seqjax.sweep`).

    Args:
      value: the rate.
      name: the argument's name, as the caller spells it.
      where: the function it was given to.
      traced: whether a float scalar array is accepted.
    """
    if traced and isinstance(value, jax.Array):
        if value.shape != () or not jnp.issubdtype(value.dtype, jnp.floating):
            raise ValueError(
                f"{where}: {name} must be a probability in [0, 1) or a float scalar array, got "
                f"an array of shape {value.shape} and dtype {value.dtype}"
            )
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        kind = "a probability in [0, 1)" if traced else "a Python probability in [0, 1)"
        raise ValueError(f"{where}: {name} must be {kind}, got {value!r}")


def model_inputs(inputs: Any, input_size: int, where: str, arg: str = "inputs") -> jax.Array:
    """``inputs`` as an array if it is one sequence ``[T, input_size]`` for a model's ``apply``;
    raises otherwise (with the vmap hint for a batch ``[B, T, F]``).

    Args:
      inputs: the array received.
      input_size: F, fixed when the model was built.
      where: the model's name, for the message.
      arg: the argument's name (``"inputs"``, ``"src"``).
    """
    inputs = jnp.asarray(inputs)
    if inputs.ndim != 2 or inputs.shape[-1] != input_size:
        hint = (
            " For a batch use jax.vmap(model.apply, in_axes=(None, 0, 0))."
            if inputs.ndim == 3
            else ""
        )
        raise ValueError(
            f"{where}: {arg} has shape {inputs.shape}, expected one sequence [T, {input_size}] "
            f"(input_size={input_size} was fixed when the model was built).{hint}"
        )
    return inputs


def check_int(where: str, name: str, value: object, minimum: int, hint: str = "") -> int:
    """Returns ``value`` as an int, or raises naming the argument, the value and the bound."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(
            f"{where}: `{name}` must be an int, got {value!r} of type {type(value).__name__}."
            + (f" {hint}" if hint else "")
        )
    if value < minimum:
        raise ValueError(
            f"{where}: `{name}` must be an int >= {minimum}, got {value}."
            + (f" {hint}" if hint else "")
        )
    return int(value)


def check_float(
    where: str,
    name: str,
    value: object,
    low: float,
    high: float,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Returns ``value`` as a float in the interval, or raises naming the argument and bounds."""
    interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(
            f"{where}: `{name}` must be a number in {interval}, got {value!r} of type "
            f"{type(value).__name__}."
        )
    v = float(value)
    ok = math.isfinite(v) or (v == high == math.inf and not high_open)
    ok = ok and (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not ok:
        raise ValueError(f"{where}: `{name}` must be in {interval}, got {value}.")
    return v


def check_bool(where: str, name: str, value: object) -> bool:
    """Returns ``value`` if it is a bool, or raises a TypeError naming the argument."""
    if not isinstance(value, bool):
        raise TypeError(
            f"{where}: `{name}` must be True or False, got {value!r} of type "
            f"{type(value).__name__}."
        )
    return value
