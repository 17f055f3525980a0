"""Where `fnnet bench` writes and what --quick says about targets (no timing asserted)."""
import re

from fnnet.bench import cli


def test_default_out_is_a_new_named_folder_not_bench():
    args = cli.parser().parse_args([])
    assert args.out is None                               # run() names a folder of its own
    name = cli.default_out()
    assert re.fullmatch(r"fnnet-bench-\d{8}-\d{6}", name) and name != "bench"


def test_gpt_torch_is_split_from_registered_workloads():
    assert cli._split_gpt_torch("W1,GPT-torch") == ("W1", True)
    assert cli._split_gpt_torch("GPT-torch") == (None, True)
    assert cli._split_gpt_torch("W1,W2") == ("W1,W2", False)
    assert cli._split_gpt_torch(None) == (None, False)


def test_quick_never_prints_missed(tmp_path, capsys):
    assert cli.main(["--quick", "--repeats", "1", "--out", str(tmp_path), "--workloads", "W2"]) == 0
    printed = capsys.readouterr().out
    assert f"writing to {tmp_path}/" in printed
    assert "MISSED" not in printed and "quick: not checked" in printed
    md = (tmp_path / "results-cpu.md").read_text()
    assert "**no**" not in md and "not checked (--quick)" in md
    assert "Load average (1, 5, 15 min) before" in md
