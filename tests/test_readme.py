"""The README's API example runs as written and computes what its comments say."""

import re
from pathlib import Path

import jax

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_example_runs():
    code = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)[0]
    namespace: dict = {}
    with jax.numpy_rank_promotion("allow"):
        exec(compile(code, str(README), "exec"), namespace)
    assert namespace["params"]["w_i"].shape == (3, 256)
    assert namespace["hs"].shape == (100, 64)
    assert namespace["preds"].shape == (32, 1)


def test_readme_gives_the_two_commands():
    text = README.read_text()
    assert "make run" in text and "make test" in text
