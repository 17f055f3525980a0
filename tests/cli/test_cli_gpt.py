"""`fnnet gpt train|sample`: a tiny run end to end, and bad options."""
import pytest

from fnnet.cli import gpt as cli
from fnnet.cli import main


def test_gpt_train_tiny(capsys, tmp_path):
    rc = main(["gpt", "train", "--max-chars", "4000", "--layers", "1", "--heads", "2", "--dim", "8",
               "--context", "16", "--batch-size", "16", "--epochs", "2", "--sample", "20", "--prompt", "T",
               "--save", str(tmp_path / "gpt.npz")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "bigram baseline" in out and "epoch 2/2" in out and "nats/char vs bigram" in out
    assert "--- greedy ---" in out and "--- temperature 0.8 ---" in out
    assert main(["gpt", "sample", str(tmp_path / "gpt.npz"), "--prompt", "T", "--chars", "30"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("T") and len(text.rstrip("\n")) >= 31


def test_gpt_bad_options(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "--dim", "0"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        cli.main(["fly"])
    assert e.value.code == 2
