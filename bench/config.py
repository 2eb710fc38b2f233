"""Structured configs: the dataclasses every run is validated against, registered in Hydra's ConfigStore.

A typo in a YAML file or on the command line fails when the config is composed (Hydra
checks keys and types against these dataclasses); bad values fail in `__post_init__`,
which runs when the CLI turns the composed config into objects, before any training.
The trainer only ever sees these plain dataclasses, never Hydra.
"""
from __future__ import annotations

import math
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

CONF_DIR = str(Path(__file__).resolve().parent / "conf")  # the YAML configs, packaged with the code

DEVICES_HELP = "auto, cpu, cuda or cuda:N"


class ConfigError(ValueError):
    """A config value that can never work; the CLI prints it as one line and exits 2."""


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


@dataclass
class TaskConfig:
    """What is learned and at which size. `conf/task/*.yaml` fills it; `conf/scale/` sizes it per preset."""

    name: str = "mlp"
    epochs: int = 300
    steps: int = 0  # > 0: the budget in optimizer steps; epochs = ceil(steps / batches per epoch) (equal-steps sweeps)
    batch_size: int = 32
    lr: float = 1e-3
    n_train: int = 100
    n_val: int = 100
    n_test: int = 1000
    width: int = 100  # MLP hidden units, or CNN channels of the first conv
    depth: int = 2  # MLP hidden layers (the CNN has a fixed layout)
    # synthetic MLP regression
    in_dim: int = 10
    targets: str = "teacher"  # teacher: y = f(x) + noise; noise: y is pure noise (the article's toy)
    noise_std: float = 0.5  # label noise; the test-MSE floor is noise_std**2
    data_seed: int = 0
    resample_data: bool = True  # MLP: each seed draws its own train/val sets from the teacher (test set shared)
    curve_every: int = 0  # train/test learning-curve points every this many epochs; 0 = max(1, epochs // 5) (val: every epoch)
    # CIFAR-10
    source: str = "auto"  # auto | torchvision | folder (a folder or .tar.gz/.tar/.zip in class-folder layout)
    data_path: Optional[str] = None  # where the source lives; CIFAR's default is $REGBENCH_CIFAR
    cache_dir: str = ".cache"

    def __post_init__(self) -> None:
        from bench.tasks import task_names  # reads file names only (no torch)

        _check(self.name in task_names(), f"unknown task '{self.name}'; valid: {', '.join(task_names())}")
        _check(self.steps >= 0, f"task.steps must be >= 0, got {self.steps}")
        _check(self.curve_every >= 0, f"task.curve_every must be >= 0, got {self.curve_every}")
        if self.steps:
            self.epochs = epochs_for_steps(self.steps, self.n_train, self.batch_size)
        for key in ("epochs", "batch_size", "n_train", "n_val", "n_test", "width", "depth", "in_dim"):
            _check(getattr(self, key) >= 1, f"task.{key} must be >= 1, got {getattr(self, key)}")
        _check(self.batch_size <= self.n_train, f"task.batch_size ({self.batch_size}) must be <= task.n_train ({self.n_train})")
        _check(self.lr > 0, f"task.lr must be > 0, got {self.lr}")
        _check(self.noise_std >= 0, f"task.noise_std must be >= 0, got {self.noise_std}")
        _check(self.targets in ("teacher", "noise"), f"task.targets must be teacher or noise, got '{self.targets}'")
        _check(self.source in ("auto", "torchvision", "folder"),
               f"task.source must be auto, torchvision or folder, got '{self.source}'")


def epochs_for_steps(steps: int, n_train: int, batch_size: int) -> int:
    """Epochs that give at least `steps` optimizer steps at this train size (the last batch may be short)."""
    return max(1, math.ceil(steps / math.ceil(max(n_train, 1) / max(batch_size, 1))))


def patience_epochs(frac: float, epochs: int) -> int:
    """A patience given as a fraction of the epoch budget, in whole epochs (at least 1)."""
    return max(1, round(frac * epochs))


