"""Speed benchmarks (pytest-benchmark), run by `make perf` against the committed baseline.

* one training epoch per task, for the baseline and each single technique
* the article's own per-model eager loop next to regbench's stacked-seed path, same work
* the CNN's training FLOP rate against this machine's measured fp32 matmul rate
* the share of the CNN step spent on the input pipeline (gather, augmentation, normalization)
* measurement passes (validation, curve points) against training, each task at the quick preset
* one quick MLP cell end to end (`regbench`) against importing torch plus its training time
* the same cell as a whole process against the article's loop as a whole process, same training (>= 3.5x)

Each benchmark stores what it measured in `extra_info`, which lands in the JSON.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from bench.config import TaskConfig, TechniqueConfig, compose_config, load_technique, technique_names
from bench.data import Split, TaskData, make_mlp_data
from bench.tasks import get_task
from bench.regularizers import build_regularizers, inapplicable
from bench.run import pick_device
from bench.inputs import epoch_batches, model_inputs
from bench.train import make_trainer, sync, train_epoch, train_seeds
from article_loop import article_mlp_loop

DEVICE = pick_device("auto")
SEEDS = [0, 1, 2]
TECHNIQUES = {name: load_technique(name) for name in technique_names()}
SINGLES = ["none"] + [name for name, t in TECHNIQUES.items() if len(t.pieces()) == 1]  # baseline + one piece each
MLP = TaskConfig(name="mlp", n_train=100, batch_size=25, resample_data=False)  # one data set shared by the seeds
CNN = TaskConfig(name="cifar", n_train=2000, batch_size=128, width=16)  # the quick preset's CNN
CNN_ARTICLE = TaskConfig(name="cifar", n_train=1280, batch_size=128, width=64)  # the article's DropoutNet
CNN_WIDTH24 = dataclasses.replace(CNN, width=24)  # the quick CNN 1.5x wider: the narrowest width near 55%


def fake_cifar(n: int) -> Split:
    gen = torch.Generator().manual_seed(0)
    return Split(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=gen).to(DEVICE),
                 torch.randint(0, 10, (n,), generator=gen).to(DEVICE))


def epoch_runner(task: TaskConfig, technique: TechniqueConfig, seeds: list[int], train: Split):
    tr = make_trainer(task, technique, seeds, DEVICE)
    lr = torch.full((len(seeds),), task.lr, device=DEVICE)

    def run():
        train_epoch(tr, train, lr)
        sync(DEVICE)

    run()  # warm-up
    return run


def record(benchmark, task: TaskConfig, technique: str, samples: int, **extra):
    median = benchmark.stats.stats.median
    benchmark.extra_info.update(task=task.name, technique=technique, device=str(DEVICE),
                                samples_per_s=samples / median, **extra)


@pytest.mark.parametrize("technique", [t for t in SINGLES if not inapplicable(TECHNIQUES[t], MLP)])
def test_mlp_epoch(benchmark, technique):
    train = make_mlp_data(MLP, DEVICE).train
    run = epoch_runner(MLP, TECHNIQUES[technique], SEEDS, train)
    benchmark.pedantic(run, rounds=30, iterations=5, warmup_rounds=2)
    record(benchmark, MLP, technique, MLP.n_train * len(SEEDS), seeds=len(SEEDS))


@pytest.mark.parametrize("technique", SINGLES)
def test_cnn_epoch(benchmark, technique):
    run = epoch_runner(CNN, TECHNIQUES[technique], [0], fake_cifar(CNN.n_train))
    benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
    record(benchmark, CNN, technique, CNN.n_train, width=CNN.width)


# --------------------------------------------------------------------------- the article's loop, same work


@pytest.mark.parametrize("n_seeds", [3, 5, 10])
def test_mlp_vs_article_loop(benchmark, n_seeds):
    """Same model, 100 samples, batch 25, 20 epochs, n_seeds models: the article's loop vs the stacked path."""
    epochs, seeds = 20, list(range(n_seeds))
    data = make_mlp_data(MLP, torch.device("cpu")).train
    tr = make_trainer(MLP, TECHNIQUES["none"], seeds, torch.device("cpu"))
    lr = torch.full((n_seeds,), MLP.lr)

    def ours():
        for _ in range(epochs):
            train_epoch(tr, data, lr)

    article_mlp_loop(data.x, data.y, seeds[:1], 2)  # warm-up
    runs = []
    for _ in range(3):  # the median of 3 runs, as noisy as our side's median of 5 rounds
        t = time.perf_counter()
        article_mlp_loop(data.x, data.y, seeds, epochs)
        runs.append(time.perf_counter() - t)
    article_s = statistics.median(runs)
    benchmark.pedantic(ours, rounds=5, iterations=1, warmup_rounds=1)
    steps = n_seeds * epochs * 4  # model-steps (4 batches of 25 per epoch)
    ratio = article_s / benchmark.stats.stats.median
    benchmark.extra_info.update(task="mlp", technique="none", device="cpu", seeds=n_seeds,
                                article_us_per_model_step=1e6 * article_s / steps,
                                ours_us_per_model_step=1e6 * benchmark.stats.stats.median / steps,
                                speedup_vs_article=ratio)
    print(f"\nMLP, {n_seeds} seeds: article loop {1e6 * article_s / steps:.0f} us/model-step, "
          f"regbench {1e6 * benchmark.stats.stats.median / steps:.0f} us/model-step: {ratio:.1f}x faster")


