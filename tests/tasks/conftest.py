"""Task-test fixtures: every test with a ``case_id`` argument runs on every case of
`task_cases.CASES`; ``draw`` gives a case's cached task and batch."""

from __future__ import annotations

import pytest
from task_cases import CASES, case_batch, case_task


def pytest_generate_tests(metafunc):
    if "case_id" in metafunc.fixturenames:
        metafunc.parametrize("case_id", list(CASES))


@pytest.fixture
def draw():
    """``draw(case_id, seed=0) -> (task, Batch of NumPy arrays)``."""

    def _draw(case_id: str, seed: int = 0):
        return case_task(case_id)[0], case_batch(case_id, seed)

    return _draw
