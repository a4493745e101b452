"""The README's API example runs as written (its one config run shrunk) and computes what its
comments say."""

import re
from pathlib import Path

import jax

README = Path(__file__).resolve().parent.parent / "README.md"
ROOT = README.parent
TINY = [
    "train.steps=2",
    "train.chunk_size=1",
    "train.batch_size=2",
    "train.eval_every=null",
    "seeds=[0, 1]",
    "log.eval_batch_size=2",
    "log.eval_batches=1",
    "log.progress=false",
]


def test_readme_python_example_runs(monkeypatch):
    code = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)[0]
    assert 'overrides=["train.steps=500"]' in code
    code = code.replace('overrides=["train.steps=500"]', f"overrides={TINY!r}")
    monkeypatch.chdir(ROOT)  # the example names configs/ relative to the checkout
    namespace: dict = {}
    with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"):
        exec(compile(code, str(README), "exec"), namespace)
    assert namespace["params"]["w_i"].shape == (3, 256)  # LSTM, H=64: four gates
    assert namespace["hs"].shape == (100, 64)
    assert namespace["metrics"]["loss"].shape == (500,)
    result = namespace["result"]
    assert result.run_dir is None and result.metrics["loss"].shape == (2, 2)


def test_readme_gives_the_two_commands():
    text = README.read_text()
    assert "make run" in text and "make test" in text
