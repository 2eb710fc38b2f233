"""Each regularizer really changes training, at its hook point."""
import math

import pytest
import torch
import torch.nn.functional as F

from bench.augment import (affine_grid, augment_images, box_masks, color_jitter, cutout, mix_batch,
                           scaled_augment)
from bench.config import (AugmentConfig, EarlyStoppingConfig, EMAConfig, L1Config, LabelSmoothingConfig,
                          LRPlateauConfig, MixupConfig)
from bench.models import MLP, cross_entropy_per_seed, weights
from bench.regularizers import (EMA, L1, EarlyStopping, EpochState, L1Proximal, LabelSmoothing, LRPlateau, Mixup,
                                NotApplicable, build_regularizers, soft_threshold)
from bench.tasks import get_task
from bench.inputs import eval_batches, model_inputs
from bench.train import train_seeds
from tests.conftest import make_config

CPU = torch.device("cpu")


def final_rows(*overrides, seeds=(0,)):
    cfg = make_config("task.epochs=60", *overrides)
    data = get_task(cfg.task.name).load_data(cfg.task, CPU, list(seeds))
    return train_seeds(cfg.task, cfg.technique, list(seeds), data, CPU)


def test_l2_and_l1_shrink_weights_compared_with_no_regularization():
    base = final_rows("technique=none")[0]
    l2 = final_rows("technique=l2", "technique.l2.weight_decay=0.1")[0]
    adamw = final_rows("technique=adamw", "technique.l2.weight_decay=1.0")[0]
    l1 = final_rows("technique=l1", "technique.l1.strength=1e-3")[0]
    for reg in (l2, adamw, l1):
        assert reg["weight_l2_norm"] < 0.9 * base["weight_l2_norm"]
    assert l1["frac_weights_below_1e-3"] > 5 * base["frac_weights_below_1e-3"]


def test_l1_adds_the_gradient_of_strength_times_abs_sum_of_weights_not_biases():
    model = MLP(2, 10, 20, 2)
    with torch.no_grad():
        model.net[0].weight[0, 0, :3] = 0.0  # |w| at 0: gradient 0, as autograd has it
    penalty = 0.01 * sum(w.abs().sum() for w in weights(model))
    expected = torch.autograd.grad(penalty, list(model.parameters()), allow_unused=True)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    L1(L1Config(0.01)).add_penalty_grad(model)
    for p, g in zip(model.parameters(), expected):
        torch.testing.assert_close(p.grad, torch.ones_like(p) + (0 if g is None else g))  # biases: untouched


def test_dropout_and_batchnorm_change_the_trained_model():
    base = final_rows("technique=none", "task.epochs=10")[0]["final"]["test_loss"]
    for technique in ("dropout", "batchnorm", "augment"):
        assert final_rows(f"technique={technique}", "task.epochs=10")[0]["final"]["test_loss"] != base


def test_early_stopping_stops_and_restores_the_best_epoch_exactly():
    rows = final_rows("technique=early_stopping", "technique.early_stopping.patience_frac=0.02",
                      "technique.early_stopping.min_delta=0", "task.epochs=300", seeds=(0, 1))  # patience 6
    for row in rows:
        assert row["stopped_early"] and row["epochs_run"] < 300
        best_val = min(h["val_loss"] for h in row["history"])
        assert row["final"]["val_loss"] == best_val  # the restored weights are exactly the best epoch's
        assert row["epochs_run"] == row["best_epoch"] + 6 == len(row["history"])


def test_early_stopping_snapshot_is_a_deep_copy():
    model = MLP(1, 10, 20, 2)
    es = EarlyStopping(EarlyStoppingConfig(patience_frac=0.3), n_seeds=1, epochs=10)
    state = EpochState(model, 1, torch.tensor([1.0]), torch.tensor([1e-3]), torch.tensor([True]), torch.tensor([-1]))
    es.end_epoch(state)
    saved = model.net[0].weight.detach().clone()
    with torch.no_grad():
        model.net[0].weight.add_(1.0)  # training goes on; the snapshot must not follow
    state.epoch, state.val_loss = 2, torch.tensor([2.0])  # worse: no new snapshot
    es.end_epoch(state)
    es.finish(state)
    torch.testing.assert_close(model.net[0].weight, saved, rtol=0, atol=0)


