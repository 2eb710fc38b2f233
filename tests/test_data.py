"""Datasets: the synthetic teacher task and every CIFAR-10 source in its real on-disk format, built tiny in a temp dir."""
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

import bench.cifar_files
from bench.cifar_files import BATCHES, TARBALL, content_key
from bench.config import TaskConfig, technique_names
from bench.data import DataError, load_cifar_arrays, make_cifar_data, make_mlp_data
from bench.train import train_seeds
from tests.conftest import (
    encode_image,
    make_config,
    trust_cifar_batches,
    write_cifar_pickles,
    write_class_folder_archive,
    write_official_tarball,
)

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


def cifar_task(path, tmp_path, **kwargs) -> TaskConfig:
    """A CIFAR task reading `path`, caching under tmp_path/cache."""
    return TaskConfig(name="cifar", data_path=str(path), cache_dir=str(tmp_path / "cache"), **kwargs)


def assert_same(arrays, written):
    """Exactly the written images and labels, in the written order, as uint8 / int64 tensors."""
    for split in ("train", "test"):
        x, y = arrays[split]
        assert x.dtype == torch.uint8 and y.dtype == torch.int64
        np.testing.assert_array_equal(x.numpy(), written[split][0])
        np.testing.assert_array_equal(y.numpy(), written[split][1])


@pytest.mark.parametrize("where", ["root", "batches folder"])
@pytest.mark.parametrize("source", ["auto", "torchvision"])
def test_pickle_batches_load_through_torchvision_with_right_images_and_labels(tmp_path, monkeypatch, where, source):
    written = write_cifar_pickles(tmp_path / "root")
    trust_cifar_batches(monkeypatch, tmp_path / "root" / BATCHES)
    path = tmp_path / "root" if where == "root" else tmp_path / "root" / BATCHES
    arrays, label = load_cifar_arrays(cifar_task(path, tmp_path, source=source))
    assert_same(arrays, written)
    assert label == f"torchvision:{path.name}"
    assert torch.bincount(arrays["train"][1]).tolist() == [5] * 10


