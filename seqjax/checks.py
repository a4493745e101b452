"""Argument checks shared by every public function: one place for each kind of check.

Each raises ``ValueError`` naming where the value was given (``"unroll"``, ``"fit"``), the
argument, and the value received, so a message reads
``unroll: truncate must be a positive int, got 0``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

__all__ = ["model_inputs", "positive_int", "rate"]


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
