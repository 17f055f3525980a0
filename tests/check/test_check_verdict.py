"""fnnet.check.verdict: each named rule alone, then their order."""
from fnnet.check import verdict as v
from fnnet.check.verdict import Evidence, Status


def test_each_rule_alone():
    assert v.absent(Evidence(present=False)) == Status.NA and v.absent(Evidence()) is None
    assert v.not_a_witness(Evidence(independent=False)) == Status.INFO and v.not_a_witness(Evidence()) is None
    assert v.disagrees(Evidence(within_tolerance=False)) == Status.FAIL and v.disagrees(Evidence()) is None
    assert v.outvoted(Evidence(outvoted=3)) == Status.WARN and v.outvoted(Evidence()) is None
    assert v.agrees(Evidence()) == Status.OK


def test_rules_apply_in_order():
    assert v.RULES == (v.absent, v.not_a_witness, v.disagrees, v.outvoted, v.agrees)
    # a non-independent witness that disagrees is information, never a failure
    assert v.decide(Evidence(independent=False, within_tolerance=False)) == Status.INFO
    # outvoted somewhere but failing elsewhere: FAIL (the verdict never says it passes)
    assert v.decide(Evidence(within_tolerance=False, outvoted=5)) == Status.FAIL
    assert v.decide(Evidence(outvoted=5)) == Status.WARN
    assert v.decide(Evidence(present=False, within_tolerance=False)) == Status.NA


def test_stop_gradient_surrogate_leaf_rule():
    rows = [("jax", Status.OK), ("reference", Status.NA), ("fd", Status.FAIL)]
    assert v.stop_gradient_surrogate(rows, stops=1)
    assert not v.stop_gradient_surrogate(rows, stops=0)                       # no stop_gradient in fun
    assert not v.stop_gradient_surrogate([("jax", Status.FAIL), ("fd", Status.FAIL)], stops=1)
    assert not v.stop_gradient_surrogate([("jax", Status.INFO), ("fd", Status.FAIL)], stops=1)


def test_status_reads_as_its_text():
    assert Status.FAIL == "FAIL" and f"{Status.WARN}" == "warn" and str(Status.NA) == "n/a"
    assert f"{Status.OK:>4}" == "  ok"


def test_judge_leaf_turns_only_the_surrogate_fd_failures_into_warnings():
    from fnnet.check.report import Row
    rows = [Row("w", "jax.vjp", "jax", Status.OK), Row("w", "finite diff", "fd", Status.FAIL, note="off")]
    judged = v.judge_leaf(rows, stops=1)
    assert [r.status for r in judged] == [Status.OK, Status.WARN]
    assert judged[1].note.startswith("fun contains stop_gradient") and judged[1].note.endswith("off")
    assert [r.status for r in v.judge_leaf(rows, stops=0)] == [Status.OK, Status.FAIL]
    wrong = [Row("w", "jax.vjp", "jax", Status.FAIL), Row("w", "finite diff", "fd", Status.FAIL)]
    assert [r.status for r in v.judge_leaf(wrong, stops=1)] == [Status.FAIL, Status.FAIL]
