"""What fnnet.check returns: one Row per (primal leaf, oracle) and a Report that prints them.

    primal    oracle                     max abs err  rel err  worst index  actual  expected  tol    verdict
    params.w  jax.vjp                    2.2e-16      1.1e-16  (1, 0)       0.53    0.53      1e-10  ok
    params.b  finite diff (per element)  0.31         0.5      (2,)         0.93    0.62      1e-06  FAIL [1]

err is |hand-written - oracle|: the hand-written backward is always the side under test,
the oracle column names who it is compared with; actual (hand-written) and expected (the
oracle) are the two values at the worst index (for a directional row: <hand, v> and the
difference quotient along the worst direction v). rel err = max err / scale of the leaf;
a row passes when rel err <= tol (tol folds in the absolute floors, see fnnet.check.compare).
Statuses: ok, FAIL, warn (passes, with a note that must be read: an oracle outvoted by the
independent witnesses), info (a witness that is not independent: shown, never votes), n/a.
"""
from __future__ import annotations

import dataclasses
import math

KINDS = ("jax", "reference", "fd")


@dataclasses.dataclass(frozen=True)
class Row:
    """One comparison. kind: "jax" | "reference" | "fd" | "structure" | "nondiff" | ...;
    status: ok | FAIL | warn | info | n/a (only FAIL fails)."""
    primal: str                 # pytree path of the leaf, e.g. "params.w" or "x"
    oracle: str                 # who the hand-written value is compared with, in words
    kind: str
    status: str
    max_abs_err: float = math.nan
    rel_err: float = math.nan
    worst_index: tuple | None = None   # index into the leaf of the largest error, if localized
    tol: float = math.nan              # allowed rel err (relative tolerance plus floors / scale)
    kinks: int = 0                     # elements accepted at a kink (see fnnet.check.compare)
    note: str = ""
    actual: float | None = None        # hand-written value at the worst index (NaN/inf kept)
    expected: float | None = None      # the oracle's value there
    # per element err / allowed, the leaf's shape, where the oracle is compared element by
    # element (None for directions, structure, ...): what report.plot draws; not in to_dict
    ratio: object = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def ok(self) -> bool:
        return self.status != "FAIL"


def _plain(v):
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, tuple):
        return [_plain(a) for a in v]
    return v


def failure_text(row) -> str:
    """', actual/expected ≈ 0.5 at (0,) vs jax.vjp' for a failed row (what is known of it)."""
    where = f" at {_index(row.worst_index)}" if row.worst_index is not None else ""
    a, e = row.actual, row.expected
    if a is not None and e is not None and math.isfinite(a) and math.isfinite(e) and e != 0:
        return f", actual/expected ≈ {a / e:.3g}{where} vs {row.oracle}"
    if a is not None and e is not None:
        return f", actual {value_text(a)} expected {value_text(e)}{where} vs {row.oracle}"
    return f" vs {row.oracle}" + (f" ({row.note.split(';')[0]})" if row.note else "")


def _num(v) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2g}"


def _val(v) -> str:
    return "—" if v is None else (value_text(v) if not math.isfinite(v) else f"{v:.3g}")


