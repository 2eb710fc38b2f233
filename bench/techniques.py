"""Techniques as the rows define them: the pieces switched on, singles vs combinations, one stable order."""
from __future__ import annotations

import pandas as pd

from bench.config import PIECES

BASELINE = "none"  # the technique every other is compared with (no piece switched on)
EPOCH_END_PIECES = ("early_stopping", "lr_plateau")  # pieces that act only between epochs, on validation


def pieces_on(technique_cfg: dict) -> list[str]:
    """The pieces a row's config.technique switches on (a dict, possibly empty), in the config's order."""
    return [k for k, v in technique_cfg.items() if k != "name" and isinstance(v, dict)]


def piece_rank(piece: str) -> tuple[int, str]:
    """Known pieces in bench.config's order, pieces this checkout does not know after them, by name."""
    return (PIECES.index(piece), "") if piece in PIECES else (len(PIECES), piece)


def technique_pieces(df: pd.DataFrame) -> dict[str, tuple[str, ...]]:
    """technique -> its pieces, as its rows say (the most common set when rows disagree)."""
    if df.empty:
        return {}
    common = df.groupby("technique").pieces.agg(lambda s: s.mode().iloc[0])
    return {name: tuple(p.split("+")) if p else () for name, p in common.items()}


def order_key(name: str, pieces: tuple[str, ...]) -> tuple:
    """Fewer pieces first; then by the pieces' config order; a technique named after its piece before its
    variants (l2 before adamw); then by name."""
    ranks = sorted(piece_rank(p) for p in pieces)
    return len(pieces), ranks, pieces != (name,), name


def order_techniques(df: pd.DataFrame) -> list[str]:
    """The techniques of df in one stable order: none, singles, combinations."""
    pieces = technique_pieces(df)
    return sorted(pieces, key=lambda n: order_key(n, pieces[n]))


def singles(df: pd.DataFrame) -> list[str]:
    """Techniques with exactly one piece switched on, in order."""
    pieces = technique_pieces(df)
    return [t for t in order_techniques(df) if len(pieces[t]) == 1]


def combinations(df: pd.DataFrame) -> list[str]:
    """Techniques with two or more pieces switched on, in order."""
    pieces = technique_pieces(df)
    return [t for t in order_techniques(df) if len(pieces[t]) > 1]


def only_epoch_end(df: pd.DataFrame) -> bool:
    """Every technique of df acts only between epochs (early stopping, LR plateau) and has a piece."""
    sets = {tuple(p.split("+")) if p else () for p in df.pieces}
    return bool(sets) and all(s and set(s) <= set(EPOCH_END_PIECES) for s in sets)