# --------------------------------------------------------------------------- CNN FLOP rate and data-pipeline share


def matmul_flops_per_s(n: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(n, n, device=DEVICE), torch.randn(n, n, device=DEVICE)
    a @ b
    sync(DEVICE)
    t = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync(DEVICE)
    return 2 * n**3 * repeats / (time.perf_counter() - t)


def training_flops_per_image(task: TaskConfig) -> float:
    """Forward + backward FLOPs of one training step, counted by torch's FlopCounterMode, per image."""
    tr = make_trainer(task, TECHNIQUES["none"], [0], DEVICE)
    x = model_inputs(fake_cifar(task.batch_size).x[None], get_task("cifar"))
    y = torch.zeros(1, task.batch_size, dtype=torch.long, device=DEVICE)
    with FlopCounterMode(display=False) as counter:
        tr.task.loss(tr.model(x), y).sum().backward()
    return counter.get_total_flops() / task.batch_size


@pytest.mark.parametrize("task", [CNN_ARTICLE, CNN, CNN_WIDTH24], ids=["width64", "width16", "width24"])
def test_cnn_flop_rate(benchmark, task):
    """Training FLOP rate over the matmul rate, the two measured in turn (the matmul rate just before each
    epoch), so a drift of the shared machine's speed moves both sides of each ratio alike; median of 5.
    Width 24 is not a preset: it shows what a wider quick CNN would buy in rate, and cost in time per image."""
    run = epoch_runner(task, TECHNIQUES["none"], [0], fake_cifar(task.n_train))
    peaks = []
    benchmark.pedantic(run, setup=lambda: peaks.append(matmul_flops_per_s()), rounds=5, iterations=1, warmup_rounds=1)
    flops = training_flops_per_image(task)
    epochs = benchmark.stats.stats.data  # the rounds' times, in order; peaks[0] preceded the warm-up
    fraction = statistics.median(task.n_train * flops / t / peak for t, peak in zip(epochs, peaks[1:]))
    images_per_s = task.n_train / benchmark.stats.stats.median
    benchmark.extra_info.update(task="cifar", technique="none", device=str(DEVICE), width=task.width,
                                samples_per_s=images_per_s, train_gflop_per_image=flops / 1e9,
                                achieved_gflop_per_s=images_per_s * flops / 1e9,
                                matmul_gflop_per_s=statistics.median(peaks[1:]) / 1e9,
                                fraction_of_matmul_peak=fraction, threads=torch.get_num_threads())
    print(f"\nCNN width {task.width}: {images_per_s:.0f} img/s x {flops / 1e6:.1f} MFLOP = "
          f"{images_per_s * flops / 1e9:.1f} GFLOP/s; fp32 matmul {statistics.median(peaks[1:]) / 1e9:.1f} GFLOP/s; "
          f"ratio of each epoch to the matmul rate just before it: median {fraction:.0%}")


@pytest.mark.parametrize("task", [CNN_ARTICLE, CNN], ids=["width64", "width16"])
def test_cnn_data_pipeline_share(benchmark, task):
    """Per batch: the trainer's input pipeline (gather + augment + normalize, see epoch_batches) against
    one full training step with augment (pipeline included)."""
    augment = build_regularizers(TECHNIQUES["augment"], task, 1)
    train = fake_cifar(task.n_train)
    perms = torch.randperm(task.n_train, device=DEVICE)[None]
    n_batches = math.ceil(task.n_train / task.batch_size)

    def pipeline():
        for _ in epoch_batches(train, perms, task.batch_size, get_task("cifar"), augment):
            pass
        sync(DEVICE)

    benchmark.pedantic(pipeline, rounds=10, iterations=1, warmup_rounds=1)
    run = epoch_runner(task, TECHNIQUES["augment"], [0], train)
    t = time.perf_counter()
    run()
    step = (time.perf_counter() - t) / n_batches
    per_batch = benchmark.stats.stats.median / n_batches
    share = per_batch / step
    benchmark.extra_info.update(task="cifar", technique="augment", device=str(DEVICE), width=task.width,
                                pipeline_ms_per_batch=1e3 * per_batch, step_ms=1e3 * step,
                                pipeline_share_of_step=share)
    print(f"\nCNN width {task.width}: data pipeline + augmentation {1e3 * per_batch:.2f} ms "
          f"of a {1e3 * step:.1f} ms step ({share:.1%})")


@pytest.mark.skipif(os.environ.get("REGBENCH_PERF_VECTORIZED_CNN") != "1" and DEVICE.type != "cuda",
                    reason="set REGBENCH_PERF_VECTORIZED_CNN=1 to measure stacked CNN seeds on CPU")
def test_cnn_stacked_vs_sequential_seeds(benchmark):
    """3 seeds of the quick CNN as one grouped-conv stack vs one after another (decides `vectorize=auto`).
    Also tried (issue 26, not kept): torch.func vmap(grad(functional_call)) over 3 seeds of the same net (plain
    NCHW layers: vmap refuses channels_last), batch 128, 6 alternated rounds of 5 steps: 0.54-0.72x sequential
    with one thread, 0.16-0.51x with two on a loaded VM; its conv batching rule is a grouped convolution too."""
    train = fake_cifar(CNN.n_train)
    stacked = epoch_runner(CNN, TECHNIQUES["none"], SEEDS, train)
    singles = [epoch_runner(CNN, TECHNIQUES["none"], [s], train) for s in SEEDS]
    t = time.perf_counter()
    for run in singles:
        run()
    sequential = time.perf_counter() - t
    benchmark.pedantic(stacked, rounds=5, iterations=1, warmup_rounds=0)
    benchmark.extra_info.update(task="cifar", technique="none", device=str(DEVICE),
                                sequential_s=sequential, stacked_s=benchmark.stats.stats.median,
                                stacked_speedup=sequential / benchmark.stats.stats.median)
    print(f"\nCNN width {CNN.width}, 3 seeds: one after another {sequential:.2f} s/epoch, stacked "
          f"{benchmark.stats.stats.median:.2f} s/epoch ({sequential / benchmark.stats.stats.median:.2f}x)")


# --------------------------------------------------------------------------- what a user runs: presets, the CLI


@pytest.mark.parametrize("task", ["mlp", "cifar"])
def test_measurement_share(benchmark, task):
    """A `none` run at the quick preset (the MLP: all its seeds stacked; CIFAR: one seed, random images of the
    preset's sizes): validation every epoch plus the curve points, as a share of the training steps' time."""
    cfg = compose_config(f"task={task}", "preset=quick")  # `regbench task=<task>`: quick preset and its scale
    seeds = list(range(cfg.preset.seeds)) if task == "mlp" else [0]
    if task == "mlp":
        data = make_mlp_data(cfg.task, DEVICE, seeds)
    else:
        data = TaskData(fake_cifar(cfg.task.n_train), fake_cifar(cfg.task.n_val), fake_cifar(cfg.task.n_test), "random")
    shares = []

    def run():
        row = train_seeds(cfg.task, cfg.technique, seeds, data, DEVICE)[0]
        measuring = (row["val_seconds_per_epoch"] + row["curve_seconds_per_epoch"]) * row["epochs_run"]
        shares.append(measuring / row["train_seconds"])

    benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=0)
    share = statistics.median(shares)
    benchmark.extra_info.update(task=task, technique="none", device=str(DEVICE), seeds=len(seeds),
                                epochs=cfg.task.epochs, measurement_share_of_training=share)
    print(f"\n{task} at the quick preset: validation + curve points = {share:.1%} of the training steps' time")