@dataclass
class L2Config:
    weight_decay: float = 1e-4
    decoupled: bool = False  # False: Adam's coupled L2 (the article); True: AdamW

    def __post_init__(self) -> None:
        _check(self.weight_decay >= 0, f"l2.weight_decay must be >= 0, got {self.weight_decay}")


@dataclass
class L1Config:
    strength: float = 1e-3  # lambda * sum|w| over weights (not biases) added to the loss
    proximal: bool = False  # False: subgradient in the gradient; True: soft-threshold after each step (exact zeros)

    def __post_init__(self) -> None:
        _check(self.strength >= 0, f"l1.strength must be >= 0, got {self.strength}")


@dataclass
class DropoutConfig:
    p: float = 0.5  # hidden fully connected layers
    p_conv: float = 0.2  # Dropout2d after conv layers, where the task has them

    def __post_init__(self) -> None:
        for key in ("p", "p_conv"):
            value = getattr(self, key)
            _check(0 <= value < 1, f"dropout.{key} must be in [0, 1), got {value}")


@dataclass
class BatchNormConfig:
    momentum: float = 0.1  # placed before each hidden activation

    def __post_init__(self) -> None:
        _check(0 < self.momentum <= 1, f"batchnorm.momentum must be in (0, 1], got {self.momentum}")


@dataclass
class AugmentConfig:
    strength: float = 1.0  # multiplies input_noise, crop_pad, rotate_deg and jitter (the augment sweep's knob)
    input_noise: float = 0.1  # MLP: std of Gaussian noise added to inputs
    crop_pad: int = 4  # CIFAR: random translation of up to this many pixels (pad + crop)
    flip: bool = True  # CIFAR: random horizontal flip
    rotate_deg: float = 10.0  # CIFAR: random rotation in [-deg, deg]
    jitter: float = 0.2  # CIFAR: brightness/contrast/saturation factors in [1-j, 1+j]

    def __post_init__(self) -> None:
        _check(self.strength >= 0, f"augment.strength must be >= 0, got {self.strength}")
        _check(self.input_noise >= 0, f"augment.input_noise must be >= 0, got {self.input_noise}")
        _check(self.rotate_deg >= 0, f"augment.rotate_deg must be >= 0, got {self.rotate_deg}")
        _check(self.crop_pad >= 0, f"augment.crop_pad must be >= 0, got {self.crop_pad}")
        _check(0 <= self.jitter < 1, f"augment.jitter must be in [0, 1), got {self.jitter}")


@dataclass
class EarlyStoppingConfig:
    patience_frac: float = 0.1  # stop after this fraction of the epoch budget without improvement
    min_delta: float = 1e-3  # an epoch improves when val loss < best - min_delta

    def __post_init__(self) -> None:
        _check(0 < self.patience_frac <= 1, f"early_stopping.patience_frac must be in (0, 1], got {self.patience_frac}")
        _check(self.min_delta >= 0, f"early_stopping.min_delta must be >= 0, got {self.min_delta}")


@dataclass
class LRPlateauConfig:
    patience_frac: float = 0.05  # halve (factor) after this fraction of the epoch budget without improvement
    factor: float = 0.5

    def __post_init__(self) -> None:
        _check(0 < self.patience_frac <= 1, f"lr_plateau.patience_frac must be in (0, 1], got {self.patience_frac}")
        _check(0 < self.factor < 1, f"lr_plateau.factor must be in (0, 1), got {self.factor}")


@dataclass
class LabelSmoothingConfig:
    eps: float = 0.1  # target = (1 - eps) * one-hot + eps / classes (Szegedy et al. 2016, Inception-v3)

    def __post_init__(self) -> None:
        _check(0 <= self.eps < 1, f"label_smoothing.eps must be in [0, 1), got {self.eps}")


@dataclass
class MixupConfig:
    alpha: float = 1.0  # mixing weight lambda ~ Beta(alpha, alpha); 1.0 is the CIFAR-10 setting of mixup and CutMix
    cutmix: bool = False  # False: blend whole inputs (Zhang et al. 2018); True: paste a box (Yun et al. 2019, images)

    def __post_init__(self) -> None:
        _check(self.alpha > 0, f"mixup.alpha must be > 0, got {self.alpha}")


