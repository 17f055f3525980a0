"""The notes at the end of `fnnet bench`'s report: how the numbers were counted and measured."""
from __future__ import annotations


NETS = [
    "Nets (CNN, GPT, L-*): each row is one fnnet.fit call over all its epochs (fit's compiled "
    "while_loop, compiled in an untimed first call); ms/step = the median run / steps. Both systems "
    "start from fnnet.init(net, key(0)) and fit with key(1), so they take the same shuffled batches "
    "and dropout masks; BatchNorm's state is threaded by fit in both. Their final losses differ only "
    "by float32 rounding of two gradient programs, compounded over the steps.",
    "Step memory of the nets: `compiled.memory_analysis()` of one jitted step (the gradient fit uses, "
    "then the optimizer update) at the workload's batch; XLA's static figures, not a measurement of "
    "the running process.",
]


def notes(result, threads):
    """The MLP workloads' notes where any ran, then the nets' where any ran."""
    mlp = _mlp_notes(result, threads) if result["workloads"] else []
    return mlp + (NETS if result.get("nets") else [])


def _mlp_notes(result, threads):
    n = [
        "FLOPs: forward = 2 · rows · Σ_layers d_in·d_out, backward = 2 × forward (dL/dW and "
        "dL/dx), so a run = 3 · forward · epochs with every training row seen once per epoch; "
        "only the dense layers' matmuls count (activations, softmax, loss and the optimizer "
        "update are free in this count). The first layer's dL/dx is never computed by any "
        "system, so the work actually needed (`needed_flops`) is smaller: "
        + ", ".join(f"{k} by {100 * (1 - w['needed_flops'] / w['flops']):.1f}%"
                    for k, w in result["workloads"].items()) + ".",
        "% peak = GFLOP/s ÷ the float32 peak above (the larger of the medians measured at the "
        "start and at the end of the run). The 'matmul ceiling' line runs only the step's "
        "matmuls, at the step's shapes, in a jitted lax.scan as the training does: what XLA "
        "makes of these shapes on this CPU, and what a % peak target should be compared with. "
        "On a shared machine it is one median of a few runs, measured after the workload's "
        "runs, so it moves with the load like every other number here.",
        "Compile time: the bare scans are compiled ahead of time (`jit(...).lower(...).compile()`, "
        "tracing included); fnnet.fit compiles inside its first call, an untimed warm-up, and its "
        "compile time is the trace + lowering + XLA compile seconds that jax.monitoring reports "
        "for that call. No timed run includes compilation.",
        "All systems start from the same initial weights (drawn once in float64 and cast) and "
        "take the same steps on the same batches, except fnnet.fit on W3, which shuffles each "
        "epoch with its key (same work, other batches). `final loss` is the loss of the "
        "returned weights on the training data (W3: first 4096 rows), computed afterwards in "
        "NumPy float64: equal losses show that the rows did the same training.",
        "The seed-001 loop fixes the post's final listing, which writes `self.b3 = ...`, "
        "`self.w2 = ...` (plain `=`) from its line 65 on; the intended `-=` (as in the post's "
        "own step-by-step code) is used.",
        f"Threads: the NumPy rows run with {threads or 'the default number of'} BLAS thread(s) "
        f"(threadpoolctl) and torch with {threads or 'its default'} intra-op thread(s). On a shared "
        "machine the spinning worker threads of OpenBLAS and of torch's OpenMP pool fight the other "
        "load and can be many times slower than one thread; the `[default threads]` rows show "
        "the libraries untouched (timed over a few steps and extrapolated). JAX/XLA always runs "
        "with its own default thread pool.",
        "Rows marked 'extrapolated from k of N steps' trained k steps and their time is "
        "scaled by N / k; they report no final loss.",
    ]
    return n
