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


def box_masks(n: int, h: int, w: int, area_frac: torch.Tensor, device) -> tuple[torch.Tensor, torch.Tensor]:
    """n boxes (CutMix's rand_bbox): side sqrt(area_frac) of the image's, centre uniform, clipped at the border.
    Returns the masks [n, h, w] (True inside) and each image's share left outside its box [n]."""
    ratio = area_frac.clamp(0, 1).sqrt()
    half_h, half_w = (h * ratio).long() // 2, (w * ratio).long() // 2
    cy, cx = torch.randint(0, h, (n,), device=device), torch.randint(0, w, (n,), device=device)
    rows, cols = torch.arange(h, device=device), torch.arange(w, device=device)
    in_rows = (rows >= (cy - half_h)[:, None]) & (rows < (cy + half_h)[:, None])  # [n, h]
    in_cols = (cols >= (cx - half_w)[:, None]) & (cols < (cx + half_w)[:, None])  # [n, w]
    mask = in_rows[:, :, None] & in_cols[:, None, :]
    return mask, 1 - mask.float().mean(dim=(1, 2))


def cutout(x: torch.Tensor, size_frac: float) -> torch.Tensor:
    """x [N, C, H, W] with a square of side size_frac * H zeroed at a random centre per image (clipped)."""
    n, _, h, w = x.shape
    area = torch.full((n,), size_frac**2, device=x.device)
    mask, _ = box_masks(n, h, w, area, x.device)
    return x.masked_fill(mask[:, None], 0.0)


def scaled_augment(cfg: AugmentConfig) -> AugmentConfig:
    """The settings at cfg.strength: noise, shift, rotation and jitter multiplied by it (shift rounded to whole
    pixels, jitter kept below 1 so colour factors stay positive)."""
    s = cfg.strength
    return AugmentConfig(strength=1.0, input_noise=cfg.input_noise * s, crop_pad=round(cfg.crop_pad * s),
                           flip=cfg.flip and s > 0, rotate_deg=cfg.rotate_deg * s, jitter=min(cfg.jitter * s, 0.9))


def mix_batch(x: torch.Tensor, y: torch.Tensor, lam: torch.Tensor, perm: torch.Tensor, n_classes: int,
              box: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Seed s's batch mixed with itself in order perm[s] [S, B]: inputs lam[s] * x + (1 - lam[s]) * x_perm, or
    x_perm pasted inside box[s] [S, H, W] (CutMix); targets lam * y + (1 - lam) * y_perm, as one-hot
    distributions when n_classes > 0 (class labels), else as values (regression)."""
    S = y.shape[0]
    rows = torch.arange(S, device=x.device)[:, None]
    if box is None:
        x = torch.lerp(x[rows, perm], x, lam.view(S, *[1] * (x.dim() - 1)))
    else:
        x = torch.where(box[:, None, None], x[rows, perm], x)  # [S, 1, 1, H, W] over [S, B, C, H, W]
    if n_classes and y.dim() == 2:
        y = F.one_hot(y, n_classes).float()
    return x, torch.lerp(y[rows, perm], y, lam.view(S, *[1] * (y.dim() - 1)))