@dataclass
class CutoutConfig:
    size_frac: float = 0.5  # side of the zeroed square / image side: 16 px on CIFAR (DeVries & Taylor 2017)

    def __post_init__(self) -> None:
        _check(0 < self.size_frac <= 1, f"cutout.size_frac must be in (0, 1], got {self.size_frac}")


@dataclass
class EMAConfig:
    decay: float = 0.999  # per step, warmed up as min(decay, (1 + t) / (10 + t)) (TensorFlow's EMA, timm's ModelEma)

    def __post_init__(self) -> None:
        _check(0 < self.decay < 1, f"ema.decay must be in (0, 1), got {self.decay}")


@dataclass
class TechniqueConfig:
    """Which regularizers are on. A piece left at None is off; combinations set several."""

    name: str = "none"
    l2: Optional[L2Config] = None
    l1: Optional[L1Config] = None
    dropout: Optional[DropoutConfig] = None
    batchnorm: Optional[BatchNormConfig] = None
    augment: Optional[AugmentConfig] = None
    early_stopping: Optional[EarlyStoppingConfig] = None
    lr_plateau: Optional[LRPlateauConfig] = None
    label_smoothing: Optional[LabelSmoothingConfig] = None
    mixup: Optional[MixupConfig] = None
    cutout: Optional[CutoutConfig] = None
    ema: Optional[EMAConfig] = None

    def pieces(self) -> list[str]:
        """Names of the regularizers switched on, in a fixed order."""
        return [key for key in PIECES if getattr(self, key) is not None]


PIECES = tuple(f.name for f in dataclasses.fields(TechniqueConfig) if f.name != "name")  # in field order


@dataclass
class PresetConfig:
    """How much to run: seeds here, epochs and data sizes in conf/scale/<task>_<preset>.yaml."""

    name: str = "quick"
    seeds: int = 3
    first_seed: int = 0

    def __post_init__(self) -> None:
        _check(self.seeds >= 1, f"preset.seeds must be >= 1, got {self.seeds}")

    def seed_list(self) -> list[int]:
        return list(range(self.first_seed, self.first_seed + self.seeds))


@dataclass
class Config:
    task: TaskConfig = field(default_factory=TaskConfig)
    technique: TechniqueConfig = field(default_factory=TechniqueConfig)
    preset: PresetConfig = field(default_factory=PresetConfig)
    grid: str = "adhoc"  # which grid a cell belongs to (set by conf/grid/*.yaml); the report compares within a grid
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    vectorize: str = "auto"  # train all seeds of a cell as one stacked ensemble: auto | on | off
    threads: int = 0  # torch CPU threads; 0 = all cores split evenly among parallel workers
    results_dir: str = "results/runs"
    progress: bool = True

    def __post_init__(self) -> None:
        _check(self.vectorize in ("auto", "on", "off"), f"vectorize must be auto, on or off, got '{self.vectorize}'")
        _check(self.threads >= 0, f"threads must be >= 0, got {self.threads}")
        dev = self.device
        ok = dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit())
        _check(ok, f"unknown device '{dev}'; use {DEVICES_HELP}")


def register_configs() -> None:
    """Store the schema under a name outside every selectable group, so `glob(*)` never lists it."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="regbench_schema", node=Config)


def technique_names() -> list[str]:
    """Every technique: one YAML each in bench/conf/technique/ (the one list of them)."""
    return sorted(p.stem for p in (Path(CONF_DIR) / "technique").glob("*.yaml"))


def compose_config(*overrides: str) -> Config:
    """The config `python -m bench <overrides>` runs, composed by Hydra, as the dataclasses."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    register_configs()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return OmegaConf.to_object(compose(config_name="config", overrides=list(overrides)))


def load_technique(name: str) -> TechniqueConfig:
    """A technique as its YAML defines it, composed by Hydra (combinations' defaults lists included)."""
    return compose_config(f"technique={name}").technique
