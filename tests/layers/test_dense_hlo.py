"""Dense's dW product stays on XLA's fast matmul path in a compiled training step.

XLA folds `x.T @ dy` into one dot with lhs_contracting_dims={0}: a column-major left
operand, which XLA:CPU's fast matmul path (YNNPACK fusions, kind "__ynn_fusion") rejects,
so the product falls back to the default dot emitter, 2-4x slower at W1's shapes.
Dense.backward materializes dyᵀ so that every dot is canonical. These tests read the
optimized HLO of a jitted step (`jax.jit(step).lower(...).compile().as_text()`) and fail
if any dot regresses. The same detector run on jax.grad's step, whose transpose rule
produces the folded form, must find it: that is what shows the detector can fail.
No timing here: speed is measured by `fnnet bench`.
"""
import re

import jax
import jax.numpy as jnp
import optax
import pytest
from jax import lax

import fnnet

NETS = [  # (sizes, activation, batch): W1's shape (smaller batch), a ReLU net, W2's tiny one
    ([64, 128, 128, 10], "sigmoid", 200),
    ([32, 48, 40, 24, 7], "relu", 96),
    ([2, 5, 3], "tanh", 300),
]


def _computations(text):
    """{computation name: [instruction lines]} of an HLO module's text."""
    comps, name = {}, None
    for line in text.splitlines():
        header = re.match(r"^(?:ENTRY )?%?([\w.\-]+) .*\{$", line)
        if header:
            name = header.group(1)
            comps[name] = []
        elif name is not None and line.strip():
            comps[name].append(line)
    return comps


def dots(compiled_text):
    """[(on the fast path, lhs contracting dims)] for every dot of a compiled program.

    A dot is on the fast path when it sits in a computation that a YNNPACK fusion calls.
    """
    fast = set(re.findall(r'calls=%([\w.\-]+)[^\n]*"kind":"__ynn_fusion"', compiled_text))
    out = []
    for name, lines in _computations(compiled_text).items():
        for line in lines:
            if re.search(r"\bdot\(", line):
                lhs = re.search(r"lhs_contracting_dims=\{([\d,]*)\}", line).group(1)
                out.append((name in fast, lhs))
    return out


def compiled_steps(sizes, activation, batch, dtype, scan=False):
    """Optimized HLO text of one SGD step (or a 3-step lax.scan of it): (fnnet, jax.grad)."""
    net = fnnet.mlp(sizes, activation=activation, loss="softmax_cross_entropy")
    params = fnnet.init(net, jax.random.key(0), dtype)
    x = jax.random.normal(jax.random.key(1), (batch, sizes[0]), dtype)
    y = jax.nn.one_hot(jnp.arange(batch) % sizes[-1], sizes[-1], dtype=dtype)
    opt = optax.sgd(0.1)

    def make(value_and_grad):
        def step(p, s):
            _, g = value_and_grad(p)
            u, s = opt.update(g, s, p)
            return optax.apply_updates(p, u), s

        def run(p, s):
            if scan:
                return lax.scan(lambda c, _: (step(*c), None), (p, s), None, length=3)[0]
            return step(p, s)
        return jax.jit(run).lower(params, opt.init(params)).compile().as_text()

    manual = make(lambda p: fnnet.value_and_grad(net, p, x, y))
    autodiff = make(lambda p: jax.value_and_grad(lambda q: fnnet.loss(net, q, x, y))(p))
    return manual, autodiff


def _has_fast_path(text):
    return jax.default_backend() == "cpu" and "__ynn_fusion" in text


@pytest.mark.parametrize("sizes, activation, batch", NETS)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_every_dot_of_the_step_is_canonical(sizes, activation, batch, dtype):
    manual, autodiff = compiled_steps(sizes, activation, batch, dtype)
    n_layers = len(sizes) - 1
    found = dots(manual)
    # forward, dW and dx per layer, less the first layer's unused dx
    assert len(found) == 3 * n_layers - 1, found
    assert [lhs for _, lhs in found if lhs != "1"] == [], \
        f"a dot has a column-major left operand (lhs_contracting_dims={{0}}): {found}"
    # the detector finds the folded transpose in autodiff's step (one per dW product)
    assert sum(lhs == "0" for _, lhs in dots(autodiff)) == n_layers


@pytest.mark.parametrize("sizes, activation, batch", NETS[:2])
@pytest.mark.parametrize("scan", [False, True])
def test_every_dot_takes_the_fast_path_on_cpu(sizes, activation, batch, scan):
    manual, autodiff = compiled_steps(sizes, activation, batch, jnp.float32, scan=scan)
    if not _has_fast_path(manual + autodiff):
        pytest.skip("this XLA backend has no YNNPACK fusions (not XLA:CPU with YNNPACK)")
    slow = [lhs for fast, lhs in dots(manual) if not fast]
    assert slow == [], f"{len(slow)} dot(s) of fnnet's step fell back to the default dot emitter"
    assert any(not fast for fast, _ in dots(autodiff)), "detector: jax.grad's dW dots are slow"


def test_a_wide_layer_on_a_small_batch_keeps_the_plain_product():
    """rows < d_in: xt_matmul keeps `x.T @ dy` (its result's transpose would cost more than
    the fast path saves: W3's 1024-wide layers at batch 256), so only the layers with
    rows >= d_in get the canonical form."""
    sizes, batch = [64, 16, 96, 10], 32          # d_in 64 and 96 > 32 rows; 16 <= 32
    manual, autodiff = compiled_steps(sizes, "relu", batch, jnp.float32)
    folded = [lhs for _, lhs in dots(manual) if lhs == "0"]
    # layers 0 and 2 keep the plain form (XLA may still re-layout the step's input x of
    # layer 0 on its own), layer 1 gets the canonical one: never all three folded
    assert 1 <= len(folded) <= 2, dots(manual)
    assert sum(lhs == "0" for _, lhs in dots(autodiff)) == 3
