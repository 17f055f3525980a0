"""Figures for `fnnet train --plot`: loss curves, and decision regions for 2-D data.

Uses matplotlib's object API with the Agg canvas (no pyplot, no global backend
switch), so it works headless and inside other programs.
"""
from __future__ import annotations

import numpy as np

import fnnet

CLASS_COLORS = ("#4c72b0", "#dd8452", "#55a868", "#8172b3", "#937860",
                "#da8bc3", "#8c8c8c", "#ccb974", "#64b5cd", "#c44e52")
RIGHT, WRONG = "#1f1f1f", "#e41a1c"     # seed 002's figure: correct points vs wrong in red


def predicted_class(net, params, x):
    """x [batch, d] -> int class [batch]: argmax for k > 1 outputs, output > 0.5 for one.

    One compiled predict per call (eager op-by-op dispatch is slow for a big grid).
    """
    import jax
    out = np.asarray(jax.jit(fnnet.predict, static_argnums=0)(net, params, x))
    return out.argmax(axis=-1) if out.shape[-1] > 1 else (out[:, 0] > 0.5).astype(int)


def _loss_axes(ax, history, title, split="test"):
    epochs = np.arange(1, len(history.loss) + 1)
    ax.plot(epochs, history.loss, label="training loss (mean over the epoch's steps)", lw=1.5)
    if history.val_loss is not None:
        ax.plot(epochs, history.val_loss, label=f"{split} loss (after the epoch)", lw=1.5, ls="--")
    positive = np.concatenate([history.loss, history.val_loss if history.val_loss is not None else []])
    if positive.size and np.all(positive[np.isfinite(positive)] > 0):
        ax.set_yscale("log")
    from matplotlib.ticker import MaxNLocator
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("loss (incl. L2 penalty)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper right", fontsize=9)


def _accuracy_axes(ax, history, what):
    from matplotlib.ticker import MaxNLocator
    epochs = np.arange(1, len(history.val_accuracy) + 1)
    ax.plot(epochs, 100 * history.val_accuracy, color="#55a868", lw=1.5)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(f"{what} (%)")
    if len(epochs):
        ax.set_title(f"{what} per epoch (final {100 * history.val_accuracy[-1]:.2f}%)")
    ax.grid(True, alpha=0.3)


def _regions_axes(ax, net, params, x, labels, k, resolution=250):
    """Predicted class over a grid around the data, test points marked right / wrong."""
    x = np.asarray(x)
    lo, hi = x.min(axis=0), x.max(axis=0)
    pad = 0.1 * np.maximum(hi - lo, 1e-3) + 0.25
    gx, gy = np.meshgrid(np.linspace(lo[0] - pad[0], hi[0] + pad[0], resolution),
                         np.linspace(lo[1] - pad[1], hi[1] + pad[1], resolution))
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(x.dtype)
    both = predicted_class(net, params, np.concatenate([grid, x]))    # one call, one compile
    zone, pred = both[:grid.shape[0]].reshape(gx.shape), both[grid.shape[0]:]
    n_cls = max(k, 2)
    from matplotlib.colors import ListedColormap
    cmap = ListedColormap(CLASS_COLORS[:n_cls])
    ax.contourf(gx, gy, zone, levels=np.arange(n_cls + 1) - 0.5, cmap=cmap, alpha=0.3)
    ax.contour(gx, gy, zone, levels=np.arange(n_cls) + 0.5, colors="k", linewidths=0.6, alpha=0.6)
    ok = pred == labels
    size = 60 if len(x) <= 50 else 8
    ax.scatter(x[ok, 0], x[ok, 1], s=size, c=RIGHT, marker="o", lw=0, alpha=0.7,
               label=f"test point, right ({int(ok.sum())})")
    ax.scatter(x[~ok, 0], x[~ok, 1], s=size * 3, c=WRONG, marker="x", lw=1.5,
               label=f"test point, wrong ({int((~ok).sum())})")
    for c in range(n_cls):   # legend entries for the region colours
        ax.scatter([], [], s=80, marker="s", color=CLASS_COLORS[c], alpha=0.4, label=f"predicted class {c}")
    ax.set_xlabel("x[0]")
    ax.set_ylabel("x[1]")
    ax.set_title(f"decision regions, test accuracy {100 * ok.mean():.2f}%")
    ax.legend(loc="best", fontsize=8, framealpha=0.85)


def save_figure(path, net, params, history, *, title, x_test=None, labels_test=None, k=None, split="test"):
    """Write the figure to `path` (.png/.pdf/.svg) and return it: loss curves, then for 2-D inputs
    with `x_test` given the decision regions with the test points right/wrong, else the
    accuracy per epoch on the held-out data (when the history has it). split: what the
    history's validation data is ("test", or "validation" for `fnnet gpt train`)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    regions = x_test is not None and net.in_shape == (2,)
    curve = not regions and history.val_accuracy is not None
    fig = Figure(figsize=(13, 5.5) if regions or curve else (7, 5), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2 if regions or curve else 1, squeeze=False)[0]
    _loss_axes(axes[0], history, "loss per epoch", split)
    if regions:
        _regions_axes(axes[1], net, params, x_test, np.asarray(labels_test), k)
    elif curve:
        multi_label = isinstance(net.loss, fnnet.SigmoidBinaryCrossEntropy) and fnnet.out_shape(net)[-1] > 1
        _accuracy_axes(axes[1], history, f"{split} accuracy, per output" if multi_label else f"{split} accuracy")
    fig.suptitle(title, fontsize=10)
    import os
    from fnnet import atomic
    fmt = os.path.splitext(os.fspath(path))[1].lstrip(".").lower() or "png"
    atomic.write(path, lambda f: fig.savefig(f, dpi=100, format=fmt), where="plot")   # never half a file
    return fig
