"""CIFAR-10 classification with the article's CNN (cross-entropy, accuracy), bf16 autocast on CUDA."""
from __future__ import annotations

import torch

from bench.data import make_cifar_data, normalize_images
from bench.models import DropoutNet, cross_entropy_per_seed
from bench.tasks import Task


class ImageClassification(Task):
    name = "cifar"
    classification = True
    n_classes = 10
    images = True
    stack_on_cpu = False  # grouped convolutions: 0.84x sequential on a 2-core CPU

    def load_data(self, cfg, device, seeds):
        return make_cifar_data(cfg, device)

    def build_model(self, n_seeds, cfg, **regularizer_kwargs):
        net = DropoutNet(n_seeds, cfg.width, **regularizer_kwargs)
        return net.to(memory_format=torch.channels_last)

    def loss(self, out, y):
        return cross_entropy_per_seed(out, y)

    def to_float(self, x):
        return x.float().div_(255)

    def normalize(self, x):
        return normalize_images(x)

    def input_layout(self, x):
        """[S, B, 3, H, W] stored as [B, H, W, S, 3]: DropoutNet's [B, S*3, H, W] channels_last input is then a
        view, not a copy (1.8 ms of a 1,000-image validation pass)."""
        S, B, C, H, W = x.shape
        return torch.empty(B, H, W, S, C, dtype=x.dtype, device=x.device).permute(3, 0, 4, 1, 2).copy_(x)

    def autocast(self, device):
        if device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return super().autocast(device)  # never on CPU: bf16 there is ~300x slower than fp32


TASK = ImageClassification()
