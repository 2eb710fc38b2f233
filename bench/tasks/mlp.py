"""The article's synthetic regression task: a teacher network's outputs plus noise, fit by a ReLU MLP (MSE)."""
from __future__ import annotations

from bench.data import make_mlp_data
from bench.models import MLP, mse_per_seed
from bench.tasks import Task


class Regression(Task):
    name = "mlp"
    hand_written_step = True

    def load_data(self, cfg, device, seeds):
        return make_mlp_data(cfg, device, seeds)

    def build_model(self, n_seeds, cfg, **regularizer_kwargs):
        return MLP(n_seeds, cfg.in_dim, cfg.width, cfg.depth, **regularizer_kwargs)

    def loss(self, out, y):
        return mse_per_seed(out, y)


TASK = Regression()
