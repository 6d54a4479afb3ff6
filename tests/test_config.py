"""Configuration as data: unknown keys are errors with the nearest known key."""

import pytest

from edgec.config import BuildConfig
from edgec.errors import ConfigError


def test_round_trip():
    cfg = BuildConfig.from_dict({"model": "m.keras", "data": "random", "target": "cortex-m4", "out": "o"})
    assert BuildConfig.from_dict(cfg.to_dict()) == cfg


def test_round_trip_with_stages_training_and_budgets():
    cfg = BuildConfig.from_dict({"model": "m.keras", "data": "random", "target": "cortex-m4",
                                 "budgets": {"ram": "96KiB"}, "training": {"epochs": 3},
                                 "stages": [{"name": "prune", "sparsity": 0.5}, {"name": "qat"}]})
    assert BuildConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.to_dict()["stages"] == [{"name": "prune", "sparsity": 0.5}, {"name": "qat"}]


def test_typo_suggests_the_key():
    with pytest.raises(ConfigError, match="did you mean 'calibration_samples'"):
        BuildConfig.from_dict({"model": "m", "data": "d", "target": "t", "out": "o", "calibraton_samples": 3})


def test_counts_must_be_positive():
    with pytest.raises(ConfigError, match="from 1 to"):
        BuildConfig.from_dict({"model": "m", "data": "d", "target": "t", "out": "o", "verify_samples": 0})


def test_fit_is_a_boolean():
    cfg = BuildConfig.from_dict({"model": "m", "data": "d", "target": "t", "fit": True,
                                 "stages": [{"name": "channels", "max_fraction": 0.8}]})
    assert cfg.fit and BuildConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="fit must be true or false"):
        BuildConfig.from_dict({"model": "m", "data": "d", "target": "t", "fit": "yes"})
