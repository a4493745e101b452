"""The restructured experiment layer computes what it computed before, bit for bit.

`tests/golden/golden.npz` holds the final params and every logged metric of eight tiny runs
(one seed, seeds, seed groups, a sweep with a traced learning rate, data parallel over two
simulated CPU devices, truncated and streaming BPTT, dropout). The check runs in a fresh
interpreter, which needs the two devices before JAX starts.
"""

import os
import subprocess
import sys
from pathlib import Path

GOLDEN = Path(__file__).resolve().parent / "golden" / "golden.py"


def test_tiny_runs_equal_their_golden_outputs_bit_for_bit():
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    proc = subprocess.run(
        [sys.executable, str(GOLDEN), "--check"],
        env={**env, "JAX_PLATFORMS": "cpu"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "0 differ" in proc.stdout
