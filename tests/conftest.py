"""Strict numerics for the whole suite.

x64 is on so float64 oracles are real float64; float32 cases pass float32 arrays
explicitly. Rank promotion raises so an accidental broadcast in a backward fails.
"""
import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")


# The files that take 30-80 s each (8-device subprocess suites, every builtin check, the
# benchmark runs), started first: xdist hands whole files to its two workers in collection
# order, and when the longest files come last one worker idles while the other finishes them.
# Only the order changes; every test runs.
_LONGEST_FIRST = ("train/test_sharding_state.py", "train/test_tensor_parallel.py", "train/test_sharding.py",
                  "cli/test_cli_check.py", "bench/test_bench_nets.py", "train/test_fsdp.py",
                  "bench/test_bench_zoo.py", "train/test_multihost.py", "bench/test_bench.py")


def pytest_collection_modifyitems(config, items):
    def rank(item):
        path = item.nodeid.split("::")[0]
        return next((i for i, name in enumerate(_LONGEST_FIRST) if path.endswith(name)), len(_LONGEST_FIRST))
    items.sort(key=rank)                          # stable: the rest keep their order