@pytest.mark.parametrize("name", [TARBALL, "renamed.tgz"])  # found by its content, not its name
def test_official_tarball_is_extracted_into_the_cache_and_read(tmp_path, monkeypatch, name):
    (tmp_path / "dl").mkdir()
    written = write_official_tarball(tmp_path / "dl" / name, monkeypatch)
    arrays, label = load_cifar_arrays(cifar_task(tmp_path / "dl" / name, tmp_path))
    assert_same(arrays, written)
    assert label == f"torchvision:{name}"
    extracted = (tmp_path / "cache").glob(f"cifar10-*-batches/{BATCHES}/*")
    assert sorted(p.name for p in extracted) == sorted(bench.cifar_files.BATCH_FILES)  # readme.html is left out
    assert sorted(os.listdir(tmp_path / "dl")) == [name, f"{name}.src"]  # nothing written beside the archive
    assert [p.name for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")] == []  # no temporary left


@pytest.mark.parametrize("source", ["auto", "torchvision"])
def test_torchvision_root_holding_only_the_official_tarball(tmp_path, monkeypatch, source):
    (tmp_path / "root").mkdir()
    written = write_official_tarball(tmp_path / "root" / TARBALL, monkeypatch)
    arrays, label = load_cifar_arrays(cifar_task(tmp_path / "root", tmp_path, source=source))
    assert_same(arrays, written)
    assert label == "torchvision:root" and not (tmp_path / "root" / BATCHES).exists()


def test_an_interrupted_extraction_is_never_trusted(tmp_path, monkeypatch):
    path = tmp_path / TARBALL
    written = write_official_tarball(path, monkeypatch)
    real_extract = tarfile.TarFile.extract

    def extract_then_die(self, *args, **kwargs):
        real_extract(self, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(tarfile.TarFile, "extract", extract_then_die)
    with pytest.raises(KeyboardInterrupt):
        load_cifar_arrays(cifar_task(path, tmp_path))
    assert list((tmp_path / "cache").glob("cifar10-*")) == []  # no half-extracted folder under the final name
    monkeypatch.setattr(tarfile.TarFile, "extract", real_extract)
    assert_same(load_cifar_arrays(cifar_task(path, tmp_path))[0], written)


def test_extraction_takes_only_the_batch_files_and_writes_nothing_outside_the_cache(tmp_path, monkeypatch):
    path = tmp_path / "dl" / TARBALL
    path.parent.mkdir()
    written = write_official_tarball(path, monkeypatch)
    with tarfile.open(path) as good, tarfile.open(tmp_path / "dl" / "evil.tar.gz", "w:gz") as tf:
        for member in good:
            tf.addfile(member, good.extractfile(member) if member.isfile() else None)
        for name in ("../../escape.txt", f"{BATCHES}/../../../escape2.txt"):
            info = tarfile.TarInfo(name)
            info.size = 1
            tf.addfile(info, io.BytesIO(b"x"))
        link = tarfile.TarInfo(f"{BATCHES}/link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc"
        tf.addfile(link)
    arrays, _ = load_cifar_arrays(cifar_task(tmp_path / "dl" / "evil.tar.gz", tmp_path))
    assert_same(arrays, written)
    assert list(tmp_path.rglob("escape*")) == []
    assert not any(p.is_symlink() for p in (tmp_path / "cache").rglob("*"))


@pytest.mark.parametrize("damage", ["truncate", "bad batch"])
def test_a_damaged_official_tarball_gives_one_clear_error_naming_it(tmp_path, monkeypatch, damage):
    path = tmp_path / TARBALL
    write_official_tarball(path, monkeypatch)
    if damage == "truncate":
        blob = path.read_bytes()
        path.write_bytes(blob[: len(blob) // 2])
    else:  # a batch that fails the md5 torchvision expects of it
        src = tmp_path / f"{TARBALL}.src" / BATCHES
        (src / "data_batch_3").write_bytes((src / "data_batch_3").read_bytes()[:-10])
        with tarfile.open(path, "w:gz") as tf:
            tf.add(src, arcname=BATCHES)
    says = " cannot be extracted" if damage == "truncate" else f": its {BATCHES}/data_batch_3 is corrupt"
    with pytest.raises(DataError, match=f"{TARBALL}{says}") as err:
        load_cifar_arrays(cifar_task(path, tmp_path))
    assert "\n" not in str(err.value)
    assert list((tmp_path / "cache").glob("cifar10-*")) == []  # nothing half-made is kept for the next run


@pytest.mark.parametrize("damage, says", [("truncate", "is corrupt"), ("garbage", "is corrupt"),
                                          ("relabel", "is corrupt"), ("delete", "is missing")])
def test_a_corrupt_or_missing_batch_gives_one_clear_error_line(tmp_path, monkeypatch, damage, says):
    write_cifar_pickles(tmp_path / "root")
    trust_cifar_batches(monkeypatch, tmp_path / "root" / BATCHES)
    batch = tmp_path / "root" / BATCHES / "data_batch_3"
    blob = batch.read_bytes()
    if damage == "delete":
        batch.unlink()
    elif damage == "relabel":  # still a well-formed batch, but not the file torchvision's md5 names
        entry = pickle.loads(blob, encoding="latin1")
        entry["labels"][0] = (entry["labels"][0] + 1) % 10
        batch.write_bytes(pickle.dumps(entry, protocol=2))
    else:
        batch.write_bytes(blob[: len(blob) // 2] if damage == "truncate" else b"\x80\x04garbage")
    with pytest.raises(DataError, match=f"{BATCHES}/data_batch_3 {says}") as err:
        load_cifar_arrays(cifar_task(tmp_path / "root", tmp_path))
    assert "\n" not in str(err.value) and "REGBENCH_CIFAR" in str(err.value)


def test_without_a_path_torchvision_downloads_into_the_cache_dir(tmp_path, monkeypatch):
    from torchvision.datasets import CIFAR10

    fetched = {}

    def fake_download(self):  # what torchvision's download leaves behind, without the network
        fetched["root"], fetched["data"] = self.root, write_cifar_pickles(Path(self.root))
        trust_cifar_batches(monkeypatch, Path(self.root) / BATCHES)

    monkeypatch.setattr(CIFAR10, "download", fake_download)
    arrays, label = load_cifar_arrays(TaskConfig(name="cifar", cache_dir=str(tmp_path / "cache")))
    assert Path(fetched["root"]) == tmp_path / "cache" / "cifar10" and label == "torchvision:cifar10"
    assert_same(arrays, fetched["data"])


def test_a_failed_download_says_where_and_how(tmp_path, monkeypatch):
    from torchvision.datasets import CIFAR10

    def offline(self):
        raise OSError("network is unreachable")

    monkeypatch.setattr(CIFAR10, "download", offline)
    with pytest.raises(DataError, match=r"not found under .*cifar10 and the download failed \(network is unreachable\)"
                                        r".*REGBENCH_CIFAR"):
        load_cifar_arrays(TaskConfig(name="cifar", source="torchvision", cache_dir=str(tmp_path / "cache")))


def test_torchvision_source_refuses_a_class_folder_archive(tmp_path):
    path = tmp_path / "c.tar.gz"
    write_class_folder_archive(path)
    with pytest.raises(DataError, match=f"c.tar.gz is not CIFAR-10's official {TARBALL}"):
        load_cifar_arrays(cifar_task(path, tmp_path, source="torchvision"))


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


def test_decoded_data_is_cached_and_reused(tmp_path, monkeypatch):
    path = tmp_path / "c.tar.gz"
    write_class_folder_archive(path)
    task = TaskConfig(name="cifar", data_path=str(path), cache_dir=str(tmp_path / "cache"))
    first, _ = load_cifar_arrays(task)
    assert len(list((tmp_path / "cache").glob("cifar10-*.pt"))) == 1

    def read_again(path):
        raise AssertionError(f"{path} was decoded again")

    monkeypatch.setattr(bench.cifar_files, "read_class_folders", read_again)
    second, _ = load_cifar_arrays(task)
    assert torch.equal(first["train"][0], second["train"][0])


def test_changing_one_image_inside_a_folder_source_invalidates_the_cache(tmp_path):
    folder = tmp_path / "cifar"
    write_class_folder_archive(folder)
    task = cifar_task(folder, tmp_path)
    before, label = load_cifar_arrays(task)
    assert label == "folder:cifar"
    new = np.full((3, 32, 32), 7, dtype=np.uint8)
    image = min((folder / "cifar10" / "train" / "cat").glob("*.png"))
    image.write_bytes(encode_image(new, "PNG"))  # the folder itself keeps its size and mtime
    after, _ = load_cifar_arrays(task)

    def holds_new(x):
        return (x == torch.from_numpy(new)).flatten(1).all(1)

    assert not holds_new(before["train"][0]).any()
    assert after["train"][1][holds_new(after["train"][0])].tolist() == [3]  # the new image, once, as a cat
    assert len(after["train"][1]) == len(before["train"][1])


@pytest.mark.parametrize("what", ["folder", "archive"])
def test_the_cache_key_follows_each_file_path_size_and_mtime(tmp_path, what):
    path = tmp_path / ("cifar" if what == "folder" else "c.tar")
    write_class_folder_archive(path)
    target = max(path.rglob("*.png")) if what == "folder" else path
    key = content_key("folder", path)
    assert content_key("folder", path) == key and content_key("pickles", path) != key
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1))  # same bytes, touched
    touched = content_key("folder", path)
    assert touched != key
    if what == "folder":  # a new file counts too
        (target.parent / "extra.txt").write_bytes(b"")
        assert content_key("folder", path) != touched


@pytest.mark.parametrize("bad", ["missing split", "float images", "count mismatch", "label out of range",
                                 "not a dict", "garbage"])
def test_a_cache_with_wrong_content_is_deleted_and_rebuilt(tmp_path, bad):
    path = tmp_path / "c.tar"
    write_class_folder_archive(path)
    task = cifar_task(path, tmp_path)
    good, _ = load_cifar_arrays(task)
    (cache,) = (tmp_path / "cache").glob("cifar10-*.pt")
    x, y = good["train"]
    if bad == "garbage":
        cache.write_bytes(b"not a torch file")
    else:
        torch.save({"missing split": {"train": (x, y)}, "float images": {**good, "train": (x.float(), y)},
                    "count mismatch": {**good, "train": (x, y[:-1])}, "label out of range": {**good, "train": (x, y + 10)},
                    "not a dict": [x, y]}[bad], cache)
    again, _ = load_cifar_arrays(task)
    for split in ("train", "test"):
        assert again[split][0].dtype == torch.uint8 and again[split][1].dtype == torch.int64
        assert torch.equal(again[split][0], good[split][0]) and torch.equal(again[split][1], good[split][1])
    assert bench.cifar_files.well_formed(torch.load(cache, weights_only=True))  # the bad file was replaced


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


@pytest.mark.parametrize("technique", technique_names())
def test_every_technique_trains_one_epoch_on_tiny_cifar(cifar_archive, tmp_path, technique):
    cfg = make_config("task=cifar", f"technique={technique}", f"task.data_path={cifar_archive}",
                      f"task.cache_dir={tmp_path}", "task.n_train=50", "task.n_val=20", "task.n_test=20", "task.width=4",
                      "task.batch_size=16")
    data = make_cifar_data(cfg.task, CPU)
    rows = train_seeds(cfg.task, cfg.technique, [0, 1], data, CPU)
    assert [r["status"] for r in rows] == ["ok", "ok"] and rows[0]["epochs_run"] == 1
    assert 0 <= rows[0]["final"]["test_acc"] <= 1
