"""SeedAdam: equal per seed to torch's Adam / AdamW, per-seed rates, and the same steps with or without torch's private fused kernel."""
import pytest
import torch
from torch import nn
from torch.optim.adam import adam
from torch.optim.adamw import adamw

from bench.models import MLP
from bench.optim import SeedAdam


@pytest.fixture(params=["fused", "public"])
def path(request, monkeypatch):
    """Run the test on the fused kernel and on the public fallback (the private ops removed)."""
    if request.param == "public":
        monkeypatch.delattr(torch, "_fused_adam_")
        monkeypatch.delattr(torch, "_fused_adamw_")
    return request.param


@pytest.mark.parametrize("decoupled", [False, True])
def test_seed_adam_matches_torch_adam_on_the_article_loop(decoupled, path):
    torch.manual_seed(0)
    ref = nn.Sequential(nn.Linear(10, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(), nn.Linear(100, 1))
    ours = MLP(1, 10, 100, 2)
    with torch.no_grad():
        for mine, theirs in zip([m for m in ours.net if hasattr(m, "fan_in")], [m for m in ref if isinstance(m, nn.Linear)]):
            mine.weight[0].copy_(theirs.weight.T)
            mine.bias[0, 0].copy_(theirs.bias)
    torch_opt = (torch.optim.AdamW if decoupled else torch.optim.Adam)(ref.parameters(), lr=1e-3, weight_decay=1e-2)
    opt = SeedAdam(ours.parameters(), 1, weight_decay=1e-2, decoupled=decoupled)
    x, y = torch.randn(100, 10), torch.randn(100, 1)
    opt.set_rates(torch.tensor([1e-3]))
    for _ in range(50):
        torch_opt.zero_grad()
        nn.functional.mse_loss(ref(x), y).backward()
        torch_opt.step()
        opt.zero_grad()
        nn.functional.mse_loss(ours(x[None])[0], y).backward()
        opt.step()
    torch.testing.assert_close(ours.net[4].weight[0], ref[4].weight.T, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(ours(x[None])[0], ref(x), rtol=1e-4, atol=1e-5)


def test_seed_adam_steps_each_seed_at_its_rate_and_leaves_frozen_seeds_untouched(path):
    stacked = MLP(3, 4, 8, 1)
    singles = [MLP(1, 4, 8, 1) for _ in range(3)]
    for s, single in enumerate(singles):
        single.load_state_dict({k: v[s : s + 1] for k, v in stacked.state_dict().items()})
    opt = SeedAdam(stacked.parameters(), 3)
    opt.set_rates(torch.tensor([1e-2, 0.0, 1e-3]))
    frozen = [p[1].clone() for p in stacked.parameters()]
    x, y = torch.randn(3, 10, 4), torch.randn(3, 10)
    for _ in range(5):
        opt.zero_grad()
        ((stacked(x).squeeze(-1) - y) ** 2).mean(1).sum().backward()
        opt.step()
    for p, before in zip(stacked.parameters(), frozen):
        assert torch.equal(p[1], before)
    assert all(torch.count_nonzero(m) == 0 for m in opt.blocks[1][2])  # not stepped at all: its moments stay 0
    for s, rate in [(0, 1e-2), (2, 1e-3)]:
        ref = torch.optim.Adam(singles[s].parameters(), lr=rate)
        for _ in range(5):
            ref.zero_grad()
            ((singles[s](x[s : s + 1]).squeeze(-1) - y[s : s + 1]) ** 2).mean().backward()
            ref.step()
        for mine, theirs in zip(stacked.parameters(), singles[s].parameters()):
            torch.testing.assert_close(mine[s], theirs[0], rtol=1e-5, atol=1e-6)


def train_stacked(decoupled: bool) -> list[torch.Tensor]:
    """3 stacked seeds, 20 steps with weight decay: equal rates, then different ones, then one seed stopped."""
    torch.manual_seed(0)
    model = MLP(3, 4, 16, 2)
    opt = SeedAdam(model.parameters(), 3, weight_decay=1e-2, decoupled=decoupled)
    x, y = torch.randn(3, 32, 4), torch.randn(3, 32)
    for i in range(20):
        opt.set_rates(torch.tensor([[1e-2] * 3, [1e-2, 3e-3, 1e-3], [1e-2, 0.0, 1e-3]][i // 7]))
        opt.zero_grad()
        ((model(x).squeeze(-1) - y) ** 2).mean(1).sum().backward()
        opt.step()
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("decoupled", [False, True])
def test_fused_and_public_paths_give_the_same_parameters(decoupled, monkeypatch):
    fused = train_stacked(decoupled)
    monkeypatch.delattr(torch, "_fused_adam_")
    monkeypatch.delattr(torch, "_fused_adamw_")
    public = train_stacked(decoupled)
    for a, b in zip(fused, public):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("decoupled, op, public", [(False, "_fused_adam_", adam), (True, "_fused_adamw_", adamw)])
def test_the_public_path_is_used_when_the_private_op_is_missing(decoupled, op, public, monkeypatch):
    make = lambda: SeedAdam(MLP(2, 4, 8, 1).parameters(), 2, weight_decay=1e-2, decoupled=decoupled)
    assert make().fused_step is getattr(torch, op)
    monkeypatch.delattr(torch, op)
    opt = make()
    assert opt.fused_step is None and opt.public_step is public
    opt.set_rates(torch.tensor([1e-2, 1e-3]))
    opt.step()  # nothing reaches for the removed op
    assert opt.t.item() == 1
