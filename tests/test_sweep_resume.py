"""Sweeps past one run of the command: shards of a grid written into one sweep folder and
merged by ``seqjax report``, and ``seqjax sweep --resume`` finishing an interrupted sweep
without redoing a finished program."""

from __future__ import annotations

import json
import shutil

import jax
import numpy as np
import pytest

from seqjax import cli
from seqjax.experiment.report import is_sweep_dir
from seqjax.experiment.runner import parse_shard
from tests.sweeps import file_hashes, program_names, sweep_cli, tiny_sweep

CONFIG = tiny_sweep("lstm", [2, 3])
PROGRAMS = program_names([2, 3])


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    """A sweep run whole, the same sweep run as two shards (the folder copied after the first
    shard, as an interrupted sweep), and the interrupted copy resumed."""
    tmp = tmp_path_factory.mktemp("sweeps")
    config = tmp / "sweep.yaml"
    config.write_text(json.dumps(CONFIG))
    assert sweep_cli(str(config), "--out", str(tmp / "whole")) == 0
    (whole,) = (tmp / "whole").iterdir()
    sharded = tmp / "sharded"
    assert sweep_cli(str(config), "--shard", "0/2", "--dir", str(sharded)) == 0
    interrupted = tmp / "interrupted"
    shutil.copytree(sharded, interrupted)  # copy2: contents and modification times kept
    assert sweep_cli(str(config), "--shard", "1/2", "--dir", str(sharded)) == 0
    # The second program was killed early, before any summary or checkpoint.
    stale = interrupted / PROGRAMS[1]
    stale.mkdir()
    (stale / "metrics.jsonl").write_text('{"step": 1, "split": "train", "loss": [9.0]}\n')
    before = file_hashes(interrupted / PROGRAMS[0])
    assert sweep_cli("--resume", str(interrupted)) == 0
    return {
        "config": config,
        "whole": whole,
        "sharded": sharded,
        "interrupted": interrupted,
        "before": before,
    }


def test_shards_write_their_programs_and_no_report(sweeps):
    sharded = sweeps["sharded"]
    assert sorted(p.name for p in sharded.iterdir() if p.is_dir()) == PROGRAMS
    for name in PROGRAMS:
        assert (sharded / name / "summary.json").is_file()
    assert not (sharded / "sweep.json").exists() and not (sharded / "report.md").exists()
    assert (sharded / "config.yaml").read_text() == (sweeps["whole"] / "config.yaml").read_text()
    assert is_sweep_dir(sharded) and not is_sweep_dir(sharded / PROGRAMS[0])


def _rows(folder):
    return json.loads((folder / "sweep.json").read_text())


def _assert_samesweep_cli(got, want):
    assert got["keys"] == want["keys"] and got["metric"] == want["metric"]
    assert len(got["rows"]) == len(want["rows"]) == 2
    for row, ref in zip(got["rows"], want["rows"], strict=True):
        assert row.keys() == ref.keys()
        for key, value in ref.items():
            if isinstance(value, list):
                np.testing.assert_allclose(row[key], value, rtol=1e-6)
            else:
                assert row[key] == value


def test_report_merges_the_shards_into_the_sweep_report(sweeps, capsys):
    sharded = sweeps["sharded"]
    capsys.readouterr()
    assert cli.main(["report", str(sharded)]) == 0
    out = capsys.readouterr().out
    merged = _rows(sharded)
    assert merged["missing"] == []
    _assert_samesweep_cli(merged, _rows(sweeps["whole"]))
    assert [r["model.hidden_size"] for r in merged["rows"]] == [2, 3]
    assert (sharded / "plots" / "sweep.png").stat().st_size > 0
    assert (sharded / "report.md").read_text().count("| [0") == 2
    assert "not finished" not in out


def test_report_of_a_partial_sweep_names_the_missing_programs(sweeps, tmp_path, capsys):
    partial = tmp_path / "partial"
    shutil.copytree(sweeps["sharded"], partial)
    shutil.rmtree(partial / PROGRAMS[1] / "checkpoints", ignore_errors=True)
    (partial / PROGRAMS[1] / "summary.json").unlink()
    capsys.readouterr()
    assert cli.main(["report", str(partial)]) == 0
    out = capsys.readouterr().out
    data = _rows(partial)
    assert data["missing"] == [PROGRAMS[1]]
    assert [r["folder"] for r in data["rows"]] == [PROGRAMS[0]]
    assert f"not finished (1): {PROGRAMS[1]}" in out
    assert PROGRAMS[1] in (partial / "report.md").read_text()


