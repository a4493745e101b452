"""What a run logs: TensorBoard events per run and their median, W&B, the per-chunk record
(mean and max gradient norm, learning rate, clipped fraction), progress lines, compilation
time apart, provenance."""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import os
import socket
import struct
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import seqjax
from seqjax.experiment.runner import CompileClock
from seqjax.experiment.runs import git_commit, read_metrics, run_labels, write_atomic

ROOT = Path(__file__).resolve().parent.parent
PEAKS = (1e-2, 3e-2)
# Two runs (a traced sweep of the learning rate), an exponential schedule, a clipping
# threshold low enough to clip, evaluation every other chunk.
CONFIG = {
    "name": "logged",
    "seeds": [0],
    "task": {"name": "adding", "length": 8},
    "model": {"cell": "rnn", "hidden_size": 4},
    "optimizer": {
        "name": "adam",
        "learning_rate": 1e-2,
        "clip": {"method": "global_norm", "threshold": 5.0},
        "schedule": {"name": "exponential", "transition_steps": 2, "decay_rate": 0.5},
    },
    "sweep": {"optimizer.learning_rate": list(PEAKS)},
    "train": {"steps": 12, "batch_size": 4, "chunk_size": 3, "eval_every": 6},
    "log": {"eval_batch_size": 4, "eval_batches": 1, "plots": False},
}


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """The run of CONFIG into a folder, with what it printed on a stderr that is no terminal."""
    stderr = io.StringIO()
    with jax.numpy_dtype_promotion("standard"), contextlib.redirect_stderr(stderr):
        result = seqjax.run(
            CONFIG, overrides=["train.steps=12"], out=tmp_path_factory.mktemp("runs")
        )
    return result, stderr.getvalue()


def read_events(folder: Path) -> dict[str, dict[int, float]]:
    """``{tag: {step: value}}`` of a folder's TensorBoard event files, read as TensorBoard
    does: a purge marker (``SessionLog.START`` at step s) drops the steps >= s read before it.
    Fails on a (tag, step) logged twice without a purge between."""
    from tensorboardX.proto import event_pb2

    scalars: dict[str, dict[int, float]] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data, i = path.read_bytes(), 0
        while i < len(data):  # TFRecord: length u64, crc u32, payload, crc u32
            (n,) = struct.unpack("<Q", data[i : i + 8])
            event = event_pb2.Event.FromString(data[i + 12 : i + 12 + n])
            i += 12 + n + 4
            if event.HasField("session_log") and event.session_log.status == 1:  # START
                for values in scalars.values():
                    for step in [s for s in values if s >= event.step]:
                        del values[step]
            for value in event.summary.value:
                steps = scalars.setdefault(value.tag, {})
                assert event.step not in steps, f"{folder}: {value.tag} twice at {event.step}"
                steps[event.step] = value.simple_value
    return scalars


def expected_events(records: list[dict], run: int | None) -> dict[str, dict[int, float]]:
    """The TensorBoard series that metrics.jsonl implies for one run (None: the median)."""
    out: dict[str, dict[int, float]] = {}
    for r in records:
        for key, value in r.items():
            if key in ("step", "split"):
                continue
            if r["split"] == "eval" or key.startswith("val_"):
                tag = f"eval/{key.removeprefix('val_')}"
            else:
                tag = f"train/{key}"
            value = np.median(value) if run is None else value[run]
            out.setdefault(tag, {})[r["step"]] = float(value)
    return out


def test_tensorboard_has_a_series_per_run_and_their_median(logged):
    result, _ = logged
    records = read_metrics(result.run_dir)
    labels = [f"learning_rate={p}-seed=0" for p in PEAKS]
    folder = result.run_dir / "tensorboard"
    assert sorted(p.name for p in folder.iterdir()) == sorted([*labels, "median"])
    for run, name in [(0, labels[0]), (1, labels[1]), (None, "median")]:
        got, want = read_events(folder / name), expected_events(records, run)
        assert sorted(got) == sorted(want)
        for tag in want:
            assert sorted(got[tag]) == sorted(want[tag]), tag
            np.testing.assert_allclose(
                [got[tag][s] for s in sorted(got[tag])],
                [want[tag][s] for s in sorted(want[tag])],
                rtol=1e-6,  # TensorBoard keeps float32
                err_msg=f"{name} {tag}",
            )
    assert {"train/grad_norm_max", "train/learning_rate", "train/clipped", "eval/loss"} <= set(
        read_events(folder / "median")
    )


def test_each_record_has_the_chunk_mean_and_max_gradient_norm_and_clipped_fraction(logged):
    result, _ = logged
    train = [r for r in read_metrics(result.run_dir) if r["split"] == "train"]
    chunks = lambda name: result.metrics[name].reshape(2, 4, 3)  # noqa: E731 [runs, chunk, 3]
    assert [r["step"] for r in train] == [3, 6, 9, 12]
    np.testing.assert_allclose([r["grad_norm_max"] for r in train], chunks("grad_norm").max(-1).T)
    np.testing.assert_allclose(
        [r["grad_norm"] for r in train], chunks("grad_norm").mean(-1).T, rtol=1e-6
    )
    np.testing.assert_allclose([r["clipped"] for r in train], chunks("clipped").mean(-1).T)
    assert 0 < np.mean([r["clipped"] for r in train]) < 1  # the test sees both cases


def test_learning_rate_is_each_runs_schedule_at_its_last_update(logged):
    result, _ = logged
    train = [r for r in read_metrics(result.run_dir) if r["split"] == "train"]
    assert np.all(result.metrics["skipped"] == 0)
    for r in train:  # exponential decay: peak * 0.5 ** (count / 2) at count = step - 1
        want = [p * 0.5 ** ((r["step"] - 1) / 2) for p in PEAKS]
        np.testing.assert_allclose(r["learning_rate"], want, rtol=1e-6)


