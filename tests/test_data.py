"""Datasets: the synthetic teacher task and both CIFAR-10 on-disk formats, built tiny in a temp dir."""
import os

import numpy as np
import pytest
import torch

from bench.config import TaskConfig
from bench.data import DataError, load_cifar_arrays, make_cifar_data, make_mlp_data, read_cifar_pickles
from bench.train import train_seeds
from tests.conftest import make_config, write_cifar_pickles, write_class_folder_archive

CPU = torch.device("cpu")


def test_mlp_data_sizes_and_known_noise_floor():
    task = TaskConfig(n_train=100, n_val=50, n_test=20000, noise_std=0.5, resample_data=False)
    data = make_mlp_data(task, CPU)
    assert data.train.x.shape == (100, 10) and data.val.y.shape == (50,) and data.test.x.shape == (20000, 10)
    assert data.noise_floor == 0.25
    # the teacher itself reaches the floor: test targets minus the noise-free teacher output have variance 0.25
    again = make_mlp_data(TaskConfig(n_train=100, n_val=50, n_test=20000, noise_std=0.0, resample_data=False), CPU)
    assert torch.var(data.test.y - again.test.y).item() == pytest.approx(0.25, rel=0.05)
    assert torch.equal(make_mlp_data(task, CPU).train.x, data.train.x)  # fixed by data_seed


def test_each_seed_draws_its_own_training_set_from_the_same_teacher():
    task = TaskConfig(n_train=100, n_val=50, n_test=300, noise_std=0.0)  # resample_data is the default
    data = make_mlp_data(task, CPU, [0, 1, 2])
    assert data.train.per_seed and data.train.x.shape == (3, 100, 10) and data.val.y.shape == (3, 50)
    assert not torch.equal(data.train.x[0], data.train.x[1])  # different samples
    alone = make_mlp_data(task, CPU, [1])  # a seed's draw does not depend on the other seeds
    assert torch.equal(alone.train.x[0], data.train.x[1]) and torch.equal(alone.val.y[0], data.val.y[1])
    assert torch.equal(alone.test.x, data.test.x)  # one shared test set
    # the same teacher labels every draw: a point's noise-free target does not depend on the seed
    shared = make_mlp_data(TaskConfig(n_train=100, n_val=50, n_test=300, noise_std=0.0, resample_data=False), CPU)
    assert torch.equal(shared.test.y, data.test.y)
    both = data.of_seeds(1, 2)
    assert torch.equal(both.train.x, alone.train.x) and both.test is data.test


def test_noise_variant_has_targets_independent_of_inputs():
    data = make_mlp_data(TaskConfig(targets="noise", n_test=5000), CPU)
    assert data.noise_floor == 1.0
    assert abs(np.corrcoef(data.test.x[:, 0].numpy(), data.test.y.numpy())[0, 1]) < 0.05


def test_torchvision_pickles_load_with_right_shapes_labels_and_balance(tmp_path):
    written = write_cifar_pickles(tmp_path)
    arrays = read_cifar_pickles(tmp_path)
    for split in ("train", "test"):
        x, y = arrays[split]
        assert x.dtype == np.uint8 and x.shape == (len(written[split][1]), 3, 32, 32)
        np.testing.assert_array_equal(x, written[split][0])
        np.testing.assert_array_equal(y, written[split][1])
    assert np.bincount(arrays["train"][1]).tolist() == [5] * 10


