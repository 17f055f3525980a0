"""Recurrent layers over [batch, T, C]: RNN (tanh), LSTM and GRU, with hand-written
backpropagation through time (a reverse `lax.scan` carrying dL/dh backwards).

Shapes: x [B, T, C] -> y [B, T, H] (return_sequences=True, every step's hidden state) or
y [B, H] (return_sequences=False, the last state). Weights: wx [C, G], wh [H, G], b [G] with
G = H (RNN), 4H (LSTM: gates i, f, g, o) or 3H (GRU: gates r, u, n).

The input projection x·wx + b of every step is one matmul before the scan; the scan runs the
recurrence h_{t-1} -> h_t. The backward is one reverse scan that yields each step's gate
pre-activation gradients dz_t [B, G]; dwx, dwh, db and dx are then single contractions over
(batch, time), outside the loop.

What the forward keeps for the backward: the input x, the state entering each step
(h_{t-1}, and c_{t-1} for the LSTM) and each step's gate activations (LSTM: i, f, g, o and c_t;
GRU: r, u, n and h_{t-1}·wh_n + b_hn; RNN: h_t). What the backward recomputes: tanh(c_t) for
the LSTM (one elementwise op per step), nothing else; no matmul of the forward is redone.

Padded sequences (masked=True): x carries one extra last channel, the mask (1 for a real step,
0 for padding; a step is real where the channel is > 0.5). A padded step leaves the state
unchanged and outputs zeros, so the last state is the state at each sequence's own length;
the mask channel gets no gradient (dx[..., -1] = 0) and the dy of padded steps is dropped.
`mask_channel(x, lengths)` appends it from lengths. The mask travels inside x so that a
Network and `check_layer` pass it without any extra argument.

Initial state: `forward(params, x, initial=h0)` (LSTM: `LSTMState(h0, c0)`), zeros by default;
`backward_initial(params, cache, dy)` also returns dL/d(initial) for truncated BPTT, and
`final_state(cache)` the state after the last (real) step.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from fnnet import initializers as _init
from fnnet.validate import check_floating, check_same_dtype
from fnnet import validate


class RNNParams(NamedTuple):
    wx: jax.Array  # [C, H]
    wh: jax.Array  # [H, H]
    b: jax.Array   # [H]


class LSTMParams(NamedTuple):
    wx: jax.Array  # [C, 4H]  gates i, f, g, o side by side
    wh: jax.Array  # [H, 4H]
    b: jax.Array   # [4H]


class GRUParams(NamedTuple):
    wx: jax.Array   # [C, 3H]  gates r, u, n side by side
    wh: jax.Array   # [H, 3H]
    b: jax.Array    # [3H]     input-side bias
    bhn: jax.Array  # [H]      hidden-side bias of n, inside r ⊙ (h·wh_n + b_hn)


class LSTMState(NamedTuple):
    h: jax.Array  # [B, H]
    c: jax.Array  # [B, H]


class RecurrentCache(NamedTuple):
    x: jax.Array      # [B, T, C] the features (mask channel removed)
    mask: object      # [T, B, 1] bool, or None when not masked
    prev: tuple       # state entering each step: (h_{t-1} [T, B, H],) or (h_{t-1}, c_{t-1})
    keep: tuple       # per-step gate activations, [T, B, ...] each
    final: tuple      # state after the last real step, [B, H] each


def mask_channel(x, lengths):
    """x [B, T, C], lengths [B] ints in 1..T -> [B, T, C + 1]: the mask channel appended
    (1 where t < length, 0 after), for a recurrent layer built with masked=True."""
    t = jnp.arange(x.shape[1])
    m = (t[None, :] < jnp.asarray(lengths)[:, None]).astype(x.dtype)   # [B, T]
    return jnp.concatenate([x, m[:, :, None]], axis=2)


def _sigmoid(a):
    return jax.nn.sigmoid(a)


def _where(m, a, b):
    """a where the step is real, b where it is padding (m None: no padding)."""
    return a if m is None else jnp.where(m, a, b)


@dataclasses.dataclass(frozen=True)
class _Recurrent:
    hidden: int
    return_sequences: bool = True
    masked: bool = False
    w_init: str = "glorot_uniform"
    b_init: str = "zeros"

    gates = 1       # G / H
    n_state = 1     # (h,) or (h, c)

    def __post_init__(self):
        where = f"{type(self).__name__}({self.hidden!r})"
        validate.int_at_least(where, "hidden", self.hidden)
        for name in ("return_sequences", "masked"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{where}: {name} must be True or False, got {getattr(self, name)!r}")
        _init.get(self.w_init), _init.get(self.b_init)

    def __str__(self):
        extra = ("" if self.return_sequences else ", last") + (", masked" if self.masked else "")
        return f"{type(self).__name__}({self.hidden}{extra})"

    # ---- shapes and checks ------------------------------------------------------------
    def init(self, key, in_shape):
        """in_shape (T, C) (C + 1 with masked=True) -> (params, (T, H) or (H,))."""
        in_shape = tuple(in_shape)
        if len(in_shape) != 2:
            raise ValueError(f"{self}: input must be sequences [batch, T, C], got feature shape {in_shape}")
        t, c = in_shape
        c -= self.masked
        if c < 1:
            raise ValueError(f"{self}: needs at least one feature channel besides the mask, got {in_shape}")
        h, g = self.hidden, self.gates * self.hidden
        kx, kh, kb, kn = jax.random.split(key, 4)
        f32 = jnp.float32   # drawn in float32 whatever x64 says; fnnet.init casts
        wi, bi = _init.get(self.w_init), _init.get(self.b_init)
        params = type(self)._Params(wi(kx, (c, g), f32), wi(kh, (h, g), f32), bi(kb, (g,), f32),
                                    *([bi(kn, (h,), f32)] if len(type(self)._Params._fields) == 4 else []))
        return params, ((t, h) if self.return_sequences else (h,))

    def _check(self, params, x, initial):
        where = str(self)
        check_floating(where, "x", x)
        if x.ndim != 3 or x.shape[0] < 1 or x.shape[1] < 1:
            raise ValueError(f"{where}: x must be sequences [batch, T, C] with batch, T >= 1, "
                             f"got shape {tuple(x.shape)}")
        h, g = self.hidden, self.gates * self.hidden
        for name, leaf in zip(params._fields, params):
            check_floating(where, f"params.{name}", leaf)
            check_same_dtype(where, "x", x, leaf.dtype)
        c = params.wx.shape[0] if params.wx.ndim == 2 else None
        want = {"wx": (c, g), "wh": (h, g), "b": (g,), "bhn": (h,)}
        for name, leaf in zip(params._fields, params):
            if c is None or tuple(leaf.shape) != want[name]:
                raise ValueError(f"{where}: params.{name} must be {list(want[name])} (C = x's channels), "
                                 f"got {tuple(leaf.shape)}")
        if x.shape[2] != c + self.masked:
            mask = " + 1 mask channel" if self.masked else ""
            raise ValueError(f"{where}: x must have {c}{mask} channels (last axis), got shape {tuple(x.shape)}")
        if initial is not None:
            parts = (initial,) if self.n_state == 1 else initial
            if not isinstance(parts, tuple) or len(parts) != self.n_state:
                raise ValueError(f"{where}: initial must be LSTMState(h, c), got {type(initial).__name__}")
            for p in parts:
                if getattr(p, "shape", None) != (x.shape[0], h) or p.dtype != x.dtype:
                    raise ValueError(f"{where}: initial state must be [{x.shape[0]}, {h}] {x.dtype}, got "
                                     f"{getattr(p, 'shape', p)} {getattr(p, 'dtype', '')}")

    # ---- forward: the input projection, then the recurrence in a scan --------------------
    def forward(self, params, x, initial=None):
        """x [B, T, C(+1 mask)] -> (y [B, T, H] or [B, H], cache); initial: [B, H]
        (LSTM: LSTMState) or None for zeros."""
        self._check(params, x, initial)
        feats, m = (x[..., :-1], x[..., -1] > 0.5) if self.masked else (x, None)
        mt = None if m is None else jnp.swapaxes(m, 0, 1)[:, :, None]             # [T, B, 1]
        xz = jnp.einsum("btc,cg->tbg", feats, params.wx) + params.b[None, None, :]   # x_t·wx + b, [T, B, G]
        zeros = jnp.zeros((x.shape[0], self.hidden), x.dtype)
        carry0 = ((zeros,) * self.n_state if initial is None
                  else (initial,) if self.n_state == 1 else tuple(initial))

        def body(carry, inp):
            xz_t, m_t = inp
            new, keep = self._step(params, xz_t, carry)
            nxt = tuple(_where(m_t, n, c) for n, c in zip(new, carry))   # padding: state unchanged
            return nxt, (carry, keep, _where(m_t, new[0], 0.0))          # padding: output 0

        final, (prev, keep, ys) = lax.scan(body, carry0, (xz, mt))
        y = jnp.swapaxes(ys, 0, 1) if self.return_sequences else final[0]
        return y, RecurrentCache(feats, mt, prev, keep, final)

    def final_state(self, cache):
        """The state after each sequence's last real step: h [B, H] (LSTM: LSTMState(h, c))."""
        return cache.final[0] if self.n_state == 1 else LSTMState(*cache.final)

    # ---- backward: a reverse scan carrying dL/dstate ---------------------------------------
    def backward(self, params, cache, dy):
        """dy like y -> (dparams like params, dx like x)."""
        dparams, dx, _ = self.backward_initial(params, cache, dy)
        return dparams, dx

    def backward_initial(self, params, cache, dy, dfinal=None):
        """dy like y (and dfinal, a cotangent of final_state, or None) -> (dparams, dx,
        d initial state [B, H] / LSTMState)."""
        x, mt, prev, keep, final = cache
        b, t = x.shape[:2]
        want = (b, t, self.hidden) if self.return_sequences else (b, self.hidden)
        validate.check_dy(str(self), dy, want)
        zeros = jnp.zeros((b, self.hidden), dy.dtype)
        dcarry = [zeros] * self.n_state if dfinal is None else list((dfinal,) if self.n_state == 1 else dfinal)
        if len(dcarry) != self.n_state or any(getattr(d, "shape", None) != (b, self.hidden) for d in dcarry):
            raise ValueError(f"{self}: dfinal must be like final_state: "
                             f"{'LSTMState of ' if self.n_state == 2 else ''}[{b}, {self.hidden}], got {dfinal!r:.80}")
        if self.return_sequences:
            dys = jnp.swapaxes(dy, 0, 1)                    # [T, B, H]
        else:
            dys = None
            dcarry[0] = dcarry[0] + dy                       # y = h_T: dL/dh_T = dy

        def body(dcar, inp):
            prev_t, keep_t, m_t, dy_t = inp
            dnew = (dcar[0] if dy_t is None else dcar[0] + dy_t,) + dcar[1:]   # dL/dh_t = carried + dy_t
            dnew = tuple(_where(m_t, d, 0.0) for d in dnew)          # a padded step's h_t is not computed
            dzx, dzh, dprev = self._step_back(params, prev_t, keep_t, dnew)
            dprev = tuple(p + _where(m_t, 0.0, d) for p, d in zip(dprev, dcar))   # padding: state passed through
            return dprev, (dzx, dzh)

        dinit, (dzx, dzh) = lax.scan(body, tuple(dcarry), (prev, keep, mt, dys), reverse=True)
        dwx = jnp.einsum("btc,tbg->cg", x, dzx)             # dL/dwx = Σ_{b,t} x_tᵀ · dz_t
        dwh = jnp.einsum("tbh,tbg->hg", prev[0], dzh)       # dL/dwh = Σ_{b,t} h_{t-1}ᵀ · dz_t (hidden side)
        db = dzx.sum(axis=(0, 1))                           # dL/db = Σ_{b,t} dz_t
        dx = jnp.einsum("tbg,cg->btc", dzx, params.wx)      # dL/dx_t = dz_t · wxᵀ
        if self.masked:
            dx = jnp.concatenate([dx, jnp.zeros(dx.shape[:2] + (1,), dx.dtype)], axis=2)   # the mask: no gradient
        dparams = self._dparams(dwx, dwh, db, dzh)
        return dparams, dx, (dinit[0] if self.n_state == 1 else LSTMState(*dinit))

    def _dparams(self, dwx, dwh, db, dzh):
        return type(self)._Params(dwx, dwh, db)

    def l2_mask(self, params):
        """L2 covers the weight matrices, never the biases."""
        del params
        return type(self)._Params(*[f.startswith("w") for f in type(self)._Params._fields])


