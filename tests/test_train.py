"""The trainer: optimizer equivalence, vectorized == sequential, determinism, divergence, rows and resume."""
import json
import signal

import pytest
import torch

import bench.inputs as inputs_module
import bench.measure as measure_module
import bench.run as run_module
import bench.train as train_module
from bench.config import ConfigError, EarlyStoppingConfig, technique_names
from bench.data import Split
from bench.results import SCHEMA_VERSION, load_rows
from bench.run import pick_device, run_cell
from bench.tasks import get_task
from bench.models import mse_per_seed
from bench.hooks import Regularizer
from bench.regularizers import PIECES, inapplicable
from bench.inputs import epoch_batches
from bench.train import make_trainer, train_seeds
from tests.conftest import make_config

CPU = torch.device("cpu")


def run(*overrides, seeds=(0,)):
    cfg = make_config(*overrides)
    data = get_task(cfg.task.name).load_data(cfg.task, CPU, list(seeds))
    return train_seeds(cfg.task, cfg.technique, list(seeds), data, CPU)


def test_epoch_batches_cover_each_seeds_order_across_chunks(monkeypatch):
    monkeypatch.setattr(inputs_module, "CHUNK_SAMPLES", 8)  # several chunks, the last one short
    data = Split(torch.arange(30.0)[:, None].repeat(1, 3), torch.arange(30.0))
    perms = torch.stack([torch.randperm(30), torch.randperm(30)])
    batches = list(epoch_batches(data, perms, 4, get_task("mlp")))
    assert [y.shape for _, y in batches] == [(2, 4)] * 7 + [(2, 2)]
    torch.testing.assert_close(torch.cat([y for _, y in batches], dim=1), perms.float())
    torch.testing.assert_close(torch.cat([x for x, _ in batches], dim=1)[..., 0], perms.float())


@pytest.fixture
def float64():
    """The same math in float64, so per-seed results must agree to rounding (float32 BN amplifies it)."""
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def test_evaluation_is_cross_entropy_and_accuracy_per_seed_over_every_batch_on_inputs_laid_out_for_the_cnn(monkeypatch):
    """eval_batches prepares the CNN's input in the layout its forward reads as a view (no copy); evaluate
    gives each seed's F.cross_entropy and accuracy over the whole split, however it is cut into batches."""
    from torch.nn import functional as F

    task, S = get_task("cifar"), 2
    gen = torch.Generator().manual_seed(0)
    split = Split(torch.randint(0, 256, (7, 3, 32, 32), dtype=torch.uint8, generator=gen),
                  torch.randint(0, 10, (7,), generator=gen))
    model = task.build_model(S, make_config("task=cifar").task)
    (x, y), = inputs_module.eval_batches(split, task, S)
    B = x.shape[1]
    assert torch.equal(x, inputs_module.model_inputs(split.x.expand(S, *split.x.shape), task))
    assert x.transpose(0, 1).reshape(B, S * 3, 32, 32).contiguous(memory_format=torch.channels_last).data_ptr() == x.data_ptr()
    with torch.no_grad():
        out = model.eval()(x)
    loss, acc = measure_module.evaluate(model, [(x, y)], task)
    for s in range(S):
        torch.testing.assert_close(loss[s], F.cross_entropy(out[s], split.y))
        assert acc[s].item() == pytest.approx((out[s].argmax(-1) == split.y).float().mean().item())
    monkeypatch.setattr(inputs_module, "EVAL_BATCH", 3)  # batches of 3, 3 and 1
    assert [b[1].shape[1] for b in inputs_module.eval_batches(split, task, S)] == [3, 3, 1]
    loss_b, acc_b = measure_module.evaluate(model, inputs_module.eval_batches(split, task, S), task)
    torch.testing.assert_close(loss_b, loss)
    torch.testing.assert_close(acc_b, acc)


