"""The checker's self-test battery (fnnet/check/selftest.py) and `fnnet check --self-test`.

CI runs a quick subset through the command's code path; the whole battery (~70 rules, both
dtypes) is `fnnet check --self-test`."""
from fnnet.check import selftest
from fnnet.cli import check as cli


def test_the_battery_has_a_correct_and_a_buggy_rule_per_family_and_30_of_each():
    rules = selftest.battery()
    assert len({(r.family, r.name) for r in rules}) == len(rules)          # names are unique
    assert sum(r.correct for r in rules) >= 30 and sum(not r.correct for r in rules) >= 30
    for family in {r.family for r in rules}:
        mine = [r for r in rules if r.family == family]
        assert any(r.correct for r in mine) and any(not r.correct for r in mine), family


def test_quick_subset_through_the_command(capsys):
    words = ",".join(selftest.QUICK)
    assert cli.main(["--self-test", "--only", words]) == 0
    out = capsys.readouterr().out
    assert "6/6 bug checks caught, 0 false alarm(s) in 6 correct checks" in out, out
    for family in selftest.QUICK:
        assert family in out


def test_a_wrong_verdict_is_reported_and_fails_the_run(monkeypatch):
    # a buggy rule labelled correct: the checker fails it, so the battery reports a false alarm
    mislabelled = selftest.Rule("double", "labelled correct, doubled", True, lambda x: x * x,
                                lambda x, ct: (4 * x * ct,), lambda rng: (rng.standard_normal(3),))
    result = selftest.run((mislabelled,), ("float64",))
    assert not result.ok and "FALSE ALARM: double / labelled correct, doubled (float64)" in result.text()
    monkeypatch.setattr(selftest, "FAMILIES", selftest.FAMILIES + (lambda: [mislabelled],))
    assert cli.main(["--self-test", "--only", "double", "--dtype", "float64"]) == 1


def test_an_unknown_family_is_refused_before_running(capsys):
    assert cli.main(["--self-test", "--only", "no-such-family"]) == 2
    assert "names no family" in capsys.readouterr().err
