"""fnnet.check's bridge to reference/: a bug planted in a built-in's backward is caught by the
reference row itself, and where there is no twin the row says so. That every built-in layer and
loss that `fnnet check` runs has its NumPy float64 twin as a witness is tested with `fnnet check`
itself, whose reports it reads (tests/cli/test_cli_check.py).

Planted bugs are subclasses that keep the built-in's forward and override backward (fnnet's
files are never edited); a subclass that changes the forward has no twin.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnnet
from fnnet.check import bridge


def _reference_rows(report):
    return [r for r in report.rows if r.kind == "reference"]


def test_the_sequence_loss_has_its_default_reference():
    rng = np.random.default_rng(1)
    out, target = rng.standard_normal((2, 4, 6)), rng.integers(0, 6, (2, 4)).astype(np.int32)
    report = fnnet.check.check_loss(fnnet.SequenceCrossEntropy(), out, target)
    (row,) = report.rows_for("out", "reference")
    assert row.status == "ok" and report.ok, str(report)


# -- planted bugs, each caught by the reference row ---------------------------------------------

class LayerNormWithoutVarianceTerm(fnnet.LayerNorm):
    def backward(self, params, cache, dy):          # dx drops -x̂ · mean(g ⊙ x̂): σ² treated as constant
        xhat, rstd = cache
        dp, _ = super().backward(params, cache, dy)
        g = dy * params.gamma[None, None, :]
        return dp, rstd * (g - g.mean(axis=-1, keepdims=True))


class AttentionUnscaledQuery(fnnet.CausalSelfAttention):
    def backward(self, params, cache, dy):          # dL/dq without the 1/√D of s = q kᵀ/√D
        dp, dx = super().backward(params, cache, dy)
        d = self.dim // self.heads
        return dp._replace(w_qkv=dp.w_qkv.at[:, :self.dim].multiply(np.sqrt(d))), dx


class GRUForgetsReset(fnnet.GRU):
    def backward(self, params, cache, dy):          # dL/db_hn = Σ dL/da_n, forgetting ⊙ r
        dp, dx = super().backward(params, cache, dy)
        return dp._replace(bhn=dp.b[2 * self.hidden:]), dx


class EmbeddingOverwrites(fnnet.Embedding):
    def backward(self, params, cache, dy):          # repeated ids overwrite instead of adding up
        dw = jnp.zeros_like(params.w).at[cache.reshape(-1)].set(dy.reshape(-1, self.dim))
        return type(params)(dw), None


class ResidualWithoutSkip(fnnet.Residual):
    def backward(self, params, cache, dy):          # the classic: dx = block's dx, the skip's dy lost
        return self.block.backward(params, cache, dy)


class DropoutUnscaled(fnnet.Dropout):
    def backward(self, params, cache, dy):          # dx = m ⊙ dy, without 1/(1 - rate)
        return (), jnp.where(cache, dy, 0)


class ConvTransposeFlippedKernel(fnnet.ConvTranspose2D):
    def backward(self, params, cache, dy):          # dw in the flipped kernel's layout
        dp, dx = super().backward(params, cache, dy)
        return dp._replace(w=jnp.flip(dp.w, (0, 1))), dx


def _params(layer, in_shape, seed):
    p, _ = layer.init(jax.random.key(seed), in_shape)
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda a: np.asarray(a, np.float64) + 0.3 * rng.standard_normal(np.shape(a)), p)


SEQ = np.random.default_rng(5).standard_normal((2, 5, 4))
IDS = np.array([[0, 0, 3, 1, 6], [2, 5, 0, 4, 4]], np.int32)        # repeated ids in a row and across rows
PLANTED = {
    "layernorm": (LayerNormWithoutVarianceTerm(), SEQ, {}, "x"),
    "attention": (AttentionUnscaledQuery(2, 4), SEQ, {}, "params.w_qkv"),
    "gru": (GRUForgetsReset(3), SEQ, {}, "params.bhn"),
    "embedding": (EmbeddingOverwrites(7, 4), IDS, {}, "params.w"),
    "residual": (ResidualWithoutSkip(fnnet.Sequential((fnnet.RMSNorm(), fnnet.Positionwise(fnnet.Dense(4))))),
                 SEQ, {}, "x"),
    "dropout": (DropoutUnscaled(0.3), SEQ, {"forward_key": jax.random.key(2)}, "x"),
    "conv_transpose": (ConvTransposeFlippedKernel(2, 3, 2, "same"),
                       np.random.default_rng(6).standard_normal((2, 3, 3, 2)), {}, "params.w"),
}


@pytest.mark.parametrize("name", sorted(PLANTED))
def test_a_planted_backward_bug_fails_the_reference_row(name):
    layer, x, kw, leaf = PLANTED[name]
    report = fnnet.check.check_layer(layer, _params(layer, x.shape[1:], 3), x, **kw)
    (row,) = report.rows_for(leaf, "reference")
    assert row.status == "FAIL", str(report)
    assert not report.ok          # (the built-ins themselves pass: the cases above)


def test_a_planted_sequence_loss_bug_fails_the_reference_row():
    class SmoothingIgnored(fnnet.SequenceCrossEntropy):
        def grad(self, out, target, mask=None):     # the one-hot target, label smoothing forgotten
            return fnnet.SequenceCrossEntropy(self.ignore_index).grad(out, target, mask)
    rng = np.random.default_rng(7)
    out, target = rng.standard_normal((2, 4, 6)), rng.integers(0, 6, (2, 4)).astype(np.int32)
    report = fnnet.check.check_loss(SmoothingIgnored(label_smoothing=0.2), out, target)
    (row,) = report.rows_for("out", "reference")
    assert row.status == "FAIL", str(report)


# -- where there is no twin, and options the twin must follow ------------------------------------

def test_a_changed_forward_has_no_twin():
    class Shifted(fnnet.LayerNorm):
        def forward(self, params, x):
            y, cache = super().forward(params, x)
            return y + 1.0, cache
    layer = Shifted()
    report = fnnet.check.check_layer(layer, _params(layer, (5, 4), 1), SEQ)
    assert {r.status for r in _reference_rows(report)} == {"n/a"} and report.ok, str(report)


def test_a_combinator_with_a_part_without_twin_has_none():
    class Double(fnnet.Identity):
        def forward(self, params, x):
            return 2 * x, x

        def backward(self, params, cache, dy):
            return (), 2 * dy
    layer = fnnet.Residual(fnnet.Sequential((fnnet.LayerNorm(), Double())))
    report = fnnet.check.check_layer(layer, _params(layer, (5, 4), 1), SEQ)
    assert {r.status for r in _reference_rows(report)} == {"n/a"} and report.ok, str(report)
    assert "reference=callable" in report.rows_for("x", "reference")[0].note


def test_dropout_twin_follows_the_mode_and_refuses_a_mesh_axis():
    layer = fnnet.Dropout(0.4)
    report = fnnet.check.check_layer(layer, (), SEQ, forward_key=jax.random.key(4), train=False)
    assert report.rows_for("x", "reference")[0].status == "ok" and report.ok, str(report)
    sharded = fnnet.Dropout(0.4, axis_name="data")
    assert bridge.layer_vjp(sharded, train=True, key=jax.random.key(4)) is None
    assert "mesh" in bridge.why_missing(sharded)


@pytest.mark.parametrize("kind", ["RNN", "LSTM"])
def test_recurrent_twin_takes_the_initial_state(kind):
    layer = getattr(fnnet, kind)(3)
    rng = np.random.default_rng(8)
    h0 = [jnp.asarray(rng.standard_normal((2, 3))) for _ in range(2)]
    initial = fnnet.LSTMState(*h0) if kind == "LSTM" else h0[0]
    report = fnnet.check.check_layer(layer, _params(layer, (5, 4), 2), SEQ, forward_kwargs={"initial": initial})
    assert all(r.status == "ok" for r in _reference_rows(report)) and report.ok, str(report)
