"""The typed config: defaults, overrides and one-line errors naming the bad key."""

from __future__ import annotations

from pathlib import Path

import pytest

from selfheal.config import Config, ConfigError, load_config

REPO = Path(__file__).resolve().parents[1]


def test_repo_config_matches_documented_defaults():
    cfg = load_config(REPO / "config.yaml")
    assert cfg.thresholds.accept == 0.75
    assert cfg.thresholds.clarify == 0.50
    assert cfg.calibration.temperature is True
    assert cfg.data.source == "rotten_tomatoes"
    # the code's defaults are config.yaml's (a command run without config.yaml behaves the same)
    assert cfg.backup == Config().backup and cfg.voter == Config().voter
    assert cfg.evaluation.no_person_scope == Config().evaluation.no_person_scope == "all"


def test_overrides_are_typed():
    cfg = load_config(
        REPO / "config.yaml", ["training.epochs=5", "lora.target_modules=[query,key]", "data.sample=null"]
    )
    assert cfg.training.epochs == 5
    assert cfg.lora.target_modules == ["query", "key"]
    assert cfg.data.sample is None


def test_round_trip():
    cfg = load_config(REPO / "config.yaml")
    assert Config.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (["lora.rank=4"], "unknown config key 'lora.rank'"),
        (["training.epochs=zero"], "'training.epochs'"),
        (["thresholds.accept=1.5"], "'thresholds.accept'"),
        (["thresholds.accept=0.4"], "thresholds.clarify (0.5) must be <= thresholds.accept (0.4)"),
        (["training.scheduler=warp"], "'training.scheduler'"),
        (["novalue"], "not of the form key.path=value"),
        (["embedder.precision=fp16"], "'embedder.precision'"),
        (["embedder.weight=-1"], "'embedder.weight'"),
    ],
)
def test_bad_values_give_one_line_error_naming_the_key(override, message):
    with pytest.raises(ConfigError) as info:
        load_config(REPO / "config.yaml", override)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("paths: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(scalar)
