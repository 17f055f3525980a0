"""report.plot(path): where the error lies, one heatmap per leaf.

    report = fnnet.check.check_vjp(fun, vjp, x, w)
    report.plot("where.png")            # also `fnnet check --plot DIR`, one file per case

Each panel is one leaf of the report (a primal's pytree path, or a transform's row), its
elements laid out as a matrix: a scalar as 1 × 1, a vector [n] as 1 × n, an array
[a, ..., z] as (a·...) × z (leading axes flattened into rows, the last axis across). The
colour is log10(|actual - expected| / tol) per element, the same ratio the check judged
(fnnet.check.compare: <= 1 passes, so 0 is the boundary; elements accepted at a kink, or
where an outvoted witness disagreed, count 0), against the witness that is furthest off for
that leaf among the rows compared element by element (jax.vjp, the reference, per-element
finite differences; directional rows have no per-element ratio and are not drawn). Blue:
well inside tolerance, white: at it, red: beyond it (clipped at 10^±CLIP); the worst element
is marked with a cross. The file is written atomically (fnnet.atomic) with matplotlib's Agg
canvas (no pyplot, no global backend): each panel is PANEL_INCHES at DPI, NCOLS panels a row.
"""
from __future__ import annotations

import math
import os

import numpy as np

PANEL_INCHES = (4.0, 3.0)     # width, height of one leaf's panel
DPI = 100
NCOLS = 3                     # panels per row of the figure
CLIP = 4                      # colour scale: log10 ratio from -CLIP to +CLIP
FORMATS = ("png", "pdf", "svg")


def panels(report):
    """[(leaf, row)]: per leaf (in table order) the row with a per-element ratio that is
    furthest off (largest max ratio; rows that are n/a or info are not witnesses)."""
    best = {}
    for r in report.rows:
        if r.ratio is None or r.status in ("n/a", "info") or np.size(r.ratio) == 0:
            continue
        worst = _max_ratio(r.ratio)
        if r.primal not in best or worst > _max_ratio(best[r.primal].ratio):
            best[r.primal] = r
    return list(best.items())


def _max_ratio(ratio):
    a = np.asarray(ratio, np.float64)
    return float(np.nanmax(a)) if a.size and not np.isnan(a).all() else 0.0


def as_matrix(ratio):
    """A leaf's ratios as a 2-D array (rows: leading axes flattened, columns: the last axis)."""
    a = np.asarray(ratio, np.float64)
    if a.ndim == 0:
        return a.reshape(1, 1)
    if a.ndim == 1:
        return a.reshape(1, -1)
    return a.reshape(-1, a.shape[-1])


def figure_size(n_panels):
    """(width, height) in pixels of the figure for n_panels leaves."""
    cols = min(NCOLS, n_panels)
    rows = math.ceil(n_panels / cols)
    return round(cols * PANEL_INCHES[0] * DPI), round(rows * PANEL_INCHES[1] * DPI)


def save(report, path, title=None):
    """Draw report's per-leaf heatmaps into path (format from its suffix: png, pdf, svg),
    atomically. Returns the leaf names drawn, in order. ValueError when no row of the report
    compares element by element (nothing to draw) or the suffix is not a known format."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    from fnnet import atomic

    fmt = os.path.splitext(os.fspath(path))[1].lstrip(".").lower()
    if fmt not in FORMATS:
        raise ValueError(f"report.plot: the file name must end in one of {['.' + f for f in FORMATS]}, "
                         f"got {os.fspath(path)!r}")
    chosen = panels(report)
    if not chosen:
        raise ValueError(f"report.plot: no row of {report.title!r} compares element by element "
                         f"(directional finite differences only, or nothing judged): nothing to draw")
    cols = min(NCOLS, len(chosen))
    rows = math.ceil(len(chosen) / cols)
    fig = Figure(figsize=(cols * PANEL_INCHES[0], rows * PANEL_INCHES[1]), dpi=DPI)
    FigureCanvasAgg(fig)
    norm = TwoSlopeNorm(vmin=-CLIP, vcenter=0.0, vmax=CLIP)
    image = None
    for k, (leaf, row) in enumerate(chosen):
        ax = fig.add_subplot(rows, cols, k + 1)
        m = as_matrix(row.ratio)
        with np.errstate(divide="ignore", invalid="ignore"):
            shown = np.clip(np.log10(np.where(np.isnan(m), np.inf, m)), -CLIP, CLIP)
        image = ax.imshow(shown, cmap="coolwarm", norm=norm, aspect="auto", interpolation="nearest")
        worst = np.unravel_index(int(np.nanargmax(np.where(np.isnan(m), np.inf, m))), m.shape)
        if m[worst] > 0:
            ax.plot([worst[1]], [worst[0]], marker="x", color="black", markersize=8)
        ax.set_title(f"{leaf} vs {row.oracle}\nmax {_max_ratio(row.ratio):.2g}·tol: {row.status}", fontsize=8)
        shape = np.shape(row.ratio)
        ax.set_xlabel(f"last axis of {list(shape)}" if len(shape) else "scalar", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        if m.shape[0] == 1:
            ax.set_yticks([0])
    height = rows * PANEL_INCHES[1]
    fig.subplots_adjust(top=1 - 0.75 / height, bottom=0.45 / height, hspace=0.9 / PANEL_INCHES[1] * 2)
    fig.colorbar(image, ax=fig.axes, shrink=0.8, label="log10(|actual - expected| / tol)")
    fig.suptitle(title or f"{report.title}: where the error lies ({'ok' if report.ok else 'FAIL'})", fontsize=9)
    atomic.write(path, lambda f: fig.savefig(f, dpi=DPI, format=fmt), where="report.plot")
    return [leaf for leaf, _ in chosen]
