"""Composition and validation of the structured configs."""
import math
import re

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigKeyError

from bench.cli import CONF_DIR, to_config, yaml_pieces
from bench.config import PIECES, ConfigError, epochs_for_steps, patience_epochs, technique_names
from tests.conftest import make_config

TECHNIQUES = technique_names()


def test_technique_group_lists_only_yaml_files_and_no_schema():
    """What Hydra offers for technique= (its error listing, completion, glob sweeps) is the YAML files alone:
    the schema registered in the ConfigStore must not show up as a technique."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        offered = GlobalHydra.instance().config_loader().get_group_options("technique")
    assert sorted(offered) == TECHNIQUES and "regbench_schema" not in offered
    assert {"none", "l2", "adamw", "l1", "l1_prox", "dropout", "batchnorm", "augment", "early_stopping", "lr_plateau",
            "l2_es", "l2_es_dropout", "recommended", "all"} <= set(offered)


@pytest.mark.parametrize("name", TECHNIQUES)
def test_every_technique_composes_with_its_name(name):
    cfg = make_config(f"technique={name}")
    assert cfg.technique.name == name


def test_combinations_are_built_from_the_single_pieces():
    single = {name: make_config(f"technique={name}").technique for name in PIECES}
    combo = make_config("technique=all").technique
    assert combo.pieces() == ["l2", "l1", "dropout", "batchnorm", "augment", "early_stopping", "lr_plateau"]  # the article's
    for piece in combo.pieces():
        assert getattr(combo, piece) == getattr(single[piece], piece)
    assert make_config("technique=l2_es").technique.pieces() == ["l2", "early_stopping"]
    assert make_config("technique=l2_es_dropout").technique.pieces() == ["l2", "dropout", "early_stopping"]


def test_article_defaults():
    t = make_config("technique=all").technique
    assert (t.l2.weight_decay, t.l2.decoupled) == (1e-4, False)
    assert make_config("technique=adamw").technique.l2.decoupled is True
    assert t.l1.strength == 1e-3 and (t.dropout.p, t.dropout.p_conv) == (0.5, 0.2)
    assert (t.early_stopping.patience_frac, t.early_stopping.min_delta) == (0.1, 1e-3)
    assert (t.lr_plateau.patience_frac, t.lr_plateau.factor) == (0.05, 0.5)
    adamw = make_config("technique=adamw").technique.l2
    assert adamw.weight_decay == 1e-2  # PyTorch's AdamW default: decoupled decay has its own scale
    assert make_config("technique=l1_prox").technique.l1.proximal is True and t.l1.proximal is False


def test_scale_follows_task_and_preset():
    assert make_config("task=mlp", "preset=quick").task.epochs == 300
    quick = make_config("task=cifar", "preset=quick").task
    assert (quick.n_train, quick.width, quick.epochs) == (2000, 16, 20)
    full = make_config("task=cifar", "preset=full").task
    assert (full.n_train, full.n_val, full.n_test, full.width) == (5000, 5000, 10000, 64)
    assert make_config("task=cifar", "preset=quick", "task.n_train=1000").task.n_train == 1000


@pytest.mark.parametrize("override, message", [
    ("technique.dropout.p=1.0", "dropout.p must be in [0, 1)"),
    ("technique.dropout.p=-0.1", "dropout.p must be in [0, 1)"),
    ("technique.l2.weight_decay=-1", "l2.weight_decay must be >= 0"),
    ("technique.l1.strength=-1e-3", "l1.strength must be >= 0"),
    ("technique.early_stopping.patience_frac=0", "early_stopping.patience_frac must be in (0, 1]"),
    ("technique.augment.rotate_deg=-5", "augment.rotate_deg must be >= 0"),
    ("task.batch_size=200", "task.batch_size (200) must be <= task.n_train (100)"),
    ("task.n_train=0", "task.n_train must be >= 1"),
    ("task.n_train=-5", "task.n_train must be >= 1"),
    ("device=tpu", "unknown device 'tpu'"),
])
def test_bad_values_fail_at_compose_time(override, message):
    technique = {"dropout": "all", "l2": "all", "l1": "all", "early": "all", "augment": "all"}
    pick = next((v for k, v in technique.items() if f".{k}" in override), "none")
    with pytest.raises(ConfigError, match=re.escape(message)):
        make_config(f"technique={pick}", override)


def test_typo_in_a_key_fails_at_compose_time():
    with pytest.raises((ConfigCompositionException, ConfigKeyError)):
        make_config("task.n_trian=5")


def test_equal_steps_sizing_gives_every_train_size_the_same_optimizer_steps():
    steps = 320  # the quick CIFAR budget: 20 epochs x 16 batches of 128 at 2,000 images
    for n_train, epochs in ((2000, 20), (1000, 40), (500, 80), (300, 107)):
        cfg = make_config("task=cifar", f"task.n_train={n_train}", f"task.steps={steps}").task
        assert cfg.epochs == epochs
        batches = math.ceil(n_train / cfg.batch_size)
        assert steps <= cfg.epochs * batches < steps + batches  # at least the budget, less than one epoch over
    assert epochs_for_steps(1, 10, 32) == 1 and epochs_for_steps(7, 100, 25) == 2


def test_patience_is_a_fraction_of_the_epoch_budget():
    assert [patience_epochs(0.1, e) for e in (20, 300, 5)] == [2, 30, 1]
    assert patience_epochs(0.05, 20) == 1


@pytest.mark.parametrize("name", TECHNIQUES)
def test_the_command_line_check_reads_the_pieces_hydra_composes(name):
    """bench.cli reads technique YAMLs (defaults included) to refuse technique.<piece>.x= for a piece that is off."""
    assert yaml_pieces(name) == set(make_config(f"technique={name}").technique.pieces())


def test_a_key_added_with_plus_that_the_schema_lacks_fails():
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=["technique=l2", "+technique.l2.wieght_decay=0.5"])
    with pytest.raises(ConfigError, match=re.escape("unknown key 'technique.l2.wieght_decay'")):
        to_config(cfg)