@dataclasses.dataclass(frozen=True)
class RNN(_Recurrent):
    """RNN(hidden): h_t = tanh(x_t·wx + h_{t-1}·wh + b) (Elman). Params: RNNParams(wx [C, H],
    wh [H, H], b [H]). x [B, T, C] -> [B, T, H] (or [B, H] with return_sequences=False)."""
    _Params = RNNParams

    def _step(self, params, xz_t, carry):
        h = jnp.tanh(xz_t + carry[0] @ params.wh)           # h_t = tanh(a_t), a_t = x_t·wx + b + h_{t-1}·wh
        return (h,), h

    def _step_back(self, params, prev_t, h, dnew):
        da = dnew[0] * (1 - h * h)                          # dL/da_t = dL/dh_t ⊙ (1 − h_t²)
        return da, da, (da @ params.wh.T,)                  # dL/dh_{t-1} = dL/da_t · whᵀ


@dataclasses.dataclass(frozen=True)
class LSTM(_Recurrent):
    """LSTM(hidden): gates [i f g o] = [σ σ tanh σ](x_t·wx + h_{t-1}·wh + b);
    c_t = f ⊙ c_{t-1} + i ⊙ g;  h_t = o ⊙ tanh(c_t). Params: LSTMParams(wx [C, 4H], wh [H, 4H],
    b [4H]). x [B, T, C] -> [B, T, H] (or [B, H]); the state is LSTMState(h, c)."""
    _Params = LSTMParams
    gates = 4
    n_state = 2

    def _step(self, params, xz_t, carry):
        h_prev, c_prev = carry
        a = xz_t + h_prev @ params.wh                       # a_t = x_t·wx + b + h_{t-1}·wh, [B, 4H]
        i, f, g, o = jnp.split(a, 4, axis=1)
        i, f, g, o = _sigmoid(i), _sigmoid(f), jnp.tanh(g), _sigmoid(o)
        c = f * c_prev + i * g                              # c_t = f ⊙ c_{t-1} + i ⊙ g
        h = o * jnp.tanh(c)                                 # h_t = o ⊙ tanh(c_t)
        return (h, c), (jnp.concatenate([i, f, g, o], axis=1), c)

    def _step_back(self, params, prev_t, keep_t, dnew):
        (_, c_prev), (gates, c), (dh, dc) = prev_t, keep_t, dnew
        i, f, g, o = jnp.split(gates, 4, axis=1)
        tc = jnp.tanh(c)                                    # recomputed: tanh(c_t)
        do = dh * tc                                        # dL/do = dL/dh ⊙ tanh(c_t)
        dc = dc + dh * o * (1 - tc * tc)                    # dL/dc_t += dL/dh ⊙ o ⊙ (1 − tanh²c_t)
        di = dc * g                                         # dL/di = dL/dc_t ⊙ g
        df = dc * c_prev                                    # dL/df = dL/dc_t ⊙ c_{t-1}
        dg = dc * i                                         # dL/dg = dL/dc_t ⊙ i
        da = jnp.concatenate([di * i * (1 - i),             # σ' = σ(1 − σ)
                              df * f * (1 - f),
                              dg * (1 - g * g),             # tanh' = 1 − tanh²
                              do * o * (1 - o)], axis=1)
        return da, da, (da @ params.wh.T, dc * f)           # dL/dh_{t-1} = da·whᵀ;  dL/dc_{t-1} = dL/dc_t ⊙ f