def test_lr_plateau_follows_torch_reduce_lr_on_plateau_per_seed():
    vals = [1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8]
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=5, factor=0.5)
    ours = LRPlateau(LRPlateauConfig(patience_frac=0.05, factor=0.5), n_seeds=2, epochs=100)  # patience 5
    state = EpochState(None, 0, torch.zeros(2), torch.ones(2), torch.ones(2, dtype=torch.bool), torch.full((2,), -1))
    for epoch, v in enumerate(vals, 1):
        ref.step(v)
        state.epoch, state.val_loss = epoch, torch.tensor([v, 0.5 ** epoch])  # seed 1 always improves
        ours.end_epoch(state)
        assert state.lr[0].item() == pytest.approx(opt.param_groups[0]["lr"])
        assert state.lr[1].item() == 1.0
    assert opt.param_groups[0]["lr"] < 1.0


def test_augment_images_keeps_shape_and_range_and_differs_per_sample():
    torch.manual_seed(0)
    img = torch.rand(1, 3, 32, 32)
    batch = img.expand(64, 3, 32, 32).contiguous()
    out = augment_images(batch, AugmentConfig())
    assert out.shape == batch.shape and out.dtype == batch.dtype
    assert out.min() >= 0 and out.max() <= 1
    flat = out.flatten(1)
    assert torch.cdist(flat, flat).fill_diagonal_(math.inf).min() > 0  # no two samples got the same draw


def test_augment_translation_only_moves_pixels():
    torch.manual_seed(1)
    x = torch.rand(8, 3, 32, 32)
    out = augment_images(x, AugmentConfig(crop_pad=4, flip=False, rotate_deg=0.0, jitter=0.0))
    for i in range(8):  # every output equals its input shifted by whole pixels (zeros enter at the border)
        shifts = [(dy, dx) for dy in range(-4, 5) for dx in range(-4, 5)
                  if torch.allclose(out[i, :, 4:-4, 4:-4], x[i, :, 4 + dy:28 + dy, 4 + dx:28 + dx], atol=1e-5)]
        assert len(shifts) == 1


def test_augmentation_is_training_only():
    cfg = make_config("technique=augment")
    data = get_task(cfg.task.name).load_data(cfg.task, CPU, [0])
    (x_eval, _), = eval_batches(data.val, get_task("mlp"), 1)
    assert torch.equal(x_eval, data.val.x.expand_as(x_eval))  # evaluation sees the clean samples
    from bench.regularizers import build_regularizers

    aug = build_regularizers(cfg.technique, cfg.task, 1)
    x = data.train.x
    noisy = model_inputs(x, get_task("mlp"), aug)
    assert noisy.shape == x.shape and not torch.equal(noisy, x)
    assert (noisy - x).std().item() == pytest.approx(cfg.technique.augment.input_noise, rel=0.1)


def test_affine_grid_is_torchs():
    theta = torch.randn(5, 2, 3)
    torch.testing.assert_close(affine_grid(theta, 6, 9), F.affine_grid(theta, [5, 3, 6, 9], align_corners=False))


def test_color_jitter_is_brightness_then_contrast_then_saturation():
    torch.manual_seed(2)
    x = torch.rand(4, 3, 8, 8)
    b, c, s = torch.rand(3, 4) + 0.5

    def gray(t):
        return 0.299 * t[:, 0:1] + 0.587 * t[:, 1:2] + 0.114 * t[:, 2:3]

    ref = x * b.view(4, 1, 1, 1)
    mean = gray(ref).mean(dim=(2, 3), keepdim=True)
    ref = (ref - mean) * c.view(4, 1, 1, 1) + mean
    ref = (ref - gray(ref)) * s.view(4, 1, 1, 1) + gray(ref)
    torch.testing.assert_close(color_jitter(x, b, c, s), ref)


def test_soft_threshold_is_the_l1_proximal_operator():
    w = torch.tensor([-2.0, -0.5, -0.1, 0.0, 0.05, 0.3, 1.0])
    expected = torch.tensor([-1.7, -0.2, 0.0, 0.0, 0.0, 0.0, 0.7])
    torch.testing.assert_close(soft_threshold(w, torch.tensor(0.3)), expected)
    # the prox minimizes 0.5 (z - w)^2 + t |z|: no point of a fine grid does better
    z = torch.linspace(-3, 3, 60001)[:, None]
    objective = 0.5 * (z - w) ** 2 + 0.3 * z.abs()
    best = objective.min(0).values
    at_prox = 0.5 * (expected - w) ** 2 + 0.3 * expected.abs()
    assert torch.all(at_prox <= best + 1e-6)


