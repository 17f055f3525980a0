"""RNN, LSTM and GRU over [B, T, C] in NumPy float64, step by step (CS231n's rnn_layers
longhand): a Python loop forward keeping every step's values, a Python loop backward.

Twins, one pair per cell, in the layers' params order:
    rnn_forward(x, wx, wh, b, **options)         rnn_backward(x, wx, wh, b, dy, **options)
    lstm_forward(x, wx, wh, b, **options)        lstm_backward(x, wx, wh, b, dy, **options)
    gru_forward(x, wx, wh, b, bhn, **options)    gru_backward(x, wx, wh, b, bhn, dy, **options)
Shapes: x [B, T, C] (C + 1 with masked=True: the last channel is the mask, > 0.5 a real step);
wx [C, G], wh [H, G], b [G] (G = H, 4H for LSTM gates i f g o, 3H for GRU gates r u n; GRU
also bhn [H]). Options (keyword-only): return_sequences (True: y [B, T, H], every step's
output, zeros on padded steps; False: y [B, H], the final h), masked, initial (h0 [B, H];
LSTM: (h0, c0); None: zeros). A padded step keeps the state and outputs zero.
Backward -> (dparams in params order, dx like x (0 on the mask channel)); dy is like y, dlast
[B, H] an extra cotangent on the final h; with initial given, d initial is appended (like initial).
"""
import numpy as np


def _sig(a):
    return 1.0 / (1.0 + np.exp(-a))


def _cell(kind, p, x_t, state):
    """One step: -> (new state tuple, record of intermediates)."""
    wx, wh, b = (np.asarray(p[k], np.float64) for k in ("wx", "wh", "b"))
    H = wh.shape[0]
    if kind == "rnn":
        (h,) = state
        hn = np.tanh(x_t @ wx + h @ wh + b)
        return (hn,), {"h": hn}
    if kind == "lstm":
        h, c = state
        a = x_t @ wx + h @ wh + b
        i, f, g, o = _sig(a[:, :H]), _sig(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]), _sig(a[:, 3 * H:])
        cn = f * c + i * g
        hn = o * np.tanh(cn)
        return (hn, cn), {"i": i, "f": f, "g": g, "o": o, "c": cn}
    (h,) = state
    bhn = np.asarray(p["bhn"], np.float64)
    ax, ah = x_t @ wx + b, h @ wh
    r = _sig(ax[:, :H] + ah[:, :H])
    u = _sig(ax[:, H:2 * H] + ah[:, H:2 * H])
    hh = ah[:, 2 * H:] + bhn
    n = np.tanh(ax[:, 2 * H:] + r * hh)
    hn = (1 - u) * n + u * h
    return (hn,), {"r": r, "u": u, "n": n, "hh": hh}


def _cell_back(kind, p, x_t, state, rec, dstate):
    """Backward of one step: -> (dict of param grads, dx_t, dstate_prev)."""
    wx, wh = np.asarray(p["wx"], np.float64), np.asarray(p["wh"], np.float64)
    if kind == "rnn":
        (h,), (dh,) = state, dstate
        da = dh * (1 - rec["h"] ** 2)
        return {"wx": x_t.T @ da, "wh": h.T @ da, "b": da.sum(0)}, da @ wx.T, (da @ wh.T,)
    if kind == "lstm":
        (h, c), (dh, dc) = state, dstate
        i, f, g, o, cn = (rec[k] for k in "ifgoc")
        tc = np.tanh(cn)
        dc_t = dc + dh * o * (1 - tc ** 2)
        da = np.concatenate([dc_t * g * i * (1 - i), dc_t * c * f * (1 - f), dc_t * i * (1 - g ** 2),
                             dh * tc * o * (1 - o)], axis=1)
        return {"wx": x_t.T @ da, "wh": h.T @ da, "b": da.sum(0)}, da @ wx.T, (da @ wh.T, dc_t * f)
    (h,), (dh,) = state, dstate
    r, u, n, hh = (rec[k] for k in ("r", "u", "n", "hh"))
    dn = dh * (1 - u)
    du = dh * (h - n)
    dan = dn * (1 - n ** 2)
    dr = dan * hh
    dhh = dan * r
    dar, dau = dr * r * (1 - r), du * u * (1 - u)
    dax = np.concatenate([dar, dau, dan], axis=1)
    dah = np.concatenate([dar, dau, dhh], axis=1)
    grads = {"wx": x_t.T @ dax, "wh": h.T @ dah, "b": dax.sum(0), "bhn": dhh.sum(0)}
    return grads, dax @ wx.T, (dh * u + dah @ wh.T,)


def _n_state(kind):
    return 2 if kind == "lstm" else 1


def _forward(kind, p, x, initial=None, mask=None):
    """kind 'rnn' | 'lstm' | 'gru'; p: dict of arrays; initial: tuple of [B, H] or None.
    -> (y [B, T, H], final state tuple)."""
    x = np.asarray(x, np.float64)
    B, T, _ = x.shape
    H = np.asarray(p["wh"]).shape[0]
    mask = np.ones((B, T), bool) if mask is None else np.asarray(mask, bool)
    state = tuple(np.zeros((B, H)) for _ in range(_n_state(kind))) if initial is None else \
        tuple(np.asarray(s, np.float64) for s in initial)
    y = np.zeros((B, T, H))
    for t in range(T):
        new, _ = _cell(kind, p, x[:, t], state)
        m = mask[:, t][:, None]
        state = tuple(np.where(m, n, s) for n, s in zip(new, state))
        y[:, t] = np.where(m, new[0], 0.0)
    return y, state