@pytest.mark.parametrize("name, fmt", [("c.tar.gz", "PNG"), ("c.tar", "PNG"), ("c.zip", "JPEG")])
def test_class_folder_archives_load_with_right_shapes_labels_and_balance(tmp_path, name, fmt):
    written = write_class_folder_archive(tmp_path / name, fmt)
    arrays, source = load_cifar_arrays(TaskConfig(name="cifar", data_path=str(tmp_path / name), cache_dir=str(tmp_path / "cache")))
    assert source == f"folder:{name}"
    for split in ("train", "test"):
        x, y = arrays[split]
        assert x.dtype == torch.uint8 and x.shape == (len(written[split][1]), 3, 32, 32)
        assert torch.bincount(y).tolist() == [len(y) // 10] * 10
        # every image lands with its own class: compare against what was written, order-free per class
        for c in range(10):
            got = x[y == c].float().mean().item()
            want = written[split][0][written[split][1] == c].astype(np.float32).mean()
            assert got == pytest.approx(want, abs=2.0 if fmt == "JPEG" else 1e-6)


def test_decoded_data_is_cached_and_reused(tmp_path):
    path = tmp_path / "c.tar.gz"
    write_class_folder_archive(path)
    task = TaskConfig(name="cifar", data_path=str(path), cache_dir=str(tmp_path / "cache"))
    first, _ = load_cifar_arrays(task)
    cached = list((tmp_path / "cache").glob("cifar10-*.pt"))
    assert len(cached) == 1
    os.chmod(path, 0)  # the archive is not read again
    try:
        second, _ = load_cifar_arrays(task)
    finally:
        os.chmod(path, 0o644)
    assert torch.equal(first["train"][0], second["train"][0])


def test_splits_hold_out_validation_from_train_with_balanced_classes(tmp_path):
    path = tmp_path / "c.tar.gz"
    write_class_folder_archive(path, n_train_per_class=8, n_test_per_class=3)
    task = TaskConfig(name="cifar", data_path=str(path), cache_dir=str(tmp_path), n_train=50, n_val=20, n_test=20)
    data = make_cifar_data(task, CPU)
    assert (len(data.train.y), len(data.val.y), len(data.test.y)) == (50, 20, 20)
    assert torch.bincount(data.val.y).tolist() == [2] * 10 and torch.bincount(data.train.y).tolist() == [5] * 10
    train_set = {tuple(x.flatten()[:40].tolist()) for x in data.train.x}
    assert not any(tuple(x.flatten()[:40].tolist()) in train_set for x in data.val.x)


def test_missing_data_says_where_it_looked_and_how_to_get_it(tmp_path):
    with pytest.raises(DataError, match=r"not found at .*nowhere.*REGBENCH_CIFAR.*torchvision"):
        load_cifar_arrays(TaskConfig(name="cifar", data_path=str(tmp_path / "nowhere.tar.gz")))


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_archive_gives_one_clear_error(tmp_path, damage):
    path = tmp_path / "c.tar.gz"
    write_class_folder_archive(path)
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2] if damage == "truncate" else b"not an archive at all" * 10)
    with pytest.raises(DataError, match="c.tar.gz"):
        load_cifar_arrays(TaskConfig(name="cifar", data_path=str(path), cache_dir=str(tmp_path)))


def test_corrupt_pickle_gives_one_clear_error(tmp_path):
    write_cifar_pickles(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"\x80\x04garbage")
    with pytest.raises(DataError, match="data_batch_3 is corrupt"):
        read_cifar_pickles(tmp_path)


def test_torchvision_source_reads_the_pickles_it_finds(tmp_path):
    write_cifar_pickles(tmp_path / "root")
    task = TaskConfig(name="cifar", source="torchvision", data_path=str(tmp_path / "root"), cache_dir=str(tmp_path))
    arrays, source = load_cifar_arrays(task)
    assert source == "torchvision:root" and arrays["train"][0].shape == (50, 3, 32, 32)


@pytest.mark.parametrize("technique", ["none", "l2", "adamw", "l1", "dropout", "batchnorm", "dropout_bn", "augment",
                                       "early_stopping", "lr_plateau", "l2_es", "l2_es_dropout", "recommended", "all"])
def test_every_technique_trains_one_epoch_on_tiny_cifar(cifar_archive, tmp_path, technique):
    cfg = make_config("task=cifar", f"technique={technique}", f"task.data_path={cifar_archive}",
                      f"task.cache_dir={tmp_path}", "task.n_train=50", "task.n_val=20", "task.n_test=20", "task.width=4",
                      "task.batch_size=16")
    data = make_cifar_data(cfg.task, CPU)
    rows = train_seeds(cfg.task, cfg.technique, [0, 1], data, CPU)
    assert [r["status"] for r in rows] == ["ok", "ok"] and rows[0]["epochs_run"] == 1
    assert 0 <= rows[0]["final"]["test_acc"] <= 1
