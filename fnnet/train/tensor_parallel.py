"""Tensor parallelism (Megatron-LM's layout) on a mesh axis named "model", every collective
written by hand in a layer's forward or backward.

    mesh = jax.make_mesh((2, 4), ("data", "model"))     # or jax.make_mesh((8,), ("model",))
    tp = tensor_parallel.setup(net, mesh)
    params_tp, opt_state = tp.shard(params, optimizer.init(params))
    step = tp.train_step(optimizer)
    for xb, yb in batches:
        params_tp, opt_state, loss = step(params_tp, opt_state, xb, yb)
    params = tp.gather(params_tp)           # the single-device layout again: fnnet.save, forward

What is split, with M devices along "model" (device m holds block m of each split leaf):

  Dense(h) -> elementwise activation -> Dense(d), in a net or a Sequential (an MLP's hidden
  layer, the GPT's MLP; Positionwise-wrapped or not): the first is column-parallel, the
  second row-parallel, so the activation runs on each device's own columns:
      z_m = x W1_m + b1_m          W1_m = W1[:, block m], b1_m = b1[block m]     (no comm)
      a_m = act(z_m)                                                               (no comm)
      y   = Σ_m a_m W2_m + b2      W2_m = W2[block m, :], b2 whole                 psum
    backward, dy replicated:
      dW2_m = a_mᵀ dy,  db2 = Σ dy,  da_m = dy W2_mᵀ                              (no comm)
      dz_m = act'(z_m) ⊙ da_m,  dW1_m = xᵀ dz_m,  db1_m = Σ dz_m                  (no comm)
      dx = Σ_m dz_m W1_mᵀ                                                          psum
  CausalSelfAttention, heads split (H/M heads a device): W_qkv's columns of the device's
    heads' queries, keys and values, column-parallel; W_o's rows of those heads, row-parallel:
      y = Σ_m o_m W_o_m + b_o (psum);   backward dx = Σ_m dqkv_m W_qkv_mᵀ (psum).
  Everything else (embeddings, LayerNorm, the tied head, a Dense without a partner) is
  replicated and computed identically on every device of the axis, its gradient too.

So per transformer block: two all-reduces of [batch, T, C] forward and two backward
(Megatron's count), and with a "data" axis one more per step for the gradients (the batch
is split over "data", each device's (loss, grads) weighted and psummed: the single-device
mean). The optimizer updates each device's blocks where they are: no communication.

Multi-host: as data parallelism (fnnet/train/sharding.py's docstring); 2 processes x 4
devices equal 1 x 8 through fit (tests/train/test_multihost.py).

W_qkv's layout: a device's heads' columns are three separate ranges in [Q | K | V]; `shard`
permutes the columns to [Q_0 K_0 V_0 | Q_1 K_1 V_1 | ...] so that block m is contiguous,
and `gather` undoes it. The optimizer state's params-shaped trees (Adam's moments) get the
same permutation: every update is elementwise, so training in the permuted layout is the
same arithmetic.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from fnnet import contracts
from fnnet import network as _network
from fnnet import state as _state
from fnnet.layers.activations import ELU, GELU, Identity, LeakyRelu, Relu, SiLU, Sigmoid, Softplus, Tanh
from fnnet.layers.attention import AttentionParams, CausalSelfAttention, attend, attend_backward
from fnnet.layers.combinators import Positionwise, Residual, Sequential
from fnnet.layers.dense import Dense, DenseParams, matmul
from fnnet.models.gpt import LMParams, TiedLM
from fnnet.train import sharding
from fnnet.validate import check_dy

# Activations that act on each feature alone, so a device can apply them to its own
# columns. Softmax is not one of them: it normalizes across the features.
ELEMENTWISE = (Identity, Relu, LeakyRelu, Sigmoid, Tanh, ELU, SiLU, Softplus, GELU)


# ---------------------------------------------------------------------------------------
# The split layers: run inside shard_map, on the device's block of their params.
# ---------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ColumnDense(Dense):
    """A Dense holding block m of the output columns: W [d_in, units], b [units], units the
    block's width. x [batch, d_in] is the same on every device of `axis`; y [batch, units] is
    this device's block. The backward sums dx over the axis."""
    axis: str = "model"

    def __str__(self):
        return f"ColumnDense({self.units} of this device, axis={self.axis!r})"

    def backward(self, params, cache, dy):
        """dy [batch, units] (this block's) -> (DenseParams(dW_m, db_m), dx [batch, d_in])."""
        grads, dx_m = super().backward(params, cache, dy)   # dW_m = xᵀ dz_m, db_m = Σ dz_m, dx_m = dz_m W_mᵀ
        return grads, lax.psum(dx_m, self.axis)             # dL/dx = Σ_m dz_m W_mᵀ


