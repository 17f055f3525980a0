"""How much gradient error a lower matmul precision introduces, against the float32 rule.

    report = fnnet.check.precision_report(net, params, x, y, matmul_dtype="bfloat16")
    print(report)          # one row per parameter leaf: max abs error, relative error
    report.worst           # the largest relative error over the leaves

The rule under test is fnnet's hand-written backward of the net with every Dense doing
its matmuls in `matmul_dtype` (fnnet.layers.dense.with_matmul_dtype); the baseline is the
same hand-written backward in the params' own precision (float32), on the same params and
data. This is not a pass/fail check: bfloat16 keeps 8 bits of mantissa, so a few percent
of relative error is what it costs; the report says how much, leaf by leaf. With float64
enabled the float32 rule's own error against float64 is shown beside it, for scale.
Relative error = max |a - b| / max(|a|max, |b|max), as in the rest of fnnet.check, and
the norm form ‖a - b‖₂ / ‖b‖₂ (what "x% gradient error" usually means).
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from fnnet.layers.dense import with_matmul_dtype


class PrecisionRow(NamedTuple):
    leaf: str                  # e.g. "[0].w": layer index and field
    shape: tuple
    max_abs: float             # max |low - float32|
    rel: float                 # max |low - float32| / scale of the float32 gradient
    rel_norm: float            # ‖low - float32‖₂ / ‖float32‖₂
    rel_f32_vs_f64: Optional[float]   # the float32 rule's own error vs float64 (x64 only)


class PrecisionReport(NamedTuple):
    title: str
    matmul_dtype: str
    loss: float                # loss of the float32 net
    loss_low: float            # loss of the low-precision net
    rows: tuple                # PrecisionRow per parameter leaf

    @property
    def worst(self):
        return max((r.rel for r in self.rows), default=0.0)

    @property
    def worst_norm(self):
        return max((r.rel_norm for r in self.rows), default=0.0)

    def __str__(self):
        lines = [f"{self.title}: gradient error of {self.matmul_dtype} matmuls against the "
                 f"float32 rule (hand-written backward in both)",
                 f"  loss: float32 {self.loss:.7g}, {self.matmul_dtype} {self.loss_low:.7g} "
                 f"(rel diff {abs(self.loss_low - self.loss) / max(abs(self.loss), 1e-30):.2e})",
                 f"  {'leaf':<10} {'shape':<14} {'max abs err':>12} {'rel err':>9} {'‖err‖/‖g‖':>10} "
                 f"{'f32 vs f64':>11}"]
        for r in self.rows:
            f64 = "—" if r.rel_f32_vs_f64 is None else f"{r.rel_f32_vs_f64:.1e}"
            lines.append(f"  {r.leaf:<10} {str(list(r.shape)):<14} {r.max_abs:>12.3e} {r.rel:>9.2%} "
                         f"{r.rel_norm:>10.2%} {f64:>11}")
        lines.append(f"  worst relative error: {self.worst:.2%} (max-abs / scale), "
                     f"{self.worst_norm:.2%} (norm)")
        return "\n".join(lines)


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = max(np.abs(a).max(initial=0.0), np.abs(b).max(initial=0.0), 1e-300)
    return float(np.abs(a - b).max(initial=0.0)), float(np.abs(a - b).max(initial=0.0) / scale)


def precision_report(net, params, x, y, *, matmul_dtype="bfloat16"):
    """Per-leaf error of the `matmul_dtype` gradient of `net` against the float32 one.

    net: fnnet.Network with Dense layers; params: float32 (as fnnet.init makes them);
    x [batch, *in_shape] float32; y: the loss's targets. Raises like fnnet.backprop on
    bad input, and TypeError when params are not float32 (the baseline is the float32 rule).
    """
    from fnnet import network as _network
    from fnnet.contracts import check_params

    dtype = check_params(net, params)
    if dtype != jnp.float32:
        raise TypeError(f"precision_report: params must be float32 (the baseline is the float32 "
                        f"rule), got {dtype}")
    low_net = with_matmul_dtype(net, matmul_dtype)
    base_net = with_matmul_dtype(net, None)
    run = jax.jit(lambda n, p, x, y: _network.value_and_grad(n, p, x, y), static_argnums=0)
    loss, g32 = run(base_net, params, x, y)
    loss_low, glow = run(low_net, params, x, y)
    g64 = None
    if jax.config.jax_enable_x64:
        cast = lambda t: jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), t)
        y64 = y if not jnp.issubdtype(jnp.asarray(y).dtype, jnp.floating) else cast(y)
        _, g64 = run(base_net, cast(params), cast(x), y64)
    rows = []
    leaves32 = jax.tree_util.tree_leaves_with_path(g32)
    leaves64 = jax.tree.leaves(g64) if g64 is not None else [None] * len(leaves32)
    for (path, a), b, c in zip(leaves32, jax.tree.leaves(glow), leaves64):
        max_abs, rel = _rel(b, a)
        a64, d64 = np.asarray(a, np.float64), np.asarray(b, np.float64) - np.asarray(a, np.float64)
        rel_norm = float(np.linalg.norm(d64) / max(np.linalg.norm(a64), 1e-300))
        rows.append(PrecisionRow(jax.tree_util.keystr(path), tuple(a.shape), max_abs, rel, rel_norm,
                                 None if c is None else _rel(a, c)[1]))
    return PrecisionReport(str(net), str(matmul_dtype), float(loss), float(loss_low), tuple(rows))
