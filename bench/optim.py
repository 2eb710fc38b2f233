"""SeedAdam: Adam / AdamW over stacked seeds, one learning rate per seed, one fused kernel call a step."""
from __future__ import annotations

import torch
from torch.optim.adam import adam
from torch.optim.adamw import adamw


class SeedAdam:
    """Adam (coupled L2) or AdamW (decoupled) over stacked parameters, with one learning rate per seed.

    Identical per seed to torch.optim.Adam / AdamW (tests/test_optim.py checks it); the
    per-seed rate lets LR schedules and early stopping act on each seed separately. All
    parameters and gradients are re-homed as views of one flat buffer each, so a step is one
    call of torch's fused Adam kernel (what `Adam(fused=True)` runs) over the whole buffer,
    or, once seeds' rates differ, one call per distinct rate over those seeds' blocks. (The
    MLP is launch-bound: 12 element-wise kernels cost it ~120 µs a step, one fused call ~15 µs.)
    The kernel is private (`torch._fused_adam_` / `_fused_adamw_`); a torch without it gets the
    public functional `adam` / `adamw` with foreach=True instead (same calls, results equal to
    rounding, at the element-wise kernels' speed).
    """

    def __init__(self, params, n_seeds: int, weight_decay: float = 0.0, decoupled: bool = False,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        params = list(params)
        self.hyper = dict(beta1=betas[0], beta2=betas[1], weight_decay=weight_decay, eps=eps,
                          amsgrad=False, maximize=False)
        self.fused_step = getattr(torch, "_fused_adamw_" if decoupled else "_fused_adam_", None)
        self.public_step = adamw if decoupled else adam  # used when fused_step is None
        total = sum(p.numel() for p in params)
        device = params[0].device
        self.flat, self.grad = torch.zeros(total, device=device), torch.zeros(total, device=device)
        self.m, self.v = torch.zeros(total, device=device), torch.zeros(total, device=device)
        # step count, shared by all seeds; the public path reads it on the host, so it stays there
        self.t = torch.zeros((), device=device if self.fused_step else "cpu")
        buffers = (self.flat, self.grad, self.m, self.v)
        self.blocks = [tuple([] for _ in buffers) for _ in range(n_seeds)]  # seed s's block of every parameter
        offset = 0
        for p in params:
            dense = p.is_contiguous() or (p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last))
            assert dense, "parameters must be dense to live in the flat buffer"
            view = self.flat.as_strided(p.shape, p.stride(), offset)
            view.copy_(p.detach())
            p.data = view
            p.grad = self.grad.as_strided(p.shape, p.stride(), offset)  # backward accumulates in place
            n = p.numel() // n_seeds  # dim 0 holds the seeds as consecutive blocks and is outermost
            for s in range(n_seeds):
                for buffer, blocks in zip(buffers, self.blocks[s]):
                    blocks.append(buffer[offset + s * n : offset + (s + 1) * n])
            offset += p.numel()
        self.calls: list = []  # (rate, tensors) per fused call of a step, set by set_rates

    def set_rates(self, lr: torch.Tensor) -> None:
        """Each seed's learning rate for the coming steps (one host read). Seeds sharing a rate are
        stepped together, all of them in one call over the flat buffers when all rates are equal;
        a seed at rate 0 (stopped early, diverged) is not stepped at all."""
        rates = lr.tolist()
        if len(set(rates)) == 1 and rates[0]:
            self.calls = [(rates[0], ([self.flat], [self.grad], [self.m], [self.v]))]
            return
        by_rate: dict[float, tuple[list, ...]] = {}
        for rate, blocks in zip(rates, self.blocks):
            if rate:
                for group, seed_blocks in zip(by_rate.setdefault(rate, ([], [], [], [])), blocks):
                    group.extend(seed_blocks)
        self.calls = list(by_rate.items())

    def zero_grad(self) -> None:
        self.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        for rate, (params, grads, m, v) in self.calls:
            if self.fused_step:
                self.fused_step(params, grads, m, v, [], [self.t] * len(params), lr=rate, **self.hyper)
            else:  # it adds 1 to each step tensor itself: hand it fresh ones at t - 1
                steps = [self.t - 1 for _ in params]
                self.public_step(params, grads, m, v, [], steps, foreach=True, lr=rate, **self.hyper)
