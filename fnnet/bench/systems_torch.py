"""PyTorch eager on CPU: the same network, data order, optimizer and initial weights.

Optional (`pip install fnnet[bench]`, i.e. torch==2.13.0, CPU build). When torch is not
importable the report keeps its rows, marked "not installed"; that is not a failure.
The loop is the idiomatic one: tensors with requires_grad, F.cross_entropy on the
logits (one-hot targets), loss.backward(), torch.optim.SGD / Adam (foreach kernels).
"""
from __future__ import annotations

from fnnet.bench.timing import Runner, median_time


def available():
    """(True, version) or (False, why)."""
    try:
        import torch
    except ImportError as e:
        return False, f"not installed ({e.name or e}); pip install 'fnnet[bench]' (torch==2.13.0)"
    return True, torch.__version__


def threads():
    import torch
    return torch.get_num_threads()


def torch_runner(workload, dtype, threads=1, variant="", timed_steps=None):
    """threads: torch intra-op threads for this row's runs (None: torch's default)."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    x_np, y_np = workload.data()
    x = torch.from_numpy(np.ascontiguousarray(x_np, dtype=dtype))
    y = torch.from_numpy(np.ascontiguousarray(y_np, dtype=dtype))
    init = [(torch.from_numpy(w.astype(dtype)), torch.from_numpy(b.astype(dtype)))
            for w, b in workload.init_params()]
    act = torch.sigmoid if workload.activation == "sigmoid" else torch.relu
    batches = workload.batches()
    lam = workload.l2

    default_threads = torch.get_num_threads()

    def run(max_steps=timed_steps):
        torch.set_num_threads(threads or default_threads)
        try:
            return train(max_steps)
        finally:
            torch.set_num_threads(default_threads)

    def train(max_steps):
        params = [t.clone().requires_grad_(True) for pair in init for t in pair]
        ws, bs = params[0::2], params[1::2]
        if workload.optimizer == "sgd":
            opt = torch.optim.SGD(params, lr=workload.lr)
        else:
            opt = torch.optim.Adam(params, lr=workload.lr, eps=1e-8)
        steps = 0
        for _ in range(workload.epochs):
            for start, size in batches:
                if max_steps is not None and steps >= max_steps:
                    break
                steps += 1
                xb, yb = x[start:start + size], y[start:start + size]
                opt.zero_grad(set_to_none=True)
                h = xb
                for i, (w, b) in enumerate(zip(ws, bs)):
                    h = torch.addmm(b, h, w)                    # h·W + b
                    if i < len(ws) - 1:
                        h = act(h)
                loss = F.cross_entropy(h, yb)                   # mean over the batch, soft targets
                if lam:
                    loss = loss + 0.5 * lam * sum((w * w).sum() for w in ws)
                loss.backward()
                opt.step()
        return [(w.detach().numpy(), b.detach().numpy()) for w, b in zip(ws, bs)]

    n = threads or default_threads
    return Runner("torch", dtype, run, warmup=lambda: run(max_steps=3), variant=variant,
                  timed_steps=timed_steps if timed_steps and timed_steps < workload.steps else None,
                  note=f"PyTorch {torch.__version__} eager, {n} thread{'s' if n > 1 else ''}"
                       f"{'' if threads else ' (default)'}, optim.{type_name(workload)}")


def type_name(workload):
    return "SGD" if workload.optimizer == "sgd" else "Adam"


def matmul_ceiling(workload, repeats=7, threads=1):
    """GFLOP/s of the step's matmuls alone in torch float32 (as systems_jax.matmul_ceiling)."""
    import torch

    rows, sizes = workload.batch, workload.sizes
    g = torch.Generator().manual_seed(0)
    mats = [(torch.randn(rows, a, generator=g), torch.randn(a, b, generator=g),
             torch.randn(rows, b, generator=g), i > 0)
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]
    flops = sum((6 if need_dx else 4) * rows * x.shape[1] * w.shape[1] for x, w, _, need_dx in mats)

    def step():
        for x, w, dy, need_dx in mats:
            x @ w
            x.T @ dy
            if need_dx:
                dy @ w.T

    default = torch.get_num_threads()
    torch.set_num_threads(threads or default)
    try:
        median, _ = median_time(step, repeats)
    finally:
        torch.set_num_threads(default)
    return flops / median / 1e9