def _backward(kind, p, x, dy=None, dlast=None, initial=None, mask=None):
    """dy [B, T, H] (all outputs) and/or dlast [B, H] (the final h) ->
    (dict of param grads like p, dx [B, T, C], d initial state tuple)."""
    x = np.asarray(x, np.float64)
    B, T, C = x.shape
    H = np.asarray(p["wh"]).shape[0]
    mask = np.ones((B, T), bool) if mask is None else np.asarray(mask, bool)
    state = tuple(np.zeros((B, H)) for _ in range(_n_state(kind))) if initial is None else \
        tuple(np.asarray(s, np.float64) for s in initial)
    states, recs = [], []
    for t in range(T):                                   # forward again, keeping every step
        new, rec = _cell(kind, p, x[:, t], state)
        states.append(state)
        recs.append(rec)
        m = mask[:, t][:, None]
        state = tuple(np.where(m, n, s) for n, s in zip(new, state))
    grads = {k: np.zeros(np.shape(v)) for k, v in p.items()}
    dx = np.zeros((B, T, C))
    dstate = [np.zeros((B, H)) for _ in range(_n_state(kind))]
    if dlast is not None:
        dstate[0] = dstate[0] + np.asarray(dlast, np.float64)
    for t in reversed(range(T)):
        m = mask[:, t][:, None]
        dnew = list(dstate)
        if dy is not None:
            dnew[0] = dnew[0] + np.asarray(dy, np.float64)[:, t]
        dnew = [np.where(m, d, 0.0) for d in dnew]       # padded rows: the step did nothing
        g, dx_t, dprev = _cell_back(kind, p, x[:, t], states[t], recs[t], dnew)
        for k in g:
            grads[k] += g[k]
        dx[:, t] = dx_t
        dstate = [dp + np.where(m, 0.0, d) for dp, d in zip(dprev, dstate)]
    return grads, dx, tuple(dstate)


_FIELDS = {"rnn": ("wx", "wh", "b"), "lstm": ("wx", "wh", "b"), "gru": ("wx", "wh", "b", "bhn")}


def _split(x, masked):
    """x [B, T, C(+1)] -> (features [B, T, C], mask [B, T] bool or None)."""
    x = np.asarray(x, np.float64)
    return (x[..., :-1], x[..., -1] > 0.5) if masked else (x, None)


def _initial(kind, initial):
    return None if initial is None else tuple(initial) if kind == "lstm" else (initial,)


def _layer_forward(kind, x, params, return_sequences, masked, initial):
    feats, mask = _split(x, masked)
    y, final = _forward(kind, dict(zip(_FIELDS[kind], params)), feats, _initial(kind, initial), mask)
    return y if return_sequences else final[0]


def _layer_backward(kind, x, params, dy, return_sequences, masked, initial, dlast):
    feats, mask = _split(x, masked)
    dy = np.asarray(dy, np.float64)
    last = None if dlast is None else np.asarray(dlast, np.float64)
    if not return_sequences:                       # y = h_T: dy is a cotangent of the final h
        last, dy = (dy if last is None else dy + last), None
    g, dx, dinit = _backward(kind, dict(zip(_FIELDS[kind], params)), feats, dy=dy, dlast=last,
                             initial=_initial(kind, initial), mask=mask)
    if masked:
        dx = np.concatenate([dx, np.zeros(dx.shape[:2] + (1,))], axis=2)   # the mask: no gradient
    out = tuple(g[k] for k in _FIELDS[kind]) + (dx,)
    if initial is not None:
        out += (dinit if kind == "lstm" else dinit[0],)
    return out


def rnn_forward(x, wx, wh, b, *, return_sequences=True, masked=False, initial=None):
    return _layer_forward("rnn", x, (wx, wh, b), return_sequences, masked, initial)


def rnn_backward(x, wx, wh, b, dy, *, return_sequences=True, masked=False, initial=None, dlast=None):
    """-> (dwx, dwh, db, dx[, d initial])."""
    return _layer_backward("rnn", x, (wx, wh, b), dy, return_sequences, masked, initial, dlast)


def lstm_forward(x, wx, wh, b, *, return_sequences=True, masked=False, initial=None):
    return _layer_forward("lstm", x, (wx, wh, b), return_sequences, masked, initial)


def lstm_backward(x, wx, wh, b, dy, *, return_sequences=True, masked=False, initial=None, dlast=None):
    """-> (dwx, dwh, db, dx[, (dh0, dc0)])."""
    return _layer_backward("lstm", x, (wx, wh, b), dy, return_sequences, masked, initial, dlast)


def gru_forward(x, wx, wh, b, bhn, *, return_sequences=True, masked=False, initial=None):
    return _layer_forward("gru", x, (wx, wh, b, bhn), return_sequences, masked, initial)


def gru_backward(x, wx, wh, b, bhn, dy, *, return_sequences=True, masked=False, initial=None, dlast=None):
    """-> (dwx, dwh, db, dbhn, dx[, d initial])."""
    return _layer_backward("gru", x, (wx, wh, b, bhn), dy, return_sequences, masked, initial, dlast)
