"""Stacked-seed networks: shapes, per-seed independence, dropout/BN placement."""
import pytest
import torch
from torch import nn

from bench.config import TaskConfig
from bench.models import (DropoutNet, MLP, SeedBatchNorm, SeedConvPool, SeedDropout, SeedLinear, dropout_mask,
                          init_per_seed, mse_per_seed, weights)
from bench.tasks import get_task


def build_model(task_name: str, n_seeds: int, width: int = 100, **regularizer_kwargs):
    """The task's own model builder, at a given width."""
    return get_task(task_name).build_model(n_seeds, TaskConfig(name=task_name, width=width), **regularizer_kwargs)


def gens(*seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


def test_mlp_shapes_and_article_layout():
    model = build_model("mlp", 3)
    assert model(torch.randn(3, 7, 10)).shape == (3, 7, 1)
    assert sum(p.numel() for p in model.parameters()) == 3 * (10 * 100 + 100 + 100 * 100 + 100 + 100 + 1)


def test_cnn_shapes_and_article_layout():
    model = DropoutNet(2, width=64)
    assert model(torch.randn(2, 4, 3, 32, 32)).shape == (2, 4, 10)
    per_seed = sum(p.numel() for p in model.parameters()) // 2
    assert per_seed == (3 * 9 * 64 + 64) + (64 * 9 * 128 + 128) + (8192 * 512 + 512) + (512 * 10 + 10)


def test_init_of_a_seed_does_not_depend_on_the_stack():
    alone, stacked = MLP(1, 10, 20, 2), MLP(3, 10, 20, 2)
    init_per_seed(alone, gens(7))
    init_per_seed(stacked, gens(5, 7, 9))
    for a, b in zip(alone.parameters(), stacked.parameters()):
        torch.testing.assert_close(a[0], b[1], rtol=0, atol=0)
    cnn_alone, cnn_stacked = DropoutNet(1, 4), DropoutNet(2, 4)
    init_per_seed(cnn_alone, gens(3))
    init_per_seed(cnn_stacked, gens(1, 3))
    for a, b in zip(cnn_alone.parameters(), cnn_stacked.parameters()):
        torch.testing.assert_close(a.view(1, -1)[0], b.view(2, -1)[1], rtol=0, atol=0)


def test_stacked_seeds_compute_what_each_network_computes_alone():
    torch.manual_seed(0)
    stacked = DropoutNet(2, 4)
    init_per_seed(stacked, gens(1, 2))
    single = DropoutNet(1, 4)
    x = torch.randn(5, 3, 32, 32)
    out = stacked(torch.stack([x, x]))
    for s in range(2):
        single.load_state_dict({k: v.view(2, -1)[s].view_as(single.state_dict()[k]) for k, v in stacked.state_dict().items()})
        torch.testing.assert_close(single(x[None])[0], out[s], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("fan_out", [1, 7])
def test_seed_linear_is_x_w_plus_b_per_seed_and_its_hand_backward_is_autograds(fan_out):
    layer = SeedLinear(3, 5, fan_out)
    x = torch.randn(3, 4, 5, requires_grad=True)
    ref = torch.stack([x[s] @ layer.weight[s] + layer.bias[s] for s in range(3)])
    torch.testing.assert_close(layer(x), ref)
    g = torch.randn_like(ref)
    x_grad, w_grad, b_grad = torch.autograd.grad(ref, (x, layer.weight, layer.bias), g)
    torch.testing.assert_close(layer.hand_backward(x.detach(), g), x_grad)
    torch.testing.assert_close(layer.weight.grad, w_grad)
    torch.testing.assert_close(layer.bias.grad, b_grad)
    assert layer.hand_backward(x.detach(), g, input_grad=False) is None


@pytest.mark.parametrize("momentum", [None, 0.1], ids=["plain", "bn"])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last], ids=["nchw", "channels_last"])
def test_conv_pool_is_torchs_conv_bn_maxpool_with_the_same_gradients(momentum, layout):
    """SeedConvPool (bias outside the conv, pooled by views in evaluation) against nn.Conv2d -> (BN) -> MaxPool2d."""
    torch.manual_seed(0)
    block = SeedConvPool(2, 3, 4, momentum)
    conv = nn.Conv2d(6, 8, 3, padding=1, groups=2)
    conv.load_state_dict({"weight": block.weight.detach(), "bias": block.bias.detach()})
    ref = nn.Sequential(conv, *([nn.BatchNorm2d(8, momentum=momentum)] if momentum else []), nn.MaxPool2d(2))
    block.to(memory_format=layout), ref.to(memory_format=layout)
    x = torch.randn(5, 6, 8, 8).contiguous(memory_format=layout)
    out, ref_out = block(x), ref(x)
    torch.testing.assert_close(out, ref_out)
    assert out.is_contiguous(memory_format=layout)
    g = torch.randn_like(out)
    out.backward(g)
    ref_out.backward(g)
    ref_params = list(ref.parameters())
    assert len(ref_params) == len(list(block.parameters())) == (4 if momentum else 2)
    for p, q in zip(block.parameters(), ref_params):
        torch.testing.assert_close(p.grad, q.grad)
    block.eval(), ref.eval()
    with torch.no_grad():
        out = block(x)
        torch.testing.assert_close(out, ref(x))
        assert out.is_contiguous(memory_format=layout)


