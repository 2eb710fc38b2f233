"""Networks as stacks of S independent copies (one per seed) that train in a single pass.

Every layer keeps a leading seed dimension: inputs are [S, batch, ...], outputs are
[S, batch, ...], and seed s only ever touches its own slice of each parameter. With
S = 1 these are ordinary networks. This is where dropout and batch norm are placed.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class SeedLinear(nn.Module):
    """S independent y = x @ W + b, one batched matmul (weight [S, in, out]); multiply-and-sum for one output on CPU."""

    def __init__(self, n_seeds: int, fan_in: int, fan_out: int):
        super().__init__()
        self.fan_in = fan_in
        bound = 1.0 / math.sqrt(fan_in)  # nn.Linear's default; init_per_seed redraws it per seed
        self.weight = nn.Parameter(torch.empty(n_seeds, fan_in, fan_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_seeds, 1, fan_out).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight.shape[2] == 1 and x.is_cpu:  # one output: multiply and sum, 1.3-2.3x faster than baddbmm's GEMV
            return torch.sum(x * self.weight.transpose(1, 2), -1, keepdim=True).add_(self.bias)
        return torch.baddbmm(self.bias, x, self.weight)

    @torch.no_grad()
    def hand_backward(self, x: torch.Tensor, grad: torch.Tensor, input_grad: bool = True) -> torch.Tensor | None:
        """Given the layer's input x and d(loss)/d(output), write the parameters' .grad and return d(loss)/d(x)."""
        weight, one_output = self.weight, self.weight.shape[2] == 1 and x.is_cpu
        if one_output:  # the same products as the GEMMs, by multiply and sum (see forward)
            torch.sum(x * grad, 1, keepdim=True, out=_grad_of(weight).transpose(1, 2))
        else:
            torch.bmm(x.transpose(1, 2), grad, out=_grad_of(weight))
        torch.sum(grad, 1, keepdim=True, out=_grad_of(self.bias))
        if not input_grad:
            return None
        return grad * weight.transpose(1, 2) if one_output else torch.bmm(grad, weight.transpose(1, 2))


class SeedBatchNorm(nn.Module):
    """BatchNorm1d per seed: statistics over the batch of each seed separately. x: [S, B, F]."""

    def __init__(self, n_seeds: int, features: int, momentum: float, eps: float = 1e-5):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.weight = nn.Parameter(torch.ones(n_seeds, 1, features))
        self.bias = nn.Parameter(torch.zeros(n_seeds, 1, features))
        self.register_buffer("running_mean", torch.zeros(n_seeds, 1, features))
        self.register_buffer("running_var", torch.ones(n_seeds, 1, features))

    def batch_stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training mode: x minus each seed's batch mean, and each seed's batch 1/std; updates the running
        statistics. Two passes (mean, then the mean square of the centred values), not torch.var_mean: on the
        2-core CPU var_mean took 300-340 us for any shape tried ([10, 25, 100] or [1, 128, 512]), the two passes
        30 us, and var_mean was 31% of a depth-32 batch-norm MLP's step."""
        mean = x.mean(1, keepdim=True)
        centred = x - mean
        var = centred.square().mean(1, keepdim=True)
        with torch.no_grad():
            n = x.shape[1]
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var * (n / max(n - 1, 1)), self.momentum)
        return centred, torch.rsqrt(var + self.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            centred, rstd = self.batch_stats(x)
            return centred * rstd * self.weight + self.bias
        scale = torch.rsqrt(self.running_var + self.eps) * self.weight  # eval: one pass over x
        return torch.addcmul(self.bias - self.running_mean * scale, x, scale)


class SeedDropout(nn.Module):
    """Dropout(p): zero each value with probability p, scale the rest by 1/(1-p); identity in eval."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * dropout_mask(x, self.p) if self.training else x


def dropout_mask(x: torch.Tensor, p: float) -> torch.Tensor:
    """Keep mask scaled by 1/(1-p), drawn as uniform >= p: the distribution of nn.Dropout's
    bernoulli_ mask at 1/3.5 of its cost on CPU."""
    return torch.rand_like(x).ge_(p).div_(1 - p)


class MLP(nn.Module):
    """The article's regression MLP: in -> [width] * depth -> 1, ReLU.

    Per hidden layer: Linear -> (BatchNorm) -> ReLU -> (Dropout).
    """

    def __init__(self, n_seeds: int, in_dim: int, width: int, depth: int, out_dim: int = 1,
                 dropout: float = 0.0, batchnorm_momentum: float | None = None,
                 dropout_conv: float = 0.0):  # no conv layers here: accepted so every task takes the same kwargs
        super().__init__()
        layers: list[nn.Module] = []
        fan_in = in_dim
        for _ in range(depth):
            layers.append(SeedLinear(n_seeds, fan_in, width))
            if batchnorm_momentum is not None:
                layers.append(SeedBatchNorm(n_seeds, width, batchnorm_momentum))
            layers.append(nn.ReLU())
            if dropout > 0:
                layers.append(SeedDropout(dropout))
            fan_in = width
        layers.append(SeedLinear(n_seeds, fan_in, out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [S, B, in] -> [S, B, out]
        return self.net(x)

    def hand_step_supported(self) -> bool:
        """train_step knows every layer here and no forward hook is set (else the trainer uses autograd)."""
        known = (SeedLinear, SeedBatchNorm, nn.ReLU, SeedDropout)
        return all(type(m) in known and not m._forward_hooks for m in self.net)

    @torch.no_grad()
    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Training-mode forward and backward by hand, for the MSE loss of each seed on (x, y).

        Writes (overwrites) every parameter's .grad and returns the losses [S]. Same math and
        same dropout draws as forward() + autograd (tests/test_models.py checks the gradients);
        it exists because the small MLP is launch-bound: autograd's bookkeeping costs more
        than its matmuls.
        """
        layers, saved = list(self.net), []  # saved: per layer, what its backward needs
        h = x
        for layer in layers:
            if isinstance(layer, SeedLinear):
                saved.append(h)
                h = layer.forward(h)
            elif isinstance(layer, SeedBatchNorm):
                centred, rstd = layer.batch_stats(h)
                h = centred.mul_(rstd)
                saved.append((h, rstd))
                h = torch.addcmul(layer.bias, h, layer.weight)
            elif isinstance(layer, nn.ReLU):
                h = h.relu_()
                saved.append(h)
            elif isinstance(layer, SeedDropout):  # the same draws as its forward
                mask = dropout_mask(h, layer.p)
                h = h * mask
                saved.append(mask)
            else:
                raise NotImplementedError(f"train_step does not know {type(layer).__name__}; train with autograd")
        err = h.squeeze(-1) - y
        grad = err.unsqueeze(-1).mul(2 / err.shape[1])  # d(mean squared error)/d(output)
        for layer, kept in zip(reversed(layers), reversed(saved)):
            if isinstance(layer, SeedLinear):
                grad = layer.hand_backward(kept, grad, input_grad=layer is not layers[0])
            elif isinstance(layer, SeedBatchNorm):
                xhat, rstd = kept
                n = grad.shape[1]
                g_weight = torch.sum(grad * xhat, 1, keepdim=True, out=_grad_of(layer.weight))
                g_bias = torch.sum(grad, 1, keepdim=True, out=_grad_of(layer.bias))
                # weight * rstd * (grad - mean(grad) - xhat * mean(grad * xhat)), means over the batch
                grad = (grad - torch.addcmul(g_bias / n, xhat, g_weight / n)).mul_(layer.weight * rstd)
            elif isinstance(layer, nn.ReLU):
                grad = torch.ops.aten.threshold_backward(grad, kept, 0)
            else:
                grad = grad * kept
        return err.square().mean(1)


class SeedConvPool(nn.Module):
    """conv3x3 (S seeds as conv groups) -> (BatchNorm2d) -> 2x2 max-pool, with nn.Conv2d's weight and bias.

    The bias is added outside the convolution: where there is no BN, after the pool (the same function:
    max commutes with adding a per-channel constant), on 4x fewer values; with BN, before it (BN's batch mean
    cancels it in training, its running mean keeps it). Measured on the 2-core CPU: oneDNN's bias gradient of
    the 3-channel first conv takes 4.5 ms a batch of 128 (its weight gradient 1.0 ms, a sum of the same values
    0.25 ms). Without that bias gradient the quick preset's CNN trains 1.15-1.25x faster.
    """

    def __init__(self, n_seeds: int, c_in: int, c_out: int, batchnorm_momentum: float | None = None):
        super().__init__()
        self.groups, self.fan_in = n_seeds, c_in * 9
        bound = 1.0 / math.sqrt(self.fan_in)  # nn.Conv2d's default; init_per_seed redraws it per seed
        self.weight = nn.Parameter(torch.empty(n_seeds * c_out, c_in, 3, 3).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_seeds * c_out).uniform_(-bound, bound))
        self.bn = None if batchnorm_momentum is None else nn.BatchNorm2d(n_seeds * c_out, momentum=batchnorm_momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, S*c_in, H, W] -> [B, S*c_out, H/2, W/2]
        h = F.conv2d(x, self.weight, None, padding=1, groups=self.groups)
        bias = self.bias.to(h.dtype).view(1, -1, 1, 1)  # under autocast h is bf16: keep it so
        if self.bn is None:
            return max_pool_2x2(h) + bias
        return max_pool_2x2(self.bn(h + bias))


