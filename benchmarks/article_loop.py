"""The article's own MLP training loop, plain PyTorch: one nn.Sequential per seed, DataLoader, torch Adam.

`python benchmarks/article_loop.py SEEDS EPOCHS` is a whole process doing one quick MLP cell's training work this
way (SEEDS models, EPOCHS epochs each, 100 samples in batches of 25): test_perf.py times it against `regbench`.
"""
import sys

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def article_mlp_loop(x: torch.Tensor, y: torch.Tensor, seeds: list[int], epochs: int) -> None:
    """The article's training code, each seed in turn, eager, batch 25."""
    for seed in seeds:
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(10, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(), nn.Linear(100, 1))
        optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
        criterion = nn.MSELoss()
        loader = DataLoader(TensorDataset(x, y.unsqueeze(1)), batch_size=25, shuffle=True)
        for _ in range(epochs):
            model.train()
            for xb, yb in loader:
                optimizer.zero_grad()
                loss = criterion(model(xb), yb)
                loss.backward()
                optimizer.step()


if __name__ == "__main__":
    n_seeds, epochs = int(sys.argv[1]), int(sys.argv[2])
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(100, 10, generator=gen)
    article_mlp_loop(x, x.sum(1) + 0.5 * torch.randn(100, generator=gen), list(range(n_seeds)), epochs)