@dataclasses.dataclass(frozen=True)
class RowDense(Dense):
    """A Dense holding block m of the input rows: W [d_in, units] with d_in the block's width,
    b [units] whole. x [batch, d_in] is this device's block of features; y [batch, units] is
    summed over `axis`, the same on every device. The backward needs no collective: dy is
    the same everywhere, and dx is this device's block (the ColumnDense before sums it)."""
    axis: str = "model"

    def __str__(self):
        return f"RowDense({self.units}, axis={self.axis!r})"

    def forward(self, params, x):
        """x [batch, d_in] (block m) -> (y [batch, units], cache = x)."""
        self._check(params, x)
        y_m = matmul(x, params.w, self.matmul_dtype)               # this device's share x_m W_m
        return lax.psum(y_m, self.axis) + params.b[None, :], x     # y = Σ_m x_m W_m + b
    # backward: Dense's. dW_m = x_mᵀ dy, db = Σ dy, dx_m = dy W_mᵀ


@dataclasses.dataclass(frozen=True)
class HeadAttention:
    """CausalSelfAttention's heads split over `axis`: this device's `heads` heads, of width
    `width` = heads · D together, on x [batch, T, dim] (the same on every device).

    Params (block m): w_qkv [dim, 3·width] (its heads' queries | keys | values), b_qkv
    [3·width], w_o [width, dim] (its heads' rows), b_o [dim] whole.
    """
    heads: int
    dim: int
    width: int
    axis: str = "model"
    recompute: bool = False

    def __str__(self):
        return f"HeadAttention(heads={self.heads} of this device, dim={self.dim}, axis={self.axis!r})"

    def init(self, key, in_shape):
        """Shapes only (the params come from the single-device net, split by `shard`)."""
        c, w = self.dim, self.width
        z = jnp.zeros
        return AttentionParams(z((c, 3 * w)), z((3 * w,)), z((w, c)), z((c,))), tuple(in_shape)

    def _check(self, params, x):
        if x.ndim != 3 or x.shape[2] != self.dim:
            raise ValueError(f"{self}: x must be [batch, T, {self.dim}], got {tuple(x.shape)}")
        c, w = self.dim, self.width
        for name, want in zip(AttentionParams._fields, ((c, 3 * w), (3 * w,), (w, c), (c,))):
            if getattr(params, name).shape != want:
                raise ValueError(f"{self}: params.{name} must be {list(want)}, got "
                                 f"{tuple(getattr(params, name).shape)}")

    def forward(self, params, x):
        """x [batch, T, dim] -> (y [batch, T, dim], cache)."""
        self._check(params, x)
        qkv = jnp.einsum("btc,ce->bte", x, params.w_qkv) + params.b_qkv[None, None]   # this device's heads' q, k, v
        o, parts = attend(qkv, self.heads, self.recompute)                           # o_m [b, T, width]
        y_m = jnp.einsum("btc,ce->bte", o, params.w_o)                               # o_m W_o_m
        return lax.psum(y_m, self.axis) + params.b_o[None, None], (x, o, parts)      # y = Σ_m o_m W_o_m + b_o

    def backward(self, params, cache, dy):
        """dy [batch, T, dim] (the same on every device) -> (AttentionParams of block m's
        gradients, dx [batch, T, dim])."""
        x, o, (q, k, v, p_or_m) = cache
        check_dy(str(self), dy, x.shape)
        dw_o = jnp.einsum("btc,bte->ce", o, dy)                  # dL/dW_o_m = o_mᵀ dy
        db_o = dy.sum(axis=(0, 1))                               # dL/db_o = Σ dy (whole, the same everywhere)
        do = jnp.einsum("bte,ce->btc", dy, params.w_o)           # dL/do_m = dy W_o_mᵀ
        dqkv = attend_backward(do, o, q, k, v, p_or_m, self.recompute, dy)   # through this device's heads
        dw_qkv = jnp.einsum("btc,bte->ce", x, dqkv)              # dL/dW_qkv_m = xᵀ dqkv_m
        db_qkv = dqkv.sum(axis=(0, 1))                           # dL/db_qkv_m = Σ dqkv_m
        dx_m = jnp.einsum("bte,ce->btc", dqkv, params.w_qkv)     # this device's share dqkv_m W_qkv_mᵀ
        return AttentionParams(dw_qkv, db_qkv, dw_o, db_o), lax.psum(dx_m, self.axis)   # dL/dx = Σ_m

    def l2_mask(self, params):
        del params
        return AttentionParams(True, False, True, False)


