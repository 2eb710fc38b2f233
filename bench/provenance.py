"""Where the rows come from: commits, devices and presets; a warning block at the top when they are mixed."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.tables import md_table

GRID_DIR = Path(__file__).parent / "conf" / "grid"
DIRTY = "-dirty"
PROVENANCE = (("commit", "commits"), ("device", "devices"), ("device_type", "device types"), ("preset", "presets"))
POOLED = {  # what mixing each one does to the tables below
    "commit": "within a preset, the tables pool rows of different commits: a code change between them is mixed "
              "into every mean and difference",
    "device": "within a preset, the tables pool rows of different devices: their timings (cost, seconds to result) "
              "are not comparable",
    "device_type": "within a preset, the tables pool rows of different device types: their timings are not "
                   "comparable",
    "preset": "presets that ran the same experiment (the same task config, e.g. `standard` = `quick` at more seeds) "
              "are reported together; presets of other sizes are reported on their own, never pooled",
}


def labelled(df: pd.DataFrame, col: str) -> pd.Series:
    """The column as text, 'unknown' where a row does not say."""
    return df[col].astype(object).where(df[col].notna(), "unknown").astype(str)


def row_counts(df: pd.DataFrame, col: str) -> pd.Series:
    """value -> rows, by value."""
    return labelled(df, col).value_counts().sort_index()


def counts_text(counts: pd.Series) -> str:
    return ", ".join(f"`{v}` ({n} row{'s' if n != 1 else ''})" for v, n in counts.items())


def mixed(df: pd.DataFrame) -> list[tuple[str, str]]:
    """The provenance columns with more than one value."""
    return [(col, words) for col, words in PROVENANCE if labelled(df, col).nunique() > 1]


def dirty_notes(commits: list[str]) -> list[str]:
    """A '-dirty' commit is its base commit plus uncommitted changes: counted as a different commit, said plainly."""
    notes = []
    for c in sorted(c for c in commits if c.endswith(DIRTY)):
        base = c[: -len(DIRTY)]
        if base in commits:
            notes.append(f"`{c}` is commit `{base}` plus uncommitted changes: counted as a different commit from "
                         f"`{base}` (what the changes were is not recorded)")
        else:
            notes.append(f"`{c}`: run from a working tree with uncommitted changes, so the code is commit `{base}` "
                         "plus edits the rows do not record")
    return notes


def defined_grids() -> list[str]:
    """The grids this checkout defines (bench/conf/grid/*.yaml): what a full `make bench` runs."""
    return sorted(p.stem for p in GRID_DIR.glob("*.yaml"))


def unrun_grids_note(df: pd.DataFrame) -> list[str]:
    absent = ", ".join(f"`{g}`" for g in defined_grids() if not (df.grid == g).any())
    return [f"Grids this checkout defines (bench/conf/grid) with no rows here: {absent}"] if absent else []


def provenance_warning(df: pd.DataFrame) -> list[str]:
    """A warning block for the top of REPORT.md when rows come from several commits, devices or presets:
    what differs, how many rows each value has, and how the tables treat it. Empty when nothing differs."""
    differ = mixed(df)
    if not differ:
        return []
    lines = [f"> **⚠ WARNING: mixed provenance.** These rows come from several {', '.join(w for _, w in differ)}.",
             ">"]
    for col, words in differ:
        counts = row_counts(df, col)
        lines.append(f"> - {len(counts)} {words}: {counts_text(counts)}; {POOLED[col]}.")
    if any(col == "commit" for col, _ in differ):
        commits = list(row_counts(df, "commit").index)
        lines += [f"> - {n}." for n in dirty_notes(commits) if "counted as a different commit" in n]
    return lines + [">", "> Rows per commit, device and preset: see Provenance below.", ""]


def provenance_section(df: pd.DataFrame) -> list[str]:
    """Rows per (commit, device, device type, preset), with the tasks and grids each group holds."""
    keys = [labelled(df, col).rename(col) for col, _ in PROVENANCE]
    rows = [[f"`{c}`", d, t, p, len(x), ", ".join(sorted(x.task.unique())), ", ".join(sorted(x.grid.unique()))]
            for (c, d, t, p), x in df.groupby(keys)]
    notes = dirty_notes(list(row_counts(df, "commit").index)) + unrun_grids_note(df)
    return ["## Provenance", "", md_table(["commit", "device", "device type", "preset", "rows", "tasks", "grids"],
                                          rows), ""] + [f"- {n}." for n in notes] + ([""] if notes else [])


def failed_rows_section(df: pd.DataFrame) -> list[str]:
    """One line per row that did not finish ok (diverged, failed): excluded from every table."""
    notes = []
    for r in df[df.status != "ok"].itertuples():
        when = f" at epoch {int(r.diverged_epoch)}" if pd.notna(r.diverged_epoch) else ""
        err = f": {r.error}" if isinstance(r.error, str) else ""
        notes.append(f"`{r.task}/{r.technique}` seed {r.seed} ({r.grid} grid): **{r.status}**{when}{err} (excluded)")
    return ["## Warnings", ""] + [f"- {n}" for n in notes] + [""] if notes else []