@dataclasses.dataclass(frozen=True)
class GRU(_Recurrent):
    """GRU(hidden) (cuDNN/PyTorch form, reset applied after the hidden matmul):
    r = σ(x·wx_r + b_r + h·wh_r), u = σ(x·wx_u + b_u + h·wh_u),
    n = tanh(x·wx_n + b_n + r ⊙ (h·wh_n + b_hn)), h_t = (1 − u) ⊙ n + u ⊙ h_{t-1}.
    Params: GRUParams(wx [C, 3H], wh [H, 3H], b [3H], bhn [H]). x [B, T, C] -> [B, T, H] (or [B, H])."""
    _Params = GRUParams
    gates = 3

    def _step(self, params, xz_t, carry):
        h_prev = carry[0]
        hz = h_prev @ params.wh                             # h_{t-1}·wh, [B, 3H]
        xr, xu, xn = jnp.split(xz_t, 3, axis=1)
        hr, hu, hn = jnp.split(hz, 3, axis=1)
        r = _sigmoid(xr + hr)                               # r = σ(a_r)
        u = _sigmoid(xu + hu)                               # u = σ(a_u)
        hn = hn + params.bhn[None, :]                       # h_{t-1}·wh_n + b_hn
        n = jnp.tanh(xn + r * hn)                           # n = tanh(a_n), a_n = x·wx_n + b_n + r ⊙ hn
        h = (1 - u) * n + u * h_prev                        # h_t = (1 − u) n + u h_{t-1}
        return (h,), jnp.concatenate([r, u, n, hn], axis=1)

    def _step_back(self, params, prev_t, keep_t, dnew):
        h_prev, dh = prev_t[0], dnew[0]
        r, u, n, hn = jnp.split(keep_t, 4, axis=1)
        dan = dh * (1 - u) * (1 - n * n)                    # dL/da_n = dL/dh ⊙ (1 − u) ⊙ (1 − n²)
        dau = dh * (h_prev - n) * u * (1 - u)               # dL/da_u = dL/dh ⊙ (h_{t-1} − n) ⊙ u(1 − u)
        dar = dan * hn * r * (1 - r)                        # dL/da_r = dL/da_n ⊙ hn ⊙ r(1 − r)
        dzx = jnp.concatenate([dar, dau, dan], axis=1)      # input side: x·wx + b feeds a_r, a_u, a_n
        dzh = jnp.concatenate([dar, dau, dan * r], axis=1)  # hidden side: dL/dhn = dL/da_n ⊙ r
        return dzx, dzh, (dh * u + dzh @ params.wh.T,)      # dL/dh_{t-1} = dL/dh ⊙ u + dzh·whᵀ

    def _dparams(self, dwx, dwh, db, dzh):
        return GRUParams(dwx, dwh, db, dzh[:, :, 2 * self.hidden:].sum(axis=(0, 1)))   # dL/db_hn = Σ dL/dhn