# ---------------------------------------------------------------------------------------
# The net, split: which layers, and each param leaf's PartitionSpec and layout.
# ---------------------------------------------------------------------------------------

def _dense_of(layer):
    """(the Dense, whether it is Positionwise-wrapped), or (None, False)."""
    if type(layer) is Dense:
        return layer, False
    if isinstance(layer, Positionwise) and type(layer.layer) is Dense:
        return layer.layer, True
    return None, False


def _split_chain(layers, axis, size, where):
    """A chain of layers with each Dense -> elementwise -> Dense pair split column/row."""
    out, i = list(layers), 0
    while i + 2 < len(out):
        (first, wrapped), (second, wrapped2) = _dense_of(out[i]), _dense_of(out[i + 2])
        if first is None or second is None or wrapped != wrapped2 or not isinstance(out[i + 1], ELEMENTWISE):
            i += 1
            continue
        if first.units % size:
            raise ValueError(f"{where} layer {i} ({out[i]}) has {first.units} units, "
                             f"which the 'model' axis of size {size} does not divide; use a width "
                             f"divisible by {size} or a smaller model axis")
        col = ColumnDense(first.units // size, first.w_init, first.b_init, first.matmul_dtype, axis)
        row = RowDense(second.units, second.w_init, second.b_init, second.matmul_dtype, axis)
        out[i], out[i + 2] = (Positionwise(col), Positionwise(row)) if wrapped else (col, row)
        i += 3
    return tuple(_split_layer(layer, axis, size, f"{where} layer {j}") for j, layer in enumerate(out))


def _split_layer(layer, axis, size, where):
    if isinstance(layer, CausalSelfAttention):
        if layer.heads % size:
            raise ValueError(f"{where} ({layer}) has {layer.heads} heads, which the "
                             f"'model' axis of size {size} does not divide")
        return HeadAttention(layer.heads // size, layer.dim, layer.dim // size, axis, layer.recompute)
    if isinstance(layer, TiedLM):
        return dataclasses.replace(layer, body=_split_layer(layer.body, axis, size, f"{where} body"))
    if isinstance(layer, Sequential):
        return dataclasses.replace(layer, layers=_split_chain(layer.layers, axis, size, where))
    if isinstance(layer, Residual):
        return dataclasses.replace(layer, block=_split_layer(layer.block, axis, size, where))
    return layer


def _map_layer(layer, params, leaf_fn):
    """params' tree with leaf_fn(layer, params) applied at each layer that is not a
    container (TiedLM, Sequential, Residual, Positionwise are walked into)."""
    if isinstance(layer, TiedLM):
        return LMParams(leaf_fn(layer.encoder, params.encoder), _map_layer(layer.body, params.body, leaf_fn))
    if isinstance(layer, Sequential):
        return tuple(_map_layer(l, p, leaf_fn) for l, p in zip(layer.layers, params))
    if isinstance(layer, Residual):
        return _map_layer(layer.block, params, leaf_fn)
    if isinstance(layer, Positionwise):
        return _map_layer(layer.layer, params, leaf_fn)
    return leaf_fn(layer, params)


def _specs_of(axis):
    def spec(layer, params):
        if isinstance(layer, ColumnDense):
            return DenseParams(P(None, axis), P(axis))
        if isinstance(layer, RowDense):
            return DenseParams(P(axis, None), P())
        if isinstance(layer, HeadAttention):
            return AttentionParams(P(None, axis), P(axis), P(axis, None), P())
        return jax.tree.map(lambda _: P(), params)
    return spec


def _qkv_order(dim, size):
    """Column order putting each device's heads' q, k, v side by side: [Q_0 K_0 V_0 | Q_1 ...]."""
    w = dim // size
    return np.concatenate([np.arange(j * dim + m * w, j * dim + (m + 1) * w)
                           for m in range(size) for j in range(3)])


def _qkv_layout(size, inverse):
    def permute(layer, params):
        if not isinstance(layer, CausalSelfAttention):
            return params
        order = _qkv_order(layer.dim, size)
        if inverse:
            order = np.argsort(order)
        return params._replace(w_qkv=jnp.take(params.w_qkv, order, axis=1),
                               b_qkv=jnp.take(params.b_qkv, order, axis=0))
    return permute


def _params_like(tree, params, fn, other=lambda leaf: leaf):
    """tree with fn applied to each subtree shaped like params (an optimizer state's
    moments), and `other` to each of its remaining leaves (a step count)."""
    want = jax.tree.structure(params)

    def like(t):
        return jax.tree.structure(t) == want and all(
            getattr(a, "shape", None) == getattr(b, "shape", ()) for a, b in
            zip(jax.tree.leaves(t), jax.tree.leaves(params)))
    return jax.tree.map(lambda t: fn(t) if like(t) else other(t), tree, is_leaf=like)


@dataclasses.dataclass(frozen=True)
class TensorParallel:
    """A net split over a mesh's "model" axis (and its batch over "data", if the mesh has it).

    net: the single-device net; local_net: the same net with its split layers (run inside
    shard_map, on blocks); mesh: the caller's devices with Auto axis types, user_mesh: the
    mesh as passed; axis / size: the model axis and its devices; data_axis / data_size: the
    batch axis (None / 1 without one); reduction: how the loss reduces over the batch
    ("mean" or "sum"). Hashable: fit's compiled loop takes it as a static argument.
    """
    net: Any
    local_net: Any
    mesh: Any
    axis: str
    size: int
    data_axis: Any
    data_size: int
    reduction: str
    user_mesh: Any = None

    @property
    def replicated(self):
        return NamedSharding(self.mesh, P())

    # -- layouts -------------------------------------------------------------------------
    def specs(self, params):
        """The PartitionSpec of each leaf of params (the single-device tree)."""
        return tuple(_map_layer(layer, p, _specs_of(self.axis))
                     for layer, p in zip(self.local_net.layers, params))

    def shardings(self, params):
        return jax.tree.map(lambda s: NamedSharding(self.mesh, s), self.specs(params),
                            is_leaf=lambda s: isinstance(s, P))

    def _layout(self, params, inverse):
        return tuple(_map_layer(layer, p, _qkv_layout(self.size, inverse))
                     for layer, p in zip(self.net.layers, params))

    def shard(self, params, opt_state=None):
        """Single-device params (and an optimizer state of them) -> the split layout, each
        device holding its blocks. Returns params, or (params, opt_state). The inputs may
        live anywhere (NumPy, one device, a mesh); they are copied, never reused, because
        the step donates its inputs."""
        contracts.check_params(self.net, params)
        shardings = self._state_shardings(params, opt_state)
        # copies first: jax.device_put reuses a buffer already on a target device (even with
        # may_alias=False, jax 0.10), and donating it would delete the caller's array
        placed = jax.device_put(jax.tree.map(lambda a: jnp.array(a, copy=True), (params, opt_state)),
                                shardings)

        def split(p, s):                          # W_qkv's columns moved between devices by XLA
            s = None if s is None else _params_like(s, p, lambda t: self._layout(t, inverse=False))
            return self._layout(p, inverse=False), s
        p, s = jax.jit(split, out_shardings=shardings)(*placed)
        return p if opt_state is None else (p, s)

    def gather(self, params):
        """The split params -> the single-device layout, as ordinary arrays (fnnet.save writes them)."""
        whole = jax.tree.map(lambda a: jnp.asarray(np.asarray(a)), params)
        return self._layout(whole, inverse=True)

    def gather_opt_state(self, opt_state, params):
        """An optimizer state of split params -> the single-device layout."""
        whole = jax.tree.map(lambda a: jnp.asarray(np.asarray(a)), opt_state)
        return _params_like(whole, params, lambda t: self._layout(t, inverse=True))

    def save(self, directory, params, opt_state=None, epoch=None):
        """A sharded checkpoint (fnnet.checkpoint.save_sharded) of split params in the
        one-device layout: W_qkv's columns are put back in [Q | K | V] order on the devices
        (XLA moves them between devices; nothing is gathered on one host), so any layout,
        one device included, can restore it."""
        from fnnet.checkpoint.sharded import save_sharded

        def natural(p, s):
            s = None if s is None else _params_like(s, p, lambda t: self._layout(t, inverse=True))
            return self._layout(p, inverse=True), s
        p, s = jax.jit(natural, out_shardings=self._state_shardings(params, opt_state))(params, opt_state)
        return save_sharded(directory, self.net, p, opt_state=s, epoch=epoch)

    def _state_shardings(self, params, opt_state):
        """(params' shardings, opt_state's: params-shaped trees like params, the rest replicated)."""
        shardings = self.shardings(params)
        if opt_state is None:
            return shardings, None
        replicated = NamedSharding(self.mesh, P())
        return shardings, _params_like(opt_state, params, lambda _: shardings, other=lambda _: replicated)

    def restore(self, directory, optimizer=None):
        """Checkpoint(net, params, opt_state, epoch) from a sharded checkpoint (saved by any
        layout or device count), params (and opt_state, given its optimizer) in the split
        layout on this mesh, each device reading only the blocks it holds."""
        from fnnet.checkpoint.sharded import restore_sharded
        template = jax.eval_shape(lambda k: _network.init(self.net, k), jax.random.key(0))
        shardings = self.shardings(template)
        ck = restore_sharded(directory, shardings, optimizer)
        if ck.net != self.net:
            raise ValueError(f"tensor_parallel: {directory!r} holds {ck.net}, not this run's {self.net}")

        def split(p, s):
            p = self._layout(p, inverse=False)
            s = None if s is None else _params_like(s, p, lambda t: self._layout(t, inverse=False))
            return p, s
        p, s = jax.jit(split, out_shardings=self._state_shardings(ck.params, ck.opt_state))(
            ck.params, ck.opt_state)
        return ck._replace(params=p, opt_state=s)

    # -- the step --------------------------------------------------------------------------
    def value_and_grad(self, params, x, y):
        """(loss, grads) of the net on the batch x [B, *in_shape], y, params in the split
        layout; equal to fnnet.value_and_grad on one device up to rounding. Call inside jit."""
        if x.shape[0] % self.data_size:
            raise ValueError(f"tensor_parallel: the batch of {x.shape[0]} examples must split evenly "
                             f"over the {self.data_axis!r} axis of {self.data_size} devices")
        specs = self.specs(params)
        batch = P(self.data_axis) if self.data_axis else P()
        plain = dataclasses.replace(self.local_net, l2=0.0)
        weight = 1.0 if self.reduction == "sum" else 1.0 / self.data_size
        l2, axis = self.net.l2, self.axis

        def local(p, xs, ys):                                  # on each device: its blocks, its rows
            value, grads = _network.value_and_grad(plain, p, xs, ys)
            if self.data_axis:                                 # Σ_data w·(L, ∇L): the whole batch's mean
                value, grads = lax.psum(jax.tree.map(lambda a: a * jnp.asarray(weight, a.dtype),
                                                     (value, grads)), self.data_axis)
            if l2:
                value, grads = _add_l2(plain, p, specs, value, grads, l2, axis)
            return value, grads

        run = jax.shard_map(local, mesh=self.mesh, in_specs=(specs, batch, batch), out_specs=(P(), specs))
        return run(params, x, y)

    def train_step(self, optimizer):
        """A jitted step (params, opt_state, x, y) -> (params, opt_state, loss), all in the
        split layout; the optimizer updates each device's blocks in place of the whole."""
        def step(params, opt_state, x, y):
            value, grads = self.value_and_grad(params, x, y)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            params = jax.lax.with_sharding_constraint(optax.apply_updates(params, updates),
                                                      self.shardings(params))
            return params, opt_state, value
        return jax.jit(step, donate_argnums=(0, 1))


def _add_l2(net, params, specs, value, grads, l2, axis):
    """(value + ½λΣw², grads + λw) on the blocks: the split leaves' Σw² psummed over the
    model axis, the replicated ones counted once."""
    split_sq, whole_sq = 0.0, 0.0
    masks = _network.l2_masks(net, params)
    for p, mask, spec in zip(params, masks, specs):
        for leaf, m, s in zip(jax.tree.leaves(p), jax.tree.leaves(mask),
                              jax.tree.leaves(spec, is_leaf=lambda t: isinstance(t, P))):
            if m and axis in tuple(s):
                split_sq = split_sq + jnp.sum(leaf * leaf)
            elif m:
                whole_sq = whole_sq + jnp.sum(leaf * leaf)
    value = value + 0.5 * l2 * (lax.psum(split_sq, axis) + whole_sq)          # + ½λΣw²
    grads = tuple(jax.tree.map(lambda g, w, m: g + l2 * w if m else g, gi, pi, mi)   # + λw
                  for gi, pi, mi in zip(grads, params, masks))
    return value, grads


def wanted(mesh):
    """True when fit should split the model: a Mesh with a "model" axis."""
    return isinstance(mesh, Mesh) and "model" in mesh.axis_names


def check_batches(tp: TensorParallel, n, batch, where="fit"):
    """Every step's batch (batch, and the n % batch left over) must split evenly over "data"."""
    sizes = {batch} | ({n % batch} if n % batch else set())
    bad = sorted(b for b in sizes if b % tp.data_size)
    if bad:
        raise ValueError(f"{where}: the mesh's {tp.data_axis!r} axis of {tp.data_size} devices splits each "
                         f"step's batch; step batches of {bad} example(s) do not divide evenly (n={n}, "
                         f"batch_size={batch}); pick n and batch_size that are multiples of {tp.data_size}")


def _template(tp):
    return jax.eval_shape(lambda k: _network.init(tp.net, k), jax.random.key(0))


def place(tp: TensorParallel, tree):
    """Every params-shaped subtree of `tree` (params, optimizer moments, a training carry)
    placed by the split's shardings, every other leaf replicated. Moves nothing between
    layouts: the tree must already be in the split layout (TensorParallel.shard)."""
    template = _template(tp)
    shardings = tp.shardings(template)
    return _params_like(tree, template, lambda t: jax.device_put(t, shardings),
                        other=lambda leaf: jax.device_put(leaf, tp.replicated))


def to_user_mesh(tp: TensorParallel, tree):
    """The trained tree back in the one-device layout (W_qkv's columns in [Q | K | V]
    order), still split over the caller's devices: ordinary jax.Arrays that fnnet.save,
    fnnet.forward and np.asarray read whole. On the mesh's devices with Auto axis types
    (not the caller's Explicit ones, jax.make_mesh's default): with Explicit axes an eager
    x @ W with W split along its rows is refused as ambiguous, so fnnet.accuracy on the
    result would fail; with Auto axes XLA adds the collective."""
    template = _template(tp)
    shardings = tp.shardings(template)
    natural = jax.jit(lambda t: _params_like(t, template, lambda u: tp._layout(u, inverse=True)))
    return _params_like(natural(tree), template, lambda t: jax.device_put(t, shardings),
                        other=lambda leaf: jax.device_put(leaf, tp.replicated))


def natural(tp: TensorParallel, params):
    """Split params in the one-device layout (inside jit: XLA moves W_qkv's columns), for
    what runs the plain net on them (fit's validation loss and accuracy)."""
    return tp._layout(params, inverse=True)


def setup(net, mesh, axis="model", data_axis="data", where="tensor_parallel", grad="manual") -> TensorParallel:
    """Validate `net` and `mesh` and split the net, before anything is compiled.

    mesh: a jax.sharding.Mesh with an axis named `axis` ("model") and optionally one named
    `data_axis` ("data"), no other. Raises ValueError naming what does not fit: a missing or
    unknown axis, a width or head count the model axis does not divide, a layer with state
    or randomness, a net with nothing to split.
    """
    if grad != "manual":
        raise ValueError(f"{where}: tensor parallelism's collectives are written in the layers' "
                         f"hand-written backward; grad must be 'manual', got {grad!r}")
    if not isinstance(mesh, Mesh):
        raise TypeError(f"{where}: mesh must be a jax.sharding.Mesh such as "
                        f"jax.make_mesh((2, 4), ('data', 'model')), got {type(mesh).__name__}")
    sizes = dict(mesh.shape)
    if axis not in sizes:
        raise ValueError(f"{where}: the mesh has axes {sizes}, no {axis!r} axis to split the model over")
    unknown = set(sizes) - {axis, data_axis}
    if unknown:
        raise ValueError(f"{where}: the mesh has axes {sizes}; only {axis!r} (the model) and "
                         f"{data_axis!r} (the batch) are understood, not {sorted(unknown)}")
    for i, layer in enumerate(net.layers):
        if _state.is_stateful(layer) or _state.is_stochastic(layer):
            raise ValueError(f"{where}: layer {i} ({layer}) has layer state or randomness, "
                             f"which tensor parallelism does not split; use data parallelism (fit(mesh=))")
    reduction = sharding.batch_reduction(net, where, f"combined over the {data_axis!r} axis") \
        if data_axis in sizes else "mean"          # no batch split: nothing to weight
    size = int(sizes[axis])
    local = dataclasses.replace(net, layers=_split_chain(net.layers, axis, size, f"{where}: net"))
    if not _has_split(local):
        raise ValueError(f"{where}: {net} has no Dense -> elementwise activation -> Dense "
                         f"pair and no CausalSelfAttention, so there is nothing to split over {axis!r}")
    contracts.layout(local)                    # the split shapes chain (raises naming the layer)
    return TensorParallel(net, local, sharding.auto_axes(mesh), axis, size,
                          data_axis if data_axis in sizes else None, int(sizes.get(data_axis, 1)), reduction, mesh)


def _has_split(net):
    found = []

    def look(layer, params):
        found.append(isinstance(layer, (ColumnDense, RowDense, HeadAttention)))
        return params
    for layer, (_, p, _) in zip(net.layers, contracts.layout(net)):
        _map_layer(layer, p, look)
    return any(found)