def value_text(v) -> str:
    """A value for a note: NaN, +inf, -inf spelled out, numbers to 3 digits."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+inf" if v > 0 else "-inf"
    return f"{v:.3g}"


def _index(ix) -> str:
    if ix is None:
        return "—"
    return "(" + ", ".join(str(int(i)) for i in ix) + (",)" if len(ix) == 1 else ")")


@dataclasses.dataclass(frozen=True)
class Report:
    """Result of fnnet.check.check_vjp / check_layer / check_network / check_loss.

    ok: every comparison passed (n/a rows do not fail). str(report): the table.
    raise_if_failed(): AssertionError carrying the table.
    """
    title: str
    rows: tuple
    header: str = ""            # dtype, cotangent, directions: how the numbers were made
    seconds: float = math.nan

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    @property
    def failures(self) -> tuple:
        return tuple(r for r in self.rows if not r.ok)

    @property
    def failed_primals(self) -> tuple:
        """Leaf paths with at least one failed comparison, in table order, no repeats."""
        return tuple(dict.fromkeys(r.primal for r in self.failures))

    @property
    def kinks(self) -> int:
        return sum(r.kinks for r in self.rows)

    def rows_for(self, primal=None, kind=None) -> tuple:
        return tuple(r for r in self.rows if (primal is None or r.primal == primal)
                     and (kind is None or r.kind == kind))

    def max_rel_err(self, kind: str):
        """Largest rel err over the leaves for one oracle kind ("jax", "reference", "fd");
        None when that oracle was n/a everywhere."""
        vals = [r.rel_err for r in self.rows if r.kind == kind and r.status != "n/a"
                and not math.isnan(r.rel_err)]
        return max(vals) if vals else None

    def leaf_verdicts(self) -> dict:
        """{leaf path: (status, the row that decides it)}, in table order: FAIL if any of the
        leaf's rows failed (the deciding row: the first failed one), else warn, else ok (n/a
        and info rows do not count; a leaf with nothing but those is "n/a")."""
        out = {}
        for r in self.rows:
            out.setdefault(r.primal, [])
            out[r.primal].append(r)
        verdicts = {}
        for name, rows in out.items():
            for status in ("FAIL", "warn", "ok"):
                hit = [r for r in rows if r.status == status]
                if hit:
                    verdicts[name] = (status, hit[0])
                    break
            else:
                verdicts[name] = ("n/a", rows[0])
        return verdicts

    def summary(self) -> str:
        """One line: each leaf's verdict, failures with actual/expected at the worst index
        (params.alpha: FAIL, actual/expected ≈ 0.5 at (0,) vs jax.vjp; x: ok)."""
        return "; ".join(f"{name}: {status}" + (failure_text(row) if status == "FAIL" else "")
                         for name, (status, row) in self.leaf_verdicts().items())

    def to_dict(self) -> dict:
        """The report as plain JSON-ready data (NaN and inf as None, tuples as lists), for CI."""
        return dict(title=self.title, ok=self.ok, summary=self.summary(), header=self.header,
                    seconds=_plain(self.seconds),
                    rows=[{f.name: _plain(getattr(r, f.name)) for f in dataclasses.fields(r) if f.name != "ratio"}
                          for r in self.rows])

    def plot(self, path, title=None):
        """Draw where the error lies: per leaf a heatmap of |actual - expected| / tol element by
        element, against the witness that is furthest off there (fnnet.check.plot); written
        atomically to `path` (.png, .pdf or .svg by its suffix). Returns the leaves drawn."""
        from fnnet.check import plot
        return plot.save(self, path, title=title)

    def raise_if_failed(self):
        if not self.ok:
            raise AssertionError(f"fnnet.check failed: {self.title}: {self.summary()}\n" + str(self))
        return self

    def __bool__(self):
        raise TypeError("a Report has no truth value; use report.ok or report.raise_if_failed()")

    def __str__(self):
        notes, body = {}, []   # note text -> footnote number (a note shared by rows is printed once)
        for r in self.rows:
            verdict = r.status
            if r.kinks:
                verdict += f" ({r.kinks} at kink{'s' if r.kinks > 1 else ''})"
            if r.note:
                if r.status == "n/a":           # the same for every leaf: say it once
                    text = f"{r.oracle}: {r.note}"
                elif r.kind in ("structure", "nondiff"):
                    text = f"{r.primal}: {r.note}"
                else:
                    text = f"{r.primal} vs {r.oracle}: {r.note}"
                verdict += f" [{notes.setdefault(text, len(notes) + 1)}]"
            body.append((r.primal, r.oracle, _num(r.max_abs_err), _num(r.rel_err),
                         _index(r.worst_index) if r.kind != "structure" else "—",
                         _val(r.actual), _val(r.expected), _num(r.tol), verdict))
        head = ("primal", "oracle", "max abs err", "rel err", "worst index", "actual", "expected", "tol",
                "verdict")
        widths = [max(len(row[i]) for row in [head] + body) for i in range(len(head))]
        line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
        failed = self.failures
        warned = [r for r in self.rows if r.status == "warn"]
        verdict = (("OK" + (f" ({len(warned)} warning{'s' if len(warned) > 1 else ''}: see the notes)"
                            if warned else "")) if not failed else
                   f"FAIL: {len(failed)} of {len(self.rows)} comparisons, "
                   f"primal(s) {', '.join(self.failed_primals)}")
        out = [f"{self.title}: hand-written vs oracle",
               *([self.header] if self.header else []),
               "err = |hand-written - oracle|; rel err = max err / leaf scale; passes when rel err <= tol",
               line(head), line(["-" * w for w in widths]), *map(line, body),
               *(f"[{n}] {text}" for text, n in notes.items()),
               f"result: {verdict}" + (f"  ({self.seconds:.2f} s)" if not math.isnan(self.seconds) else "")]
        return "\n".join(out)

    def __repr__(self):
        return f"<fnnet.check.Report {self.title!r} ok={self.ok} rows={len(self.rows)}>"
