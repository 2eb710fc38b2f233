"""Image augmentation kernels on the device: per-sample affine (shift, flip, rotation) and colour jitter."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from bench.config import AugmentConfig


def augment_images(x: torch.Tensor, cfg: AugmentConfig) -> torch.Tensor:
    """x: float [N, 3, H, W] in [0, 1] -> augmented copy, each image with its own random parameters."""
    n, _, h, w = x.shape
    dev = x.device
    u = torch.rand(5, n, device=dev)  # angle, flip, brightness, contrast, saturation
    angle = (u[0] * 2 - 1) * math.radians(cfg.rotate_deg)
    flip = 1 - 2 * (u[1] < 0.5).float() if cfg.flip else torch.ones(n, device=dev)  # -1: mirror x
    shift = torch.randint(-cfg.crop_pad, cfg.crop_pad + 1, (2, n), device=dev)  # whole pixels, x and y
    shift = shift * torch.tensor([[2 / w], [2 / h]], device=dev)  # in grid units
    cos, sin = angle.cos(), angle.sin()
    theta = torch.stack([cos * flip, -sin, shift[0], sin * flip, cos, shift[1]], dim=1).view(n, 2, 3)
    x = F.grid_sample(x, affine_grid(theta, h, w), mode="nearest", padding_mode="zeros", align_corners=False)
    if cfg.jitter > 0:
        x = color_jitter(x, *(1 + (u[2:] * 2 - 1) * cfg.jitter)).clamp_(0, 1)
    return x


def affine_grid(theta: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """F.affine_grid(theta, [N, C, h, w], align_corners=False): theta [N, 2, 3] applied to the pixel
    centres. Built as x and y planes [N, 2, h, w] and returned as a [N, h, w, 2] view of them:
    ops whose innermost dim has size 2 are slow on CPU (F.affine_grid: 4-8x slower here)."""
    xs = (torch.arange(w, device=theta.device) * 2 + 1) / w - 1  # pixel centres in [-1, 1]
    ys = (torch.arange(h, device=theta.device) * 2 + 1) / h - 1
    t = theta[..., None, None]  # [N, 2, 3, 1, 1]
    per_row = torch.addcmul(t[:, :, 2], t[:, :, 1], ys[:, None])  # [N, 2, h, 1]
    return (t[:, :, 0] * xs + per_row).permute(0, 2, 3, 1)


def color_jitter(x: torch.Tensor, brightness: torch.Tensor, contrast: torch.Tensor,
                 saturation: torch.Tensor) -> torch.Tensor:
    """Brightness, then contrast (towards the image's mean grey), then saturation (towards each
    pixel's grey), factors [N]; no clamping. The three are linear in a pixel's RGB, so they
    compose into one 3x3 matrix and offset per image, applied in one batched matmul:
        out = b*c * (s*x + (1-s) * grey(x)) + (1-c) * b * mean(grey(x))
    """
    n, ch, h, w = x.shape
    gray = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype)  # ITU-R 601, as torchvision
    identity = torch.eye(3, device=x.device, dtype=x.dtype)
    b, c, s = (f.view(n, 1, 1) for f in (brightness, contrast, saturation))
    matrix = torch.lerp(gray.expand(3, 3), identity, s) * (b * c)  # rows: output channels
    offset = ((1 - c) * b) * (x.mean(dim=(2, 3)) @ gray).view(n, 1, 1)
    return torch.baddbmm(offset.expand(n, ch, 1), matrix, x.reshape(n, ch, h * w)).view(n, ch, h, w)
