"""Walking a jaxpr in tests: every equation, those of sub-jaxprs (scan bodies, remat, ...) too."""

from __future__ import annotations

from collections.abc import Iterator

import jax.extend


def all_eqns(jaxpr) -> Iterator:
    """Every equation of ``jaxpr`` (a ``Jaxpr``), depth first, nested jaxprs included."""
    for eqn in jaxpr.eqns:
        yield eqn
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            yield from all_eqns(sub)
