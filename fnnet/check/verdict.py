"""The verdict: named rules, applied in order, turn one comparison's evidence into a status.

Every row of a report gets its status here (the structure and non-differentiable rows, which
compare nothing, are FAIL and NONDIFF by construction). The comparisons (fnnet.check.compare,
fdcompare) measure; this module only decides, so a verdict can be explained from the list:

  per comparison (decide, first rule that applies):
    1. absent           the witness does not exist (no reference given)          -> n/a
    2. not_a_witness    jax.vjp runs the rule under test (a user custom rule)     -> info
    3. disagrees        beyond tolerance after kinks, yardstick and outvoting     -> FAIL
    4. outvoted         within tolerance because the oracle was outvoted somewhere -> warn
    5. agrees                                                                     -> ok
  per leaf, once all its comparisons are decided (decide_leaf):
    6. stop_gradient_surrogate  fun stops a gradient, the rule agrees with jax.vjp (and the
                        reference), and only finite differences (the function's own
                        derivative, not the surrogate) disagree: their FAIL becomes warn.
"""
from __future__ import annotations

import dataclasses
import enum


class Status(str, enum.Enum):
    """A row's verdict; compares equal to its text ("FAIL" == Status.FAIL)."""
    OK = "ok"
    FAIL = "FAIL"
    WARN = "warn"
    INFO = "info"
    NA = "n/a"
    NONDIFF = "nondiff"

    def __str__(self):
        return self.value

    def __format__(self, spec):
        return format(self.value, spec)


@dataclasses.dataclass(frozen=True)
class Evidence:
    """What one comparison of one leaf found.

    present: the witness exists; independent: it does not run the rule under test;
    within_tolerance: every element agrees (after kinks, yardstick and outvoting);
    outvoted: elements where this witness was outvoted by finite differences."""
    present: bool = True
    independent: bool = True
    within_tolerance: bool = True
    outvoted: int = 0


def absent(e: Evidence):
    return Status.NA if not e.present else None


def not_a_witness(e: Evidence):
    return Status.INFO if not e.independent else None


def disagrees(e: Evidence):
    return Status.FAIL if not e.within_tolerance else None


def outvoted(e: Evidence):
    return Status.WARN if e.outvoted else None


def agrees(e: Evidence):
    return Status.OK


RULES = (absent, not_a_witness, disagrees, outvoted, agrees)


def decide(e: Evidence) -> Status:
    """The status of one comparison: the first of RULES that applies."""
    for rule in RULES:
        status = rule(e)
        if status is not None:
            return status
    raise AssertionError("unreachable: agrees always applies")


def stop_gradient_surrogate(kinds_statuses, stops: int) -> bool:
    """[(kind, status)] of one leaf's rows: do its finite-difference failures stand for the
    function's own derivative where fun defines a stop_gradient surrogate (rule 6)?"""
    if not stops:
        return False
    if not any(k == "fd" and s == Status.FAIL for k, s in kinds_statuses):
        return False
    if not all(s in (Status.OK, Status.NA, Status.WARN) for k, s in kinds_statuses if k in ("jax", "reference")):
        return False
    return any(k == "jax" and s == Status.OK for k, s in kinds_statuses)


LEAF_RULES = (stop_gradient_surrogate,)

_SURROGATE = ("fun contains stop_gradient: finite differences see the function's own derivative, "
              "while jax.vjp and the hand-written rule (which agree) give the surrogate gradient "
              "stop_gradient defines; shown as a warning. If the surrogate was not meant, the "
              "stop_gradient is the bug")


def judge_leaf(rows, stops: int):
    """One leaf's rows (each decided by `decide`) after the leaf rules: where
    stop_gradient_surrogate applies, its finite-difference failures become warnings that say
    why; a rule that disagrees with jax.vjp still fails on that row. Returns the new rows."""
    if not stop_gradient_surrogate([(r.kind, r.status) for r in rows], stops):
        return list(rows)
    return [dataclasses.replace(r, status=Status.WARN, note="; ".join(filter(None, [_SURROGATE, r.note])))
            if r.kind == "fd" and r.status == Status.FAIL else r for r in rows]
