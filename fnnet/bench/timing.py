"""Runners and the timing loop: interleaved repeats, medians, compile time apart.

A Runner trains one workload once per `run()` call, from the workload's initial weights,
and blocks until the result is computed. The repeats are interleaved (system A, B, C,
A, B, C, ...) so that load from other processes on a shared machine hits every system
alike; the medians and the ratios between them are what the report uses.
"""
from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Any, Callable, Optional

import numpy as np


@dataclasses.dataclass
class Runner:
    """system: e.g. "fnnet"; dtype: "float32"/"float64".

    run() -> result, blocking; result_params(result) -> [(w, b)] NumPy, outside the timer.
    reset(): untimed, before each run (fresh copies of donated or mutated buffers).
    warmup(): untimed, once before the repeats (a few torch steps: lazy kernel set-up;
      fnnet.fit's first call, which compiles and sets compile_s).
    compile_s: seconds spent compiling, never inside a timed run.
    timed_steps: when smaller than the workload's steps, each run trains only that many
      steps and its time is scaled by steps / timed_steps ("extrapolated").
    """
    system: str
    dtype: str
    run: Callable[[], Any]
    result_params: Callable[[Any], Any] = lambda r: r
    reset: Callable[[], None] = lambda: None
    compile_s: Optional[float] = None
    timed_steps: Optional[int] = None
    warmup: Optional[Callable[[], Any]] = None
    hlo: Optional[dict] = None            # op counts of the compiled program (JAX rows)
    note: str = ""
    variant: str = ""

    @property
    def key(self):
        return f"{self.system}{'[' + self.variant + ']' if self.variant else ''}/{self.dtype}"


@dataclasses.dataclass
class Timing:
    times_s: list
    compile_s: Optional[float]
    params: Any                      # final params of the last run, [(w, b)] NumPy
    scale: float = 1.0
    cpu_s: list = dataclasses.field(default_factory=list)   # process CPU seconds per run

    @property
    def median_s(self):
        return statistics.median(self.times_s)

    @property
    def cpu_median_s(self):
        return statistics.median(self.cpu_s) if self.cpu_s else None


def measure(runners, repeats, steps, log=print):
    """Time every runner `repeats` times, interleaved -> {runner.key: Timing or error str}."""
    errors = {}
    for r in runners:
        if r.warmup is not None:
            try:
                r.reset()
                r.warmup()
            except Exception as e:                   # one broken system must not sink the rest
                errors[r.key] = f"{type(e).__name__}: {e}"
    times = {r.key: [] for r in runners}
    cpu = {r.key: [] for r in runners}     # CPU seconds of this process (all its threads):
    results = {}                           # work done, less sensitive to other processes' load
    for rep in range(repeats):
        for r in runners:
            if r.key in errors:
                continue
            try:
                r.reset()
                c0, t0 = time.process_time(), time.perf_counter()
                out = r.run()
                dt, dc = time.perf_counter() - t0, time.process_time() - c0
            except Exception as e:
                errors[r.key] = f"{type(e).__name__}: {e}"
                log(f"    {r.key:<34} FAILED: {errors[r.key]}")
                continue
            scale = steps / r.timed_steps if r.timed_steps else 1.0
            times[r.key].append(dt * scale)
            cpu[r.key].append(dc * scale)
            results[r.key] = out
            log(f"    {r.key:<34} run {rep + 1}/{repeats}: {dt * scale:9.3f} s"
                + (f"  (extrapolated x{scale:.1f})" if scale != 1.0 else ""))
    timings = {}
    for r in runners:
        if r.key in errors:
            timings[r.key] = errors[r.key]
            continue
        scale = steps / r.timed_steps if r.timed_steps else 1.0
        params = None if scale != 1.0 else r.result_params(results[r.key])
        timings[r.key] = Timing(times[r.key], r.compile_s, params, scale, cpu[r.key])
    return timings


def median_time(fn, repeats, warmup=1):
    """Median wall time of fn() (which must block), after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), ts


def to_numpy_params(params):
    """[(w, b)] of any array type -> [(np.ndarray, np.ndarray)] float64."""
    return [(np.asarray(w, dtype=np.float64), np.asarray(b, dtype=np.float64).reshape(-1))
            for w, b in params]


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages as text ("?" where /proc/loadavg is missing)."""
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


PUBLISHABLE_LOAD = 1.0     # a table measured with a higher 1-minute load average is not publishable
SETTLE_S = 150.0           # the longest wait for the load to fall back to PUBLISHABLE_LOAD


def settle(limit_s, poll_s=3.0, clock=time.monotonic, sleep=time.sleep, read=None):
    """Sleep until the 1-minute load average is <= PUBLISHABLE_LOAD, at most `limit_s` seconds
    -> (load text, seconds waited).

    Why wait: a benchmark lifts the load average it is judged by. Two busy threads on two
    cores leave the 1-minute average near 2 when they stop, so a reading taken at once would
    mark every 2-thread table unpublishable. The average decays as exp(-t/60) once nothing
    runs (2 -> 1 in about 42 s), so the reading taken after a quiet wait shows whether
    anything *else* was running: on a busy machine it never falls, and the table stays not
    publishable. limit_s=0 reads at once (--quick runs, which are never headline figures).
    """
    read = read or loadavg
    t0 = clock()
    text = read()
    while clock() - t0 < limit_s:
        load1 = _load1(text)
        if load1 is not None and load1 <= PUBLISHABLE_LOAD:
            break
        sleep(poll_s)
        text = read()
    return text, clock() - t0


def _load1(text):
    try:
        return float(text.split()[0])
    except (ValueError, IndexError, AttributeError):
        return None


def publishable(load_before, load_after):
    """True only if the 1-minute load average was <= PUBLISHABLE_LOAD before and after a table."""
    loads = [_load1(x) for x in (load_before, load_after)]
    return all(v is not None and v <= PUBLISHABLE_LOAD for v in loads)


def load_record(load_before, load_after, settled_s=None):
    """{"load_before", "load_after", "publishable"[, "settled_s"]}: what every table of
    `fnnet bench` carries; settled_s is how long `settle` waited for the after-reading."""
    rec = {"load_before": load_before, "load_after": load_after,
           "publishable": publishable(load_before, load_after)}
    if settled_s is not None:
        rec["settled_s"] = round(settled_s, 1)
    return rec


def load_line(table):
    """The Markdown line under a table's heading saying its load and whether it is publishable."""
    verdict = ("publishable" if table["publishable"] else
               f"**NOT PUBLISHABLE** (1-minute load above {PUBLISHABLE_LOAD:g})")
    waited = (f" (read after {table['settled_s']:g} s of quiet, for the benchmark's own threads to "
              "leave the average)" if table.get("settled_s") else "")
    return (f"Load average (1, 5, 15 min) before {table['load_before']}, after {table['load_after']}"
            f"{waited}: {verdict}.")