def test_plain_progress_is_one_line_per_logged_chunk_with_the_median_and_range(logged):
    result, stderr = logged
    assert "\r" not in stderr
    lines = stderr.strip().splitlines()
    train = [r for r in read_metrics(result.run_dir) if r["split"] == "train"]
    assert len(lines) == len(train) == 4
    for line, r in zip(lines, train, strict=True):
        loss = r["loss"]
        assert line.startswith(f"logged: step {r['step']}/12 | ")
        assert f"loss {np.median(loss):.4f} [{min(loss):.4f}, {max(loss):.4f}]" in line
        assert "steps/s | ETA " in line


def test_summary_keeps_compilation_apart(logged):
    result, _ = logged
    s = result.summary
    assert 0 < s["compile_time_s"] < s["wall_time_s"]
    assert s["steps_per_s"] == pytest.approx(12 / (s["wall_time_s"] - s["compile_time_s"]))


def test_summary_records_provenance(logged):
    result, _ = logged
    p = json.loads((result.run_dir / "summary.json").read_text())["provenance"]
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    assert p["git_commit"] == (head or None)  # the working directory's repository
    assert p["command"] is None  # run from Python
    assert p["overrides"] == ["train.steps=12"]
    assert p["host"] == socket.gethostname()
    assert p["seqjax"] == seqjax_version()
    assert p["device"].endswith(jax.devices()[0].device_kind)
    started, finished = (datetime.datetime.fromisoformat(p[k]) for k in ("started", "finished"))
    assert started.utcoffset() == datetime.timedelta(0) and started <= finished


def seqjax_version() -> str:
    import importlib.metadata

    return importlib.metadata.version("seqjax")


def test_git_commit_is_none_outside_a_repository(tmp_path):
    assert git_commit(tmp_path) is None
    assert git_commit(tmp_path / "missing" / "config.yaml") is None


def test_atomic_writes_get_the_permissions_open_would_give(tmp_path):
    # New files: 0o666 less the umask (not the private mode of the temporary file); an
    # existing file keeps its own mode.
    old = os.umask(0o027)
    try:
        write_atomic(tmp_path / "new.json", "{}")
        assert (tmp_path / "new.json").stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old)
    kept = tmp_path / "kept.txt"
    kept.write_text("old")
    kept.chmod(0o604)
    write_atomic(kept, b"new")
    assert kept.read_text() == "new" and kept.stat().st_mode & 0o777 == 0o604
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_run_labels_are_grid_major_like_the_runs():
    assert run_labels([0, 1], [{}]) == ["seed=0", "seed=1"]
    cells = [{"optimizer.learning_rate": 0.1}, {"optimizer.learning_rate": 1.0}]
    assert run_labels([3], cells) == ["learning_rate=0.1-seed=3", "learning_rate=1.0-seed=3"]


def test_compile_clock_counts_nested_spans_once_and_a_cache_hit_not_at_all():
    clock = CompileClock()
    clock.spans = [(0.0, 2.0), (1.0, 3.0), (1.5, 1.7), (5.0, 6.0)]
    assert clock.seconds() == pytest.approx(4.0)

    f = jax.jit(lambda x: jnp.tanh(x) * 2.0)
    with CompileClock() as first:
        f(jnp.ones(3)).block_until_ready()
    with CompileClock() as second:
        f(jnp.ones(3)).block_until_ready()
    assert first.seconds() > 0 and second.seconds() == 0.0
    spans = len(first.spans)
    jax.jit(lambda x: x + 1.0)(jnp.ones(2)).block_until_ready()
    assert len(first.spans) == spans  # a closed clock no longer listens


def small(**log) -> dict:
    """A one-run config that trains in two chunks."""
    cfg = json.loads(json.dumps(CONFIG))
    cfg.pop("sweep")
    cfg["train"] = {"steps": 4, "batch_size": 4, "chunk_size": 2}
    cfg["log"].update(log)
    return cfg


def test_wandb_without_wandb_installed_is_an_error_before_anything_is_written(
    tmp_path, monkeypatch
):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    with pytest.raises(ValueError, match=r"log\.wandb .*pip install 'seqjax\[wandb\]'"):
        seqjax.run(small(wandb={"project": "p"}), out=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_wandb_offline_gets_every_record_and_tensorboard_can_be_off(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    logged = []
    log = wandb.sdk.wandb_run.Run.log

    def spy(self, data, step=None, **kwargs):
        logged.append((step, dict(data)))
        return log(self, data, step=step, **kwargs)

    monkeypatch.setattr(wandb.sdk.wandb_run.Run, "log", spy)
    cfg = small(tensorboard=False, wandb={"project": "seqjax-tests", "mode": "offline"})
    cfg["seeds"] = [0, 1]
    with jax.numpy_dtype_promotion("standard"):
        result = seqjax.run(cfg, out=tmp_path, progress=False)
    wandb.teardown()
    assert not (result.run_dir / "tensorboard").exists()
    records = read_metrics(result.run_dir)
    assert [step for step, _ in logged] == [r["step"] for r in records]
    for (_, data), r in zip(logged, records, strict=True):
        want = expected_events([r], 0)
        for tag, values in want.items():
            assert data[f"{tag}/seed=0"] == pytest.approx(values[r["step"]])
        median = expected_events([r], None)
        assert data[f"{r['split']}/loss/median"] == pytest.approx(
            median[f"{r['split']}/loss"][r["step"]]
        )
    (offline,) = (result.run_dir / "wandb").glob("offline-run-*")
    (history,) = offline.glob("run-*.wandb")
    assert b"train/grad_norm_max/seed=1" in history.read_bytes()