def max_pool_2x2(h: torch.Tensor) -> torch.Tensor:
    """F.max_pool2d(h, 2) for even H, W. On CPU, for a tensor that needs no gradient (evaluation), two maximums
    of strided views: the same values at half the time (measured: 5 vs 10 ms for h of [1000, 16, 32, 32]), as
    F.max_pool2d also writes the indices a backward would need."""
    if h.requires_grad or not h.is_cpu:
        return F.max_pool2d(h, 2)
    rows = torch.maximum(h[..., 0::2, :], h[..., 1::2, :])
    return torch.maximum(rows[..., 0::2], rows[..., 1::2])


class DropoutNet(nn.Module):
    """The article's CIFAR CNN with width w (w=64 is the article's net), S seeds as conv groups.

    Convolutions run in channels_last layout (measured faster on CPU and GPU).

    conv3x3(3->w) -> (BN) -> maxpool -> ReLU -> (Dropout2d)   (pool before ReLU: the same function, as
    conv3x3(w->2w) -> (BN) -> maxpool -> ReLU -> (Dropout2d)    ReLU is monotonic, on 4x fewer values)
    FC(2w*8*8 -> 8w) -> (BN) -> ReLU -> (Dropout) -> FC(8w -> 10)
    """

    def __init__(self, n_seeds: int, width: int = 64, n_classes: int = 10, dropout: float = 0.0,
                 dropout_conv: float = 0.0, batchnorm_momentum: float | None = None):
        super().__init__()
        S, w = n_seeds, width
        self.n_seeds = S
        bn = batchnorm_momentum is not None

        def conv_block(c_in: int, c_out: int) -> nn.Sequential:
            layers: list[nn.Module] = [SeedConvPool(S, c_in, c_out, batchnorm_momentum), nn.ReLU()]
            if dropout_conv > 0:
                layers.append(nn.Dropout2d(dropout_conv))
            return nn.Sequential(*layers)

        self.features = nn.Sequential(conv_block(3, w), conv_block(w, 2 * w))
        head: list[nn.Module] = [SeedLinear(S, 2 * w * 8 * 8, 8 * w)]
        if bn:
            head.append(SeedBatchNorm(S, 8 * w, batchnorm_momentum))
        head.append(nn.ReLU())
        if dropout > 0:
            head.append(SeedDropout(dropout))
        head.append(SeedLinear(S, 8 * w, n_classes))
        self.head = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [S, B, 3, H, W] -> [S, B, classes]
        S, B = x.shape[:2]
        x = x.transpose(0, 1).reshape(B, S * 3, *x.shape[3:]).contiguous(memory_format=torch.channels_last)
        h = self.features(x)
        h = h.reshape(B, S, -1).transpose(0, 1)
        return self.head(h)