def test_proximal_l1_thresholds_each_seed_by_its_own_rate_and_yields_exact_zeros():
    model = MLP(2, 3, 4, 1)
    before = [w.detach().clone() for w in weights(model)]
    lr = torch.tensor([0.0, 1.0])  # seed 0 frozen, seed 1 takes a big step
    L1Proximal(L1Config(strength=0.2, proximal=True), n_seeds=2).after_step(model, lr)
    for w, w0 in zip(weights(model), before):
        torch.testing.assert_close(w[0], w0[0], rtol=0, atol=0)
        torch.testing.assert_close(w[1], soft_threshold(w0[1], torch.tensor(0.2)))
        assert (w[1] == 0).any()


def test_proximal_l1_gives_exact_zeros_in_training_and_the_subgradient_does_not():
    prox = final_rows("technique=l1_prox", "technique.l1.strength=0.1", "task.epochs=100")[0]
    sub = final_rows("technique=l1", "technique.l1.strength=0.1", "task.epochs=100")[0]
    assert prox["frac_weights_zero"] >= 0.10
    assert sub["frac_weights_zero"] < 0.01


def test_augment_strength_scales_every_setting():
    cfg = AugmentConfig(strength=2.0, input_noise=0.1, crop_pad=4, rotate_deg=10.0, jitter=0.2)
    s = scaled_augment(cfg)
    assert (s.input_noise, s.crop_pad, s.rotate_deg, s.jitter) == pytest.approx((0.2, 8, 20.0, 0.4))
    assert scaled_augment(AugmentConfig(strength=10.0)).jitter < 1
    off = scaled_augment(AugmentConfig(strength=0.0))
    assert (off.input_noise, off.crop_pad, off.rotate_deg, off.jitter, off.flip) == (0, 0, 0, 0, False)


def test_lr_plateau_reductions_are_counted_in_the_row():
    rows = final_rows("technique=lr_plateau", "task.epochs=200", seeds=(0, 1))
    for row in rows:
        lrs = [h["lr"] for h in row["history"]]
        assert row["lr_reductions"] == sum(b < a for a, b in zip(lrs, lrs[1:])) >= 1
        assert row["uses_validation"]
    assert final_rows("technique=l2")[0]["lr_reductions"] == 0


# ----------------------------------------------------------------- beyond the article: loss, batch and weight hooks


def test_label_smoothing_is_torch_cross_entropy_with_label_smoothing_per_seed():
    out, y = torch.randn(3, 8, 10), torch.randint(0, 10, (3, 8))
    loss = LabelSmoothing(LabelSmoothingConfig(eps=0.2)).train_loss(out, y)
    ref = torch.stack([F.cross_entropy(out[s], y[s], label_smoothing=0.2) for s in range(3)])
    torch.testing.assert_close(loss, ref)


def test_mixup_blends_inputs_and_targets_and_trains_on_the_mixed_loss():
    S, B = 2, 5
    x, y, out = torch.randn(S, B, 3, 4, 4), torch.randint(0, 10, (S, B)), torch.randn(S, B, 10)
    lam, perm = torch.tensor([0.3, 0.8]), torch.stack([torch.randperm(B) for _ in range(S)])
    mixed_x, soft = mix_batch(x, y, lam, perm, n_classes=10)
    for s in range(S):
        torch.testing.assert_close(mixed_x[s], lam[s] * x[s] + (1 - lam[s]) * x[s, perm[s]])
        torch.testing.assert_close(soft[s], lam[s] * F.one_hot(y[s], 10) + (1 - lam[s]) * F.one_hot(y[s, perm[s]], 10))
        # cross-entropy against the mixed targets is mixup's loss: lam * CE(y) + (1 - lam) * CE(y shuffled)
        ref = lam[s] * F.cross_entropy(out[s], y[s]) + (1 - lam[s]) * F.cross_entropy(out[s], y[s, perm[s]])
        torch.testing.assert_close(cross_entropy_per_seed(out, soft)[s], ref)
    _, mixed_y = mix_batch(x[..., 0, 0, 0], y.float(), lam, perm, n_classes=0)  # regression: targets blended
    torch.testing.assert_close(mixed_y[1], 0.8 * y[1].float() + 0.2 * y[1, perm[1]].float())


