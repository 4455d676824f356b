"""README.md is the user's door (#27): its first command installs from the clone it sits in and runs
the main job, its second runs the tests exactly as CI does; no placeholder a user must edit first."""

from __future__ import annotations

import re

from conftest import REPO


def _blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S)


def test_the_first_two_commands_are_install_and_run_then_the_tests():
    install, tests = (b.strip() for b in _blocks()[:2])
    assert install.startswith('pip install ".[cpu]"') and "gru-exp train experiment=imdb_ngrams" in install
    assert "<you>" not in install and "git+" not in install  # runs as written from a clone
    ci_command = (REPO / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert tests.endswith(ci_command) and ci_command == "python -m pytest"


def test_the_readme_opens_with_the_two_commands_not_figures():
    text = (REPO / "README.md").read_text()
    head = text[: text.index("## Run the tests")]
    assert head.count("```bash") == 1 and len(head.splitlines()) < 30
