"""Typed configs: defaults, dotted-path errors for unknown keys, wrong types and bad values."""

import dataclasses

import pytest
from pydantic import TypeAdapter

from seqjax.experiment import config as C
from seqjax.train import CLIPPINGS, OPTIMIZERS, SCHEDULES


@pytest.mark.parametrize(
    ("data", "key", "fragment"),
    [
        ({"learning_rate": -0.1}, "optimizer.learning_rate", "greater than 0"),
        ({"learning_rate": "0.1"}, "optimizer.learning_rate", "valid number"),
        ({"name": "adma"}, "optimizer.name", "registered: ['adam', 'adamw', 'momentum'"),
        ({"lr": 0.1}, "optimizer.lr", "unknown key; valid keys: ['name', 'learning_rate'"),
        ({"clip": {"method": "norm"}}, "optimizer.clip.method", "'global_norm'"),
        ({"clip": {"threshold": 0}}, "optimizer.clip.threshold", "greater than 0"),
        ({"b2": 1.0}, "optimizer.b2", "less than 1"),
        ({"weight_decay": -1e-4}, "optimizer.weight_decay", "greater than or equal to 0"),
        (
            {"schedule": {"name": "warmup_cosine", "warmup_steps": 100, "decay_steps": 50}},
            "optimizer.schedule.decay_steps",
            "must exceed warmup_steps=100",
        ),
        (
            {"schedule": {"name": "exponential", "decay_rate": 0}},
            "optimizer.schedule.decay_rate",
            "",
        ),
    ],
)
def test_optimizer_config_errors_name_the_dotted_key(data, key, fragment):
    with pytest.raises(C.ConfigError) as info:
        C.parse_config(C.OptimizerConfig, data, path="optimizer")
    assert [k for k, _ in info.value.errors] == [key]
    assert key in str(info.value) and fragment in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("data", "key", "fragment"),
    [
        ({"steps": 0}, "train.steps", "greater than or equal to 1"),
        ({"steps": 10.0}, "train.steps", "valid integer"),
        ({"steps": True}, "train.steps", "valid integer"),
        ({"bptt": {"mode": "truncated"}}, "train.bptt.truncate", "needs truncate"),
        ({"bptt": {"mode": "streaming"}}, "train.bptt.window", "needs window"),
        ({"bptt": {"mode": "full", "window": 8}}, "train.bptt.window", "only used with mode"),
        ({"bptt": {"mode": "stream", "window": 8}}, "train.bptt.mode", "'streaming'"),
        ({"chunk_size": 10, "eval_every": 15}, "train.eval_every", "multiple of chunk_size=10"),
        ({"early_stopping": {"patience": 3}}, "train.early_stopping", "needs eval_every"),
        (
            {"chunk_size": 10, "checkpoint": {"every": 25}},
            "train.checkpoint",
            "multiple of chunk_size=10",
        ),
        ({"checkpoint": {"keep": 0}}, "train.checkpoint.keep", "greater than or equal to 1"),
    ],
)
def test_train_config_errors_name_the_dotted_key(data, key, fragment):
    with pytest.raises(C.ConfigError) as info:
        C.parse_config(C.TrainConfig, data, path="train")
    assert [k for k, _ in info.value.errors] == [key]
    assert fragment in str(info.value)


def test_several_errors_are_all_reported():
    with pytest.raises(C.ConfigError) as info:
        C.parse_config(C.OptimizerConfig, {"learning_rate": 0, "eps": -1, "bogus": 1})
    assert sorted(k for k, _ in info.value.errors) == ["bogus", "eps", "learning_rate"]


def test_valid_configs_parse_and_are_frozen():
    cfg = C.parse_config(
        C.TrainConfig,
        {
            "steps": 200,
            "chunk_size": 20,
            "bptt": {"mode": "streaming", "window": 16, "remat": True},
            "eval_every": 40,
            "early_stopping": {"metric": "accuracy", "mode": "max", "patience": 2},
            "checkpoint": {"every": 100, "keep": 2},
        },
    )
    assert cfg.bptt.window == 16 and cfg.checkpoint.keep == 2
    assert cfg.early_stopping.mode == "max"
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.steps = 3
    # replace validates again
    with pytest.raises(ValueError, match="learning_rate"):
        dataclasses.replace(C.OptimizerConfig(), learning_rate=-1.0)
    # an int is a valid float
    assert C.OptimizerConfig(learning_rate=1).learning_rate == 1.0
    # round trip through plain data
    assert C.parse_config(C.TrainConfig, C.config_to_dict(cfg)) == cfg


def test_window_longer_than_sequence():
    bptt = C.BPTTConfig(mode="streaming", window=64)
    C.check_bptt_fits(bptt, 64)
    with pytest.raises(C.ConfigError, match=r"train\.bptt\.window: window=64 is longer"):
        C.check_bptt_fits(bptt, 50)
    with pytest.raises(C.ConfigError, match=r"train\.bptt\.truncate"):
        C.check_bptt_fits(C.BPTTConfig(mode="truncated", truncate=9), 8)


def test_config_names_are_checked_against_the_live_registries(monkeypatch):
    for table, data, path in (
        (OPTIMIZERS, {"name": "mine"}, "optimizer.name"),
        (SCHEDULES, {"schedule": {"name": "mine"}}, "optimizer.schedule.name"),
        (CLIPPINGS, {"clip": {"method": "mine"}}, "optimizer.clip.method"),
    ):
        with pytest.raises(C.ConfigError, match=rf"{path}: unknown .* 'mine'; registered"):
            C.parse_config(C.OptimizerConfig, data, path="optimizer")
        monkeypatch.setitem(table, "mine", object())
        C.parse_config(C.OptimizerConfig, data, path="optimizer")  # registered: accepted


def test_sections_extend_into_a_whole_config():
    # How later sections compose: a parent section nests these ones; errors get full paths.
    from pydantic.dataclasses import dataclass

    @dataclass(frozen=True, config=C.SECTION)
    class Experiment:
        optimizer: C.OptimizerConfig = C.OptimizerConfig()
        train: C.TrainConfig = C.TrainConfig()

    with pytest.raises(C.ConfigError) as info:
        C.parse_config(Experiment, {"optimizer": {"momentum": 1.5}, "train": {"batch_size": -2}})
    assert sorted(k for k, _ in info.value.errors) == ["optimizer.momentum", "train.batch_size"]
    assert TypeAdapter(Experiment).validate_python({}) == Experiment()
