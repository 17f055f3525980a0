"""How close the hand-written GPT gradients are to each witness, and the 10-step trajectories.

    PYTHONPATH=$PWD python scripts/gpt_oracles.py

Prints, for a small GPT (the CI test's sizes), the worst relative error over all parameter
leaves (|a - b|max / max(|a|max, |b|max), per leaf) against jax.grad, the NumPy float64
twin (reference/models/gpt.py) and fnnet.check.check_network's finite differences, in
float64 and float32; then 10 AdamW steps with the hand-written backward vs jax.grad.
"""
import sys

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp   # noqa: E402
import numpy as np        # noqa: E402
import optax              # noqa: E402

import fnnet              # noqa: E402

sys.path.insert(0, "tests")
from gpt_convert import from_reference, to_reference   # noqa: E402
from fnnet_reference.models import gpt as R                  # noqa: E402

V, T, L, H, C, B = 7, 5, 2, 2, 8, 3


def worst(a, b):
    errs = []
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        errs.append(float(np.abs(x - y).max() / max(np.abs(x).max(), np.abs(y).max(), 1e-300)))
    return max(errs)


def setup(dtype):
    net = fnnet.gpt(V, T, L, H, C)
    params = fnnet.init(net, jax.random.key(0), dtype)
    leaves, treedef = jax.tree.flatten(params)
    rng = np.random.default_rng(0)
    params = treedef.unflatten([jnp.asarray(0.3 * rng.normal(size=l.shape), dtype) for l in leaves])
    ids = jnp.asarray(rng.integers(0, V, (B, T)))
    targets = jnp.asarray(rng.integers(0, V, (B, T)))
    return net, params, ids, targets


def main():
    for dtype in (jnp.float64, jnp.float32):
        net, params, ids, targets = setup(dtype)
        _, grads = jax.jit(lambda p: fnnet.value_and_grad(net, p, ids, targets))(params)
        auto = jax.jit(jax.grad(lambda p: fnnet.loss(net, p, ids, targets)))(params)
        _, ref = R.loss_and_grad(to_reference(params), np.asarray(ids), np.asarray(targets), H)
        print(f"{np.dtype(dtype).name}: {len(jax.tree.leaves(params))} leaves, "
              f"{sum(l.size for l in jax.tree.leaves(params))} params; worst leaf relative error "
              f"vs jax.grad {worst(grads, auto):.2e}, vs reference {worst(grads, from_reference(ref, params)):.2e}")
        if dtype == jnp.float64:
            report = fnnet.check.check_network(net, params, ids, targets, wrt_x=False, reference=None)
            print(report)
        opt = optax.adamw(1e-2, weight_decay=0.01)
        runs = {g: fnnet.fit(net, params, ids, targets, optimizer=opt, epochs=10, grad=g)
                for g in ("manual", "autodiff")}
        lm, la = (np.asarray(runs[g].history.loss, np.float64) for g in ("manual", "autodiff"))
        print(f"  10 AdamW steps: loss {lm[0]:.6f} -> {lm[-1]:.6f}; max relative difference of the "
              f"loss trajectories {np.max(np.abs(lm - la) / np.abs(la)):.2e}; params after 10 steps "
              f"worst leaf {worst(runs['manual'].params, runs['autodiff'].params):.2e}")


if __name__ == "__main__":
    main()
