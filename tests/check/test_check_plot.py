"""Where the error lies: report.plot draws per leaf the ratio |actual - expected| / tol the
check judged (the wrong element red, above 1; a right rule all below), `fnnet check --plot`
and `--json` write one file per case, and fnnet.check.ci / its pytest fixture write strict
JSON per check. Tests open the PNG (its pixel size) and parse the JSON."""
import json
import os

import jax.numpy as jnp
import matplotlib.image
import numpy as np
import pytest

from fnnet import check
from fnnet.check import ci, plot

DTYPES = [np.float64, np.float32]


def normal(*shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def fun(w, x):
    return jnp.tanh(x @ w)                                       # y[n, k], w [d, k], x [n, d]


def vjp(off):
    """Right rule; off=(i, j) puts a wrong factor on dw[i, j] alone."""
    def rule(w, x, ct):
        dz = ct * (1 - jnp.tanh(x @ w) ** 2)                     # dz = ct ⊙ tanh'
        dw = x.T @ dz                                            # dw = xᵀ dz
        if off is not None:
            dw = dw.at[off].multiply(1.5)
        return dw, dz @ w.T                                      # dx = dz wᵀ
    return rule


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_plot_shows_the_wrong_element_and_has_the_stated_size(dtype, tmp_path):
    w, x = normal(3, 4, dtype=dtype), normal(5, 3, seed=1, dtype=dtype)
    rep = check.check_vjp(fun, vjp((2, 1)), w, x)
    assert rep.failed_primals == ("w",)
    (leaf, row), (leaf_x, row_x) = plot.panels(rep)
    assert (leaf, leaf_x) == ("w", "x") and row.ratio.shape == (3, 4) and row_x.ratio.shape == (5, 3)
    worst = np.unravel_index(np.argmax(row.ratio), row.ratio.shape)
    assert worst == (2, 1) and row.ratio[worst] > 1 and np.delete(row.ratio.ravel(), 2 * 4 + 1).max() <= 1
    assert row_x.ratio.max() <= 1
    path = tmp_path / "where.png"
    assert rep.plot(path) == ["w", "x"]
    image = matplotlib.image.imread(path)
    assert os.path.getsize(path) > 0 and image.shape[:2][::-1] == plot.figure_size(2) == (800, 300)
    assert [p.name for p in tmp_path.iterdir()] == ["where.png"]          # no temporary left behind
    right = check.check_vjp(fun, vjp(None), w, x)
    assert right.ok and all(r.ratio.max() <= 1 for _, r in plot.panels(right))
    right.plot(tmp_path / "right.svg")
    assert (tmp_path / "right.svg").read_text().lstrip().startswith("<?xml")
    with pytest.raises(ValueError, match="must end in one of"):
        right.plot(tmp_path / "right.txt")


def test_as_matrix_and_a_report_with_nothing_per_element():
    assert plot.as_matrix(np.float64(2.0)).shape == (1, 1)
    assert plot.as_matrix(np.zeros(7)).shape == (1, 7)
    assert plot.as_matrix(np.zeros((2, 3, 4))).shape == (6, 4)
    empty = check.Report("nothing", (check.Row("x", "reference", "reference", "n/a"),))
    with pytest.raises(ValueError, match="nothing to draw"):
        empty.plot("never.png")


def test_save_json_by_folder_or_variable_is_strict_json(tmp_path, monkeypatch):
    w, x = normal(3, 4), normal(5, 3, seed=1)
    rep = check.check_vjp(fun, vjp((0, 0)), w, x, title="dense: tanh")
    monkeypatch.delenv(ci.ENV, raising=False)
    assert ci.save_json(rep) is None                                      # nothing asked for
    monkeypatch.setenv(ci.ENV, str(tmp_path / "ci"))
    path = ci.save_json(rep)
    assert os.path.basename(path) == "dense_tanh.json"
    data = json.loads(open(path).read(), parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))
    assert data["ok"] is False and data["title"] == "dense: tanh"
    failed = [r for r in data["rows"] if r["status"] == "FAIL"]
    assert failed and {r["primal"] for r in failed} == {"w"} and failed[0]["worst_index"] == [0, 0]
    assert "ratio" not in data["rows"][0]
    assert json.loads(open(ci.save_json(rep, tmp_path, "named")).read())["summary"] == rep.summary()


def test_the_pytest_fixture_names_files_by_test(tmp_path):
    test_file = tmp_path / "test_user.py"
    test_file.write_text(
        "import jax.numpy as jnp, numpy as np\n"
        "from fnnet import check\n"
        "def test_two(fnnet_check_json):\n"
        "    x = np.linspace(-1.0, 1.0, 4)\n"
        "    for k in (1.0, 2.0):\n"
        "        fnnet_check_json(check.check_vjp(jnp.sin, lambda x, c: (k * c * jnp.cos(x),), x))\n")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    out = tmp_path / "reports"
    code = pytest.main([str(test_file), "-q", "-p", "fnnet.check.pytest_plugin", "-p", "no:cacheprovider",
                        "-c", str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path),
                        "--fnnet-check-json", str(out)])
    assert code == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == ["test_user.py_test_two-1.json", "test_user.py_test_two-2.json"], files
    oks = [json.loads((out / f).read_text())["ok"] for f in files]
    assert oks == [True, False]


def test_fnnet_check_plot_and_json_write_one_file_per_case(tmp_path, capsys):
    from fnnet import cli
    code = cli.main(["check", "--only", "mse", "--dtype", "float64", "--plot", str(tmp_path / "png"),
                     "--json", str(tmp_path / "json")])
    assert code == 0, capsys.readouterr().out
    pngs, jsons = sorted(os.listdir(tmp_path / "png")), sorted(os.listdir(tmp_path / "json"))
    assert pngs and [p[:-4] for p in pngs] == [j[:-5] for j in jsons], (pngs, jsons)
    assert all(json.loads((tmp_path / "json" / j).read_text())["ok"] for j in jsons)
    assert matplotlib.image.imread(tmp_path / "png" / pngs[0]).shape[0] > 0