def test_dropout_and_batchnorm_are_placed_only_when_asked():
    plain = build_model("mlp", 1)
    assert not any(isinstance(m, (SeedDropout, SeedBatchNorm)) for m in plain.modules())
    both = build_model("mlp", 1, dropout=0.5, batchnorm_momentum=0.1)
    kinds = [type(m).__name__ for m in both.net]
    assert kinds[:4] == ["SeedLinear", "SeedBatchNorm", "ReLU", "SeedDropout"]  # BN before the activation
    cnn = build_model("cifar", 1, width=4, dropout=0.5, dropout_conv=0.2, batchnorm_momentum=0.1)
    assert sum(isinstance(m, nn.Dropout2d) for m in cnn.modules()) == 2
    assert sum(isinstance(m, nn.BatchNorm2d) for m in cnn.modules()) == 2


def test_dropout_is_off_in_eval_mode():
    model = build_model("mlp", 2, dropout=0.5)
    x = torch.randn(2, 64, 10)
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))


def test_seed_batchnorm_normalizes_each_seed_separately():
    bn = SeedBatchNorm(2, 3, momentum=1.0)
    x = torch.randn(2, 50, 3) * torch.tensor([1.0, 10.0]).view(2, 1, 1) + torch.tensor([0.0, 5.0]).view(2, 1, 1)
    y = bn(x)
    torch.testing.assert_close(y.mean(1), torch.zeros(2, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(bn.running_mean.squeeze(1), x.mean(1))


def test_seed_batchnorm_matches_batchnorm1d_per_seed():
    """Training output, input and parameter gradients, running statistics and the eval output, against
    nn.BatchNorm1d run on each seed's slice."""
    S, B, F_ = 3, 25, 4
    bn = SeedBatchNorm(S, F_, momentum=0.3)
    refs = [nn.BatchNorm1d(F_, momentum=0.3) for _ in range(S)]
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2.0), bn.bias.uniform_(-1.0, 1.0)
        for s, ref in enumerate(refs):
            ref.weight.copy_(bn.weight[s, 0]), ref.bias.copy_(bn.bias[s, 0])
    x = (torch.randn(S, B, F_) * 3 + 2).requires_grad_()
    g = torch.randn(S, B, F_)
    for _ in range(2):  # twice: the running statistics accumulate
        out = bn(x)
        (out * g).sum().backward()
    for s, ref in enumerate(refs):
        xs = x.detach()[s].clone().requires_grad_()
        for _ in range(2):
            ref_out = ref(xs)
            (ref_out * g[s]).sum().backward()
        torch.testing.assert_close(out[s], ref_out, msg="training output")
        torch.testing.assert_close(x.grad[s], xs.grad, msg="input gradient")
        torch.testing.assert_close(bn.weight.grad[s, 0], ref.weight.grad)
        torch.testing.assert_close(bn.bias.grad[s, 0], ref.bias.grad)
    bn.eval()
    for s, ref in enumerate(refs):
        ref.eval()
        torch.testing.assert_close(bn.running_mean[s, 0], ref.running_mean)
        torch.testing.assert_close(bn.running_var[s, 0], ref.running_var)
        torch.testing.assert_close(bn(x)[s], ref(x[s]), msg="eval output")


def test_weights_are_the_matrices_and_kernels_only():
    model = build_model("cifar", 1, width=4, batchnorm_momentum=0.1)
    ids = {id(w) for w in weights(model)}
    names = [n for n, p in model.named_parameters() if id(p) in ids]
    assert names == ["features.0.0.weight", "features.1.0.weight", "head.0.weight", "head.3.weight"]


@pytest.mark.parametrize("depth,dropout,bn", [(2, 0.0, None), (1, 0.0, None), (3, 0.3, None), (2, 0.0, 0.1),
                                              (3, 0.5, 0.1)])
def test_mlp_train_step_gives_autograd_gradients_losses_and_bn_statistics(depth, dropout, bn):
    by_hand, ref = (MLP(3, 10, 16, depth, dropout=dropout, batchnorm_momentum=bn) for _ in range(2))
    init_per_seed(by_hand, gens(0, 1, 2))
    ref.load_state_dict(by_hand.state_dict())
    x, y = torch.randn(3, 25, 10), torch.randn(3, 25)
    torch.manual_seed(7)  # the same dropout draws in both
    losses = by_hand.train_step(x, y)
    torch.manual_seed(7)
    ref_losses = mse_per_seed(ref(x), y)
    ref_losses.sum().backward()
    torch.testing.assert_close(losses, ref_losses.detach())
    for (name, p), q in zip(by_hand.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=name)
    for a, b in zip(by_hand.buffers(), ref.buffers()):
        torch.testing.assert_close(a, b)
    torch.manual_seed(7)
    by_hand.train_step(x, y)  # again: gradients are overwritten, not accumulated
    torch.testing.assert_close(by_hand.net[0].weight.grad, ref.net[0].weight.grad, rtol=1e-4, atol=1e-6)


def test_dropout_mask_drops_a_fraction_p_and_keeps_the_mean():
    torch.manual_seed(0)
    mask = dropout_mask(torch.empty(200_000), 0.3)
    assert mask.unique().tolist() == [0.0, pytest.approx(1 / 0.7)]
    assert (mask == 0).float().mean().item() == pytest.approx(0.3, abs=0.005)
    assert mask.mean().item() == pytest.approx(1.0, abs=0.01)