def _grad_of(param: nn.Parameter) -> torch.Tensor:
    """The parameter's .grad buffer, created on first use (the optimizer normally provides it)."""
    if param.grad is None:
        param.grad = torch.empty_like(param)
    return param.grad


def init_per_seed(model: nn.Module, generators: list[torch.Generator]) -> None:
    """PyTorch's default init (U(+-1/sqrt(fan_in)) for weights and biases), seed s drawing from generators[s].

    Each seed draws only from its own generator, so its weights do not depend on how many
    other seeds share the stack.
    """
    S = len(generators)
    with torch.no_grad():
        for module in model.modules():
            if not hasattr(module, "fan_in"):
                continue
            bound = 1.0 / math.sqrt(module.fan_in)
            for s, gen in enumerate(generators):
                for param in (module.weight, module.bias):
                    rows = param.shape[0] // S
                    chunk = param[s * rows : (s + 1) * rows]  # seed s's block of rows
                    chunk.copy_(torch.rand(chunk.shape, generator=gen) * 2 * bound - bound)


def seed_of_row(t: torch.Tensor, n_seeds: int) -> torch.Tensor:
    """Which seed owns each row (index along dim 0) of a stacked tensor: every layer stores its
    seeds as consecutive blocks of rows ([S, ...], [S*C, ...]), whatever the memory format."""
    return torch.arange(t.shape[0], device=t.device) // (t.shape[0] // n_seeds)


def weights(model: nn.Module) -> list[torch.Tensor]:
    """The weight matrices and conv kernels (what L1 penalizes and weight statistics describe);
    biases and norm scales are excluded. Weight layers are the ones that carry a fan_in."""
    return [m.weight for m in model.modules() if hasattr(m, "fan_in")]


def mse_per_seed(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error of each seed: out [S, B, 1], y [S, B] -> [S]."""
    return (out.squeeze(-1) - y).pow(2).mean(dim=1)


def cross_entropy_per_seed(out: torch.Tensor, y: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean cross-entropy of each seed: out [S, B, C]; y class indices [S, B] or class probabilities
    [S, B, C] (soft targets, e.g. from mixup). Returns [S]."""
    S, B, C = out.shape
    target = y.reshape(S * B, C) if y.dim() == 3 else y.reshape(S * B)
    loss = F.cross_entropy(out.reshape(S * B, C), target, reduction="none", label_smoothing=label_smoothing)
    return loss.view(S, B).mean(dim=1)