def test_quick_mlp_cell_end_to_end(benchmark, tmp_path):
    """`regbench task=mlp technique=none device=cpu` (10 seeds, 300 epochs) in a fresh process, against a bare
    `import torch` plus the cell's own training-step time (from its rows)."""
    results = tmp_path / "runs"
    command = [str(Path(sys.executable).with_name("regbench")), "task=mlp", "technique=none", "device=cpu",
               "progress=false", f"results_dir={results}", f"hydra.run.dir={tmp_path / 'out'}"]

    def cell():
        out = subprocess.run(command, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr

    def import_torch() -> float:
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch"], check=True)
        return time.perf_counter() - t

    benchmark.pedantic(cell, setup=lambda: shutil.rmtree(results, ignore_errors=True), rounds=5, warmup_rounds=1)
    torch_s = statistics.median(import_torch() for _ in range(5))
    rows = [json.loads(p.read_text()) for p in results.rglob("*.json")]
    training_s = rows[0]["train_seconds"] * rows[0]["n_seeds_stacked"]  # the stack's training steps, last round
    ratio = benchmark.stats.stats.median / (torch_s + training_s)
    benchmark.extra_info.update(task="mlp", technique="none", device="cpu", import_torch_s=torch_s,
                                training_s=training_s, end_to_end_over_import_plus_training=ratio)
    print(f"\nquick MLP cell end to end {benchmark.stats.stats.median:.2f} s; import torch {torch_s:.2f} s + "
          f"training {training_s:.2f} s: {ratio:.2f}x")


# The issue-26 target was 3x. This benchmark on the 2-core VM, quiet: 4.17x (rounds 3.82-4.96x); 5 paired
# whole-process runs the same hour: 4.50x (4.07-5.92x), and 3.84x (3.08-4.18x) for the code before issue 26.
# 3.5 is ~16% under the lower of the two medians (their gap, minutes apart, is the VM's drift) and above the target.
WHOLE_PROCESS_MIN = 3.5


def test_quick_mlp_cell_whole_process_vs_article_loop(benchmark, tmp_path):
    """`regbench task=mlp technique=none` (the quick cell: 10 seeds x 300 epochs, yardstick, validation, curves,
    rows) as a whole process, start to exit, against a process doing the same training in the article's plain
    loop (benchmarks/article_loop.py: 10 models x 300 epochs), the two alternated round by round so the machine's
    drift moves both; the median of the rounds' ratios must stay >= WHOLE_PROCESS_MIN."""
    results = tmp_path / "runs"
    cell_command = [str(Path(sys.executable).with_name("regbench")), "task=mlp", "technique=none", "preset=quick",
                    "device=cpu", "progress=false", f"results_dir={results}", f"hydra.run.dir={tmp_path / 'out'}"]
    plain_command = [sys.executable, str(Path(__file__).with_name("article_loop.py")), "10", "300"]
    plain_s = []

    def before_each_round():  # not timed by the benchmark: the plain loop's process, then a fresh results_dir
        t = time.perf_counter()
        subprocess.run(plain_command, check=True)
        plain_s.append(time.perf_counter() - t)
        shutil.rmtree(results, ignore_errors=True)

    def cell():
        out = subprocess.run(cell_command, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr

    benchmark.pedantic(cell, setup=before_each_round, rounds=5, warmup_rounds=0)
    ratios = [p / c for p, c in zip(plain_s, benchmark.stats.stats.data)]
    ratio = statistics.median(ratios)
    benchmark.extra_info.update(task="mlp", technique="none", device="cpu", seeds=10, epochs=300,
                                plain_loop_s=statistics.median(plain_s), whole_process_speedup=ratio,
                                round_speedups=ratios)
    print(f"\nquick MLP cell, whole process: regbench {benchmark.stats.stats.median:.2f} s, the article's loop "
          f"{statistics.median(plain_s):.2f} s: {ratio:.2f}x (rounds {min(ratios):.2f}-{max(ratios):.2f}x)")
    assert ratio >= WHOLE_PROCESS_MIN, f"whole process {ratio:.2f}x the article's loop, under {WHOLE_PROCESS_MIN}x"
