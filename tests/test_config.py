"""Composition and validation of the structured configs."""
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigKeyError

from bench.cli import CONF_DIR
from bench.config import PIECES, ConfigError
from tests.conftest import make_config

TECHNIQUES = sorted(p.stem for p in (Path(CONF_DIR) / "technique").glob("*.yaml"))


def test_technique_group_lists_only_yaml_files_and_no_schema():
    assert "regbench_schema" not in TECHNIQUES
    assert {"none", "l2", "adamw", "l1", "dropout", "batchnorm", "augment", "early_stopping", "lr_plateau",
            "l2_es", "l2_es_dropout", "recommended", "all"} <= set(TECHNIQUES)


@pytest.mark.parametrize("name", TECHNIQUES)
def test_every_technique_composes_with_its_name(name):
    cfg = make_config(f"technique={name}")
    assert cfg.technique.name == name


def test_combinations_are_built_from_the_single_pieces():
    single = {name: make_config(f"technique={name}").technique for name in PIECES if name != "l2"}
    single["l2"] = make_config("technique=l2").technique
    combo = make_config("technique=all").technique
    assert combo.pieces() == list(PIECES)
    for piece in PIECES:
        assert getattr(combo, piece) == getattr(single[piece], piece)
    assert make_config("technique=l2_es").technique.pieces() == ["l2", "early_stopping"]
    assert make_config("technique=l2_es_dropout").technique.pieces() == ["l2", "dropout", "early_stopping"]


def test_article_defaults():
    t = make_config("technique=all").technique
    assert (t.l2.weight_decay, t.l2.decoupled) == (1e-4, False)
    assert make_config("technique=adamw").technique.l2.decoupled is True
    assert t.l1.strength == 1e-3 and (t.dropout.p, t.dropout.p_conv) == (0.5, 0.2)
    assert (t.early_stopping.patience, t.early_stopping.min_delta) == (15, 1e-3)
    assert (t.lr_plateau.patience, t.lr_plateau.factor) == (5, 0.5)


def test_scale_follows_task_and_preset():
    assert make_config("task=mlp", "preset=quick").task.epochs == 300
    quick = make_config("task=cifar", "preset=quick").task
    assert (quick.n_train, quick.width) == (5000, 16)
    full = make_config("task=cifar", "preset=full").task
    assert (full.n_train, full.n_val, full.n_test, full.width) == (45000, 5000, 10000, 64)
    assert make_config("task=cifar", "preset=quick", "task.n_train=1000").task.n_train == 1000


@pytest.mark.parametrize("override, message", [
    ("technique.dropout.p=1.0", "dropout.p must be in [0, 1)"),
    ("technique.dropout.p=-0.1", "dropout.p must be in [0, 1)"),
    ("technique.l2.weight_decay=-1", "l2.weight_decay must be >= 0"),
    ("technique.l1.strength=-1e-3", "l1.strength must be >= 0"),
    ("technique.early_stopping.patience=0", "early_stopping.patience must be >= 1"),
    ("task.n_train=0", "task.n_train must be >= 1"),
    ("task.n_train=-5", "task.n_train must be >= 1"),
    ("device=tpu", "unknown device 'tpu'"),
])
def test_bad_values_fail_at_compose_time(override, message):
    technique = {"dropout": "all", "l2": "all", "l1": "all", "early": "all"}
    pick = next((v for k, v in technique.items() if f".{k}" in override), "none")
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(")", r"\)")):
        make_config(f"technique={pick}", override)


def test_typo_in_a_key_fails_at_compose_time():
    with pytest.raises((ConfigCompositionException, ConfigKeyError)):
        make_config("task.n_trian=5")
