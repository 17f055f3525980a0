"""The README's example for the checks beyond one call of the rule runs as printed."""
import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    mine = [b for b in blocks if "# beyond one call of the rule" in b]
    assert len(mine) == 1, "the README block marked '# beyond one call of the rule' is missing"
    exec(compile(mine[0], "README.md", "exec"), {})


def test_the_readme_example_for_users_objects_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    mine = [b for b in blocks if "# users' objects as they are" in b]
    assert len(mine) == 1, "the README block marked '# users' objects as they are' is missing"
    exec(compile(mine[0], "README.md", "exec"), {})