def test_evaluation_of_per_seed_samples_is_each_seeds_mse_on_its_own_samples():
    mlp = get_task("mlp")
    split = Split(torch.randn(3, 5, 4), torch.randn(3, 5), per_seed=True)
    model = mlp.build_model(3, make_config("task=mlp", "task.in_dim=4").task)
    loss, acc = measure_module.evaluate(model, inputs_module.eval_batches(split, mlp, 3), mlp)
    with torch.no_grad():
        for s in range(3):
            alone = model.eval()(split.x[s].expand(3, 5, 4))[s, :, 0]  # seed s's network on seed s's samples
            torch.testing.assert_close(loss[s], torch.nn.functional.mse_loss(alone, split.y[s]))
    assert acc is None


def test_each_run_reports_its_own_peak_memory_not_an_earlier_larger_ones():
    """On CPU the peak is the process's peak RSS since the run began: a sweep runs its cells in one process."""
    import mmap

    measure_module.reset_peak_memory(CPU)
    small = measure_module.peak_memory_mb(CPU)[0]
    # 512 MB mapped by hand, touched, then unmapped: malloc's settings cannot keep it (keep_freed_memory, which
    # code run earlier in this process may have called, keeps freed malloc blocks resident)
    region = mmap.mmap(-1, 2**29)
    torch.frombuffer(region, dtype=torch.uint8).fill_(1)
    with_big = measure_module.peak_memory_mb(CPU)[0]
    assert with_big > small + 400
    region.close()
    measure_module.reset_peak_memory(CPU)
    after, kind = measure_module.peak_memory_mb(CPU)
    if kind == "process_peak_rss":  # Linux
        assert after < with_big - 400



@pytest.mark.parametrize("technique", ["none", "l2_es", "l1", "batchnorm", "lr_plateau", "adamw"])
def test_vectorized_seeds_match_sequential_training(technique, float64):
    overrides = [f"technique={technique}", "task.epochs=25"]
    if "es" in technique:
        overrides += ["technique.early_stopping.patience_frac=0.04", "task.epochs=80"]  # patience 3: seeds stop apart
    together = run(*overrides, seeds=(0, 1, 2))
    for s in range(3):
        alone = run(*overrides, seeds=(s,))[0]
        assert together[s]["epochs_run"] == alone["epochs_run"]
        assert together[s]["best_epoch"] == alone["best_epoch"]
        for key in ("train_loss", "val_loss", "test_loss"):
            assert together[s]["final"][key] == pytest.approx(alone["final"][key], rel=1e-9)
    if "es" in technique:
        assert len({r["epochs_run"] for r in together}) > 1, "seeds should stop at different epochs"


@pytest.mark.parametrize("technique", ["none", "batchnorm", "dropout", "l1", "augment", "l2_es", "mixup", "ema"])
def test_mlp_trained_with_gradients_by_hand_matches_autograd_training(technique, float64):
    cfg = make_config(f"technique={technique}", "task.epochs=15")
    data = get_task(cfg.task.name).load_data(cfg.task, CPU, [0, 1])
    by_hand = train_seeds(cfg.task, cfg.technique, [0, 1], data, CPU)
    ref = train_seeds(cfg.task, cfg.technique, [0, 1], data, CPU, autograd=True)
    for a, b in zip(by_hand, ref):
        assert a["epochs_run"] == b["epochs_run"]
        for key in ("train_loss", "val_loss", "test_loss"):  # float64 rounding, amplified by training
            assert a["final"][key] == pytest.approx(b["final"][key], rel=1e-6)


@pytest.mark.parametrize("technique", technique_names())
def test_every_technique_trains_the_mlp_or_says_it_does_not_apply(technique):
    cfg = make_config(f"technique={technique}")
    if reason := inapplicable(cfg.technique, cfg.task):
        assert reason.endswith("does not apply to task mlp")
        return
    rows = run(f"technique={technique}", seeds=(0, 1))
    assert [r["status"] for r in rows] == ["ok", "ok"] and rows[0]["epochs_run"] >= 1


