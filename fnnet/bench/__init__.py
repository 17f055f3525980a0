"""`fnnet bench`: the same training workload run side by side by several systems.

    python scripts/bench.py --workloads W1,W2 --repeats 5 --out bench/
    fnnet bench --quick                       # seconds; what tests/bench/ runs

Files, one topic each:
  workloads.py       W1 (seed 001 digits), W2 (seed 002 blobs), W3 (wide MLP, Adam),
                     W4 (deep ReLU, 20 x 512): data, shared initial weights, step counts,
                     analytic FLOPs; a registry (`register(full, quick)`) for more
  workloads_nets.py  CNN, GPT and the per-layer L-* nets (labels / token targets)
  systems_nets.py    their two systems: fnnet.fit (hand-written) and fit(grad="autodiff"),
                     step memory, GPT attention recompute memory, final losses
  numpy_seeds.py     the seeds' NumPy loops, re-typed as published (and a NumPy Adam)
  systems_numpy.py   their runners (float64 as published, and float32) and the
                     `reference/` twin (train_sgd, or backward + a NumPy Adam)
  systems_jax.py     fnnet's hand-written backward in a jitted lax.scan, fnnet.fit,
                     jax.grad of fnnet.loss in the same scan; the float32 matmul peak
  memory.py          the compiled step's memory (fnnet, jax.grad, the custom_vjp bridge)
  systems_torch.py   PyTorch eager on CPU (optional: `pip install fnnet[bench]`)
  timing.py          runners, interleaved repeats, medians
  report.py          rows and targets
  report_md.py       the files: JSON and the Markdown report
  report_nets.py     the nets' rows, fnnet / jax.grad ratios, targets and Markdown
  notes.py           the report's notes
  machine.py         the machine and software the run used
  cli.py             argument parsing, `main(argv) -> int`

Speed is measured here and reported as ratios within one run; it is never asserted in
pytest (tests/bench/test_bench.py and test_bench_nets.py only check that --quick runs and
writes well-formed files).
"""

# The registry is whole once the package is imported: workloads_nets adds CNN, GPT and the
# L-* nets to the MLP workloads (imported here so neither module imports the other back).
from fnnet.bench import workloads, workloads_nets  # noqa: E402,F401