def test_cutmix_pastes_a_box_and_weights_targets_by_its_exact_area():
    S, B, H, W = 2, 4, 8, 8
    x, y = torch.randn(S, B, 3, H, W), torch.randint(0, 10, (S, B))
    perm = torch.stack([torch.randperm(B) for _ in range(S)])
    torch.manual_seed(1)
    box, lam = box_masks(S, H, W, torch.tensor([0.25, 0.5]), CPU)
    assert box[0].sum() <= 16 and box[1].sum() <= 32  # clipped at the border, never larger
    full = box_masks(500, H, W, torch.full((500,), 0.25), CPU)[0].flatten(1).sum(1)
    assert full.max() == 16 and full.min() > 0  # a 4 x 4 box where it fits whole, clipped (not empty) elsewhere
    torch.testing.assert_close(lam, 1 - box.float().mean((1, 2)))
    mixed_x, soft = mix_batch(x, y, lam, perm, n_classes=10, box=box)
    for s in range(S):
        inside = box[s].expand(B, 3, H, W)
        assert torch.equal(mixed_x[s][inside], x[s, perm[s]][inside])
        assert torch.equal(mixed_x[s][~inside], x[s][~inside])
        torch.testing.assert_close(soft[s], lam[s] * F.one_hot(y[s], 10) + (1 - lam[s]) * F.one_hot(y[s, perm[s]], 10))


def test_mixup_draws_a_lambda_per_seed_from_its_beta_and_keeps_targets_distributions():
    torch.manual_seed(0)
    x, y = torch.randn(3, 64, 5), torch.randn(3, 64)
    reg = Mixup(MixupConfig(alpha=0.2), task=get_task("mlp"))
    lams = []
    for _ in range(200):
        mixed_x, mixed_y = reg.batch(x, y)
        assert mixed_y.shape == y.shape and mixed_x.shape == x.shape
        lams.append(reg.last_lambda)
    lams = torch.stack(lams)
    assert lams.shape == (200, 3) and not torch.equal(lams[:, 0], lams[:, 1])
    assert ((lams < 0.1) | (lams > 0.9)).float().mean() > 0.5  # Beta(0.2, 0.2) puts most mass near 0 and 1


def test_cutout_zeroes_one_square_of_the_configured_size_per_image():
    torch.manual_seed(0)
    x = torch.ones(200, 3, 32, 32)
    out = cutout(x, 0.5)
    zeros = (out == 0).all(1).flatten(1).sum(1)  # zeroed pixels per image, same in every channel
    assert zeros.max() == 256 and zeros.min() >= 64  # 16 x 16 inside, clipped to >= 8 x 8 at a corner
    assert ((out == 0) | (out == 1)).all()


def test_ema_evaluates_and_ends_on_the_hand_computed_average():
    model = MLP(1, 2, 3, 1)
    ema = EMA(EMAConfig(decay=0.9))
    history = []
    for _ in range(5):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        history.append([p.detach().clone() for p in model.parameters()])
        ema.after_step(model, torch.tensor([1.0]))
    expected = history[0]
    for t, params in enumerate(history[1:], start=2):  # step t: decay min(0.9, (1 + t) / (10 + t))
        d = min(0.9, (1 + t) / (10 + t))
        expected = [d * e + (1 - d) * p for e, p in zip(expected, params)]
    live = [p.detach().clone() for p in model.parameters()]
    with ema.eval_weights(model):
        for p, e in zip(model.parameters(), expected):
            torch.testing.assert_close(p, e)
    for p, w in zip(model.parameters(), live):  # training weights are back
        assert torch.equal(p, w)
    ema.finish(EpochState(model, 5, *[torch.zeros(1)] * 4))
    for p, e in zip(model.parameters(), expected):
        torch.testing.assert_close(p, e)


@pytest.mark.parametrize("technique, task", [("label_smoothing", "mlp"), ("cutmix", "mlp"), ("cutout", "mlp")])
def test_a_piece_that_does_not_apply_to_the_task_is_refused_by_name(technique, task):
    cfg = make_config(f"task={task}", f"technique={technique}")
    expected = "cutmix \\(its mixup piece\\)" if technique == "cutmix" else technique
    with pytest.raises(NotApplicable, match=f"{expected} does not apply to task {task}"):
        build_regularizers(cfg.technique, cfg.task, 1)


@pytest.mark.parametrize("technique", ["mixup", "ema"])
def test_new_pieces_change_mlp_training(technique):
    base, reg = final_rows("technique=none")[0], final_rows(f"technique={technique}")[0]
    assert reg["final"]["val_loss"] != base["final"]["val_loss"]