def test_a_hook_the_hand_written_step_cannot_honour_makes_the_cell_train_with_autograd(monkeypatch):
    class ShiftedTargets(Regularizer):  # a loss hook the MLP's hand-written MSE step knows nothing of
        def __init__(self, cfg, **_):
            pass

        def train_loss(self, out, y):
            return mse_per_seed(out, y + 3.0)

    cfg = make_config("technique=l2", "task.epochs=3")
    assert make_trainer(cfg.task, cfg.technique, [0], CPU).by_hand
    monkeypatch.setitem(PIECES, "l2", ShiftedTargets)
    assert not make_trainer(cfg.task, cfg.technique, [0], CPU).by_hand
    hooked, plain = run("technique=l2", "task.epochs=3")[0], run("technique=none", "task.epochs=3")[0]
    first = [row["history"][0]["train_loss_running"] for row in (hooked, plain)]
    assert first[0] > first[1] + 5  # the shifted loss was what trained (MSE + ~9)


def test_a_layer_or_forward_hook_the_hand_written_step_does_not_know_makes_the_cell_use_autograd():
    cfg = make_config("technique=dropout")
    tr = make_trainer(cfg.task, cfg.technique, [0], CPU)
    assert tr.by_hand and tr.model.hand_step_supported()
    tr.model.net[0].register_forward_hook(lambda module, args, out: out * 2)
    assert not tr.model.hand_step_supported()
    tr.model.net.append(torch.nn.Tanh())
    with pytest.raises(NotImplementedError, match="Tanh"):
        tr.model.train_step(torch.zeros(1, 4, 10), torch.zeros(1, 4))


def test_a_combination_that_cannot_work_is_a_config_error_not_a_failed_row(tmp_path):
    cfg = make_config("technique=ema", f"results_dir={tmp_path}")
    cfg.technique.early_stopping = EarlyStoppingConfig()
    with pytest.raises(ConfigError, match="ema with early_stopping"):
        run_cell(cfg)
    assert not list(tmp_path.rglob("*.json"))


def test_ema_measures_the_average_every_epoch_not_only_at_the_end():
    row = run("technique=ema", "task.epochs=6")[0]
    assert row["history"][-1]["val_loss"] == pytest.approx(row["final"]["val_loss"], rel=1e-6)
    plain = run("technique=none", "task.epochs=6")[0]
    assert row["history"][-1]["val_loss"] != plain["history"][-1]["val_loss"]


def test_same_seed_gives_identical_metrics_even_with_dropout_and_augmentation():
    a = run("technique=all", "task.epochs=5", seeds=(3, 4))
    b = run("technique=all", "task.epochs=5", seeds=(3, 4))
    def metrics(row):  # everything but the timings
        return row["final"], [{k: v for k, v in h.items() if k != "train_s"} for h in row["history"]]

    for ra, rb in zip(a, b):
        assert metrics(ra) == metrics(rb)
    c = run("technique=all", "task.epochs=5", seeds=(5, 4))
    assert c[0]["final"] != a[0]["final"]


def test_the_yardstick_is_timed_before_the_run_and_changes_nothing_in_it(monkeypatch):
    """Each run's rows carry the plain network's step time, measured first; the run's results are the same as
    without it (its model and batches draw before the run reseeds its random streams)."""
    measured = run("technique=all", "task.epochs=3", seeds=(3, 4))
    assert all(r["reference_step_seconds"] > 0 and r["reference_step_iqr"] >= 0 for r in measured)
    calls = []
    monkeypatch.setattr(train_module, "reference_step_seconds", lambda task, seeds, *_: calls.append(seeds) or (1.0, 0.0))
    skipped = run("technique=all", "task.epochs=3", seeds=(3, 4))
    assert calls == [[3, 4]] and skipped[0]["reference_step_seconds"] == 1.0
    for a, b in zip(measured, skipped):
        assert a["final"] == b["final"]
        assert [{k: v for k, v in h.items() if k != "train_s"} for h in a["history"]] == \
               [{k: v for k, v in h.items() if k != "train_s"} for h in b["history"]]


def test_a_diverging_seed_is_recorded_and_the_others_go_on():
    rows = run("technique=none", "task.lr=1000", "task.epochs=3", seeds=(0,))
    assert rows[0]["status"] == "diverged" and rows[0]["diverged_epoch"] == 1