def test_resume_keeps_finished_programs_and_finishes_the_rest(sweeps):
    interrupted = sweeps["interrupted"]
    # The finished program was not touched: same files, same contents, same times.
    assert file_hashes(interrupted / PROGRAMS[0]) == sweeps["before"]
    # The stale one was trained again from step 0: its log holds no line of the old one.
    lines = (interrupted / PROGRAMS[1] / "metrics.jsonl").read_text().splitlines()
    assert lines and all(json.loads(line)["loss"] != [9.0] for line in lines)
    summary = json.loads((interrupted / PROGRAMS[1] / "summary.json").read_text())
    assert summary["steps"] == CONFIG["train"]["steps"] and summary["hidden_size"] == 3
    _assert_samesweep_cli(_rows(interrupted), _rows(sweeps["whole"]))
    assert not any(p.name.startswith(".") for p in interrupted.iterdir())


def test_resuming_a_finished_sweep_trains_nothing(sweeps, capsys):
    whole = sweeps["whole"]
    before = {name: file_hashes(whole / name) for name in PROGRAMS}
    assert sweep_cli("--resume", str(whole)) == 0
    assert {name: file_hashes(whole / name) for name in PROGRAMS} == before
    assert "results:" in capsys.readouterr().out


def test_resume_with_another_config_is_an_error_naming_the_folder(sweeps, tmp_path, capsys):
    whole = sweeps["whole"]
    other = tmp_path / "other.yaml"
    other.write_text(json.dumps({**CONFIG, "sweep": {"model.hidden_size": [2, 4]}}))
    before = file_hashes(whole)
    assert sweep_cli(str(other), "--resume", str(whole)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(whole) in err and "config" in err
    assert sweep_cli(str(other), "--shard", "0/2", "--dir", str(whole)) == 2
    assert str(whole) in capsys.readouterr().err
    assert file_hashes(whole) == before
    assert sweep_cli("--resume", str(tmp_path)) == 2  # no config.yaml: not a sweep folder
    assert "not a sweep folder" in capsys.readouterr().err


@pytest.mark.parametrize("shard", ["3/2", "-1/2", "a/b", "0/0", "2/2", "1"])
def test_bad_shards_are_one_line_usage_errors(sweeps, shard, tmp_path, capsys):
    # --shard=VALUE: argparse would take a separate "-1/2" for a flag
    code = sweep_cli(str(sweeps["config"]), f"--shard={shard}", "--dir", str(tmp_path / "s"))
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--shard" in err and repr(shard) in err
    assert not (tmp_path / "s").exists()


def test_a_shard_needs_the_sweep_folder(sweeps, tmp_path, capsys):
    code = sweep_cli(str(sweeps["config"]), "--shard", "0/2", "--out", str(tmp_path))
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--dir" in err and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_parse_shard():
    assert parse_shard("0/1") == (0, 1) and parse_shard(" 3 / 8 ") == (3, 8)
    for text in ("1/1", "0/-2", "0/2/3", "", "0.5/2"):
        with pytest.raises(ValueError, match="shard"):
            parse_shard(text)


def test_resume_continues_a_program_from_its_checkpoint(tmp_path):
    from seqjax.experiment import dump_config, load_config, run
    from seqjax.experiment.report import program_folders

    config = tmp_path / "ckpt.yaml"
    steps = {**CONFIG["train"], "steps": 2, "chunk_size": 1, "checkpoint": {"every": 1, "keep": 2}}
    config.write_text(json.dumps({**CONFIG, "train": steps}))
    cfg = load_config(config)
    root = tmp_path / "sweep"
    root.mkdir()
    (root / "config.yaml").write_text(dump_config(cfg))
    _, program, where = program_folders(cfg, root)[0]
    with jax.numpy_dtype_promotion("standard"):  # killed after step 1 of 2: one checkpoint
        run(program, overrides=["train.steps=1"], run_dir=where, progress=False)
    assert sweep_cli("--resume", str(root), "--shard", "0/2") == 0
    summary = json.loads((where / "summary.json").read_text())
    assert summary["resumed_from"] == 1 and summary["steps"] == 2
    train = [
        json.loads(line)["step"]
        for line in (where / "metrics.jsonl").read_text().splitlines()
        if json.loads(line)["split"] == "train"
    ]
    assert train == [1, 2]
    assert not (root / PROGRAMS[1]).exists() and not (root / "sweep.json").exists()