def test_curve_points_come_every_fifth_of_the_run_and_at_its_end():
    history = run("technique=none", "task.epochs=13", seeds=(0,))[0]["history"]
    assert [h["epoch"] for h in history if "test_loss" in h] == [2, 4, 6, 8, 10, 12, 13]  # 13 // 5 = 2
    assert [h["epoch"] for h in history] == list(range(1, 14))  # and validation stays every epoch


def test_row_has_every_promised_field(tmp_path):
    cfg = make_config("technique=l2_es", f"results_dir={tmp_path}", "preset.seeds=2", "task.epochs=25")
    outcome = run_cell(cfg)
    assert (outcome["written"], outcome["skipped"], outcome["failed"]) == (2, 0, 0)
    rows = load_rows(tmp_path)
    assert sorted(r["key"] for r in rows) == sorted(r["key"] for r in outcome["rows"])
    assert sorted(r["seed"] for r in rows) == [0, 1]
    row = rows[0]
    assert row["schema_version"] == SCHEMA_VERSION and row["status"] == "ok"
    assert row["config"]["technique"]["early_stopping"]["patience_frac"] == 0.1
    for key in ("train_loss", "val_loss", "test_loss", "gap"):
        assert key in row["final"]
    assert row["final"]["gap"] == pytest.approx(row["final"]["test_loss"] - row["final"]["train_loss"])
    for key in ("epochs_run", "max_epochs", "best_epoch", "history", "train_seconds", "val_seconds_per_epoch",
                "hook_seconds_per_epoch", "seconds_to_result", "epoch_seconds_median", "epoch_seconds_iqr",
                "reference_step_seconds", "reference_step_iqr",
                "cell_run_id", "uses_validation", "lr_reductions", "samples_per_s", "peak_memory_mb", "n_params",
                "weight_l2_norm", "frac_weights_below_1e-3", "frac_weights_zero", "noise_floor", "data_resampled"):
        assert key in row, key
    assert row["uses_validation"] and row["data_resampled"]
    assert len({r["cell_run_id"] for r in rows}) == 1  # the MLP's seeds trained as one stacked run
    assert row["train_seconds"] == pytest.approx(sum(h["train_s"] for h in row["history"]))
    assert row["seconds_to_result"] == pytest.approx(
        row["train_seconds"] + row["epochs_run"] * (row["hook_seconds_per_epoch"] + row["val_seconds_per_epoch"]))
    assert set(row["history"][0]) == {"epoch", "train_loss_running", "val_loss", "val_acc", "lr", "train_s"}
    assert set(row["history"][-1]) >= {"train_loss", "test_loss"}  # the last epoch is always a curve point
    assert set(row["env"]) >= {"torch", "device", "cuda", "cpu_count", "git_commit"}


def test_the_yardstick_times_passes_until_they_add_up_to_its_minimum(monkeypatch):
    """At least REFERENCE_REPEATS timed passes (after one untimed), more while they sum to less than
    REFERENCE_MIN_SECONDS, at most REFERENCE_MAX_PASSES: a fast network's few passes would otherwise time a few
    milliseconds. A fake clock advancing 1/8 s a reading makes every timed pass last 1/8 s."""
    cfg = make_config("technique=none")
    data = get_task(cfg.task.name).load_data(cfg.task, CPU, [0])
    passes, now = [], [0.0]

    def tick():
        now[0] += 0.125
        return now[0]

    monkeypatch.setattr(train_module, "train_epoch", lambda tr, part, lr: passes.append(len(part)))
    monkeypatch.setattr(train_module, "clock", tick)
    batches = len(data.train) // cfg.task.batch_size  # the MLP's 100 samples: 4 whole batches a pass

    def passes_for(min_seconds):
        passes.clear()
        monkeypatch.setattr(train_module, "REFERENCE_MIN_SECONDS", min_seconds)
        seconds, iqr = train_module.reference_step_seconds(cfg.task, [0], data, CPU)
        assert seconds == 0.125 / batches and iqr == 0.0  # the median pass over its steps; every pass alike
        assert set(passes) == {batches * cfg.task.batch_size}
        return len(passes) - 1  # the first pass is the untimed warm-up

    assert passes_for(0.0) == train_module.REFERENCE_REPEATS
    assert passes_for(2.0) == 16  # 16 passes of 1/8 s add up to 2 s
    assert passes_for(1e9) == train_module.REFERENCE_MAX_PASSES


def test_rerun_skips_finished_seeds_and_runs_only_new_ones(tmp_path):
    cfg = make_config("technique=none", f"results_dir={tmp_path}", "preset.seeds=2")
    run_cell(cfg)
    files = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.json")}
    again = run_cell(cfg)
    assert (again["written"], again["skipped"], len(again["rows"])) == (0, 2, 2)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.json")} == files
    more = make_config("technique=none", f"results_dir={tmp_path}", "preset.seeds=3")
    assert (run_cell(more)["written"], run_cell(more)["skipped"]) == (1, 3)
    assert not list(tmp_path.rglob("*.tmp"))
    assert all(json.loads(p.read_text())["seed"] in (0, 1, 2) for p in tmp_path.rglob("*.json"))


def test_an_interrupt_after_a_cells_last_row_waits_until_the_cell_is_reported(tmp_path, monkeypatch):
    """Ctrl-C landing between a cell's last row and its "finished" report would make a sweep's count of finished
    cells lag the rows on disk: it is held until the report is done, then delivered."""
    import bench.results as results_module

    write_row, reported = results_module.write_row, []

    def write_then_interrupt(path, row):
        write_row(path, row)
        signal.raise_signal(signal.SIGINT)  # delivered before it returns: unheld, KeyboardInterrupt is raised here

    monkeypatch.setattr(results_module, "write_row", write_then_interrupt)
    sigterm = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        run_cell(make_config("technique=none", f"results_dir={tmp_path}"), lambda outcome: reported.append(outcome))
    assert [o["written"] for o in reported] == [1] and len(list(tmp_path.rglob("*.json"))) == 1
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the usual handlers are back
    assert signal.getsignal(signal.SIGTERM) is sigterm


def test_device_choice():
    assert pick_device("cpu") == CPU
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            pick_device("cuda")


@pytest.mark.parametrize("technique", ["none", "batchnorm", "l2_es"])
def test_stacked_cnn_seeds_match_sequential_training(technique, float64, cifar_archive, tmp_path):
    from bench.data import make_cifar_data

    cfg = make_config("task=cifar", f"technique={technique}", f"task.data_path={cifar_archive}", f"task.cache_dir={tmp_path}",
                      "task.n_train=40", "task.n_val=20", "task.n_test=20", "task.width=4", "task.epochs=3",
                      "task.batch_size=16")
    data = make_cifar_data(cfg.task, CPU)
    together = train_seeds(cfg.task, cfg.technique, [0, 1], data, CPU)
    for s in range(2):
        alone = train_seeds(cfg.task, cfg.technique, [s], data, CPU)[0]
        for key in ("train_loss", "val_loss", "test_loss", "test_acc"):
            assert together[s]["final"][key] == pytest.approx(alone["final"][key], rel=1e-9)


def test_failed_and_truncated_rows_are_trained_again_on_rerun(tmp_path, monkeypatch):
    cfg = make_config("technique=none", f"results_dir={tmp_path}", "preset.seeds=2", "vectorize=off")
    real = run_module.train_seeds

    def out_of_memory_for_seed_1(task, technique, seeds, *args, **kwargs):
        if seeds == [1]:
            raise RuntimeError("out of memory")
        return real(task, technique, seeds, *args, **kwargs)

    monkeypatch.setattr(run_module, "train_seeds", out_of_memory_for_seed_1)
    first = run_cell(cfg)
    assert (first["written"], first["failed"]) == (2, 1)
    monkeypatch.setattr(run_module, "train_seeds", real)
    second = run_cell(cfg)
    assert (second["written"], second["skipped"], second["failed"]) == (1, 1, 0)  # only the failed seed
    path = next(p for p in tmp_path.rglob("*.json") if json.loads(p.read_text())["seed"] == 0)
    path.write_text(path.read_text()[:50])  # truncated, e.g. by a full disk
    third = run_cell(cfg)
    assert (third["written"], third["skipped"]) == (1, 1)
    assert {r["status"] for r in load_rows(tmp_path)} == {"ok"}
