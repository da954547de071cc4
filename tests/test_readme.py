"""Every command and code block the README shows runs as shown.

The Python blocks are executed in order in one namespace (the API tour, then the
check_gradient example); every ``$ netcheck ...`` line of the console block runs through
the CLI's ``main`` in a temporary folder and must exit 0.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from netcheck.cli import main

README = Path(__file__).resolve().parent.parent / "README.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def _netcheck_commands() -> list[list[str]]:
    commands = []
    for block in _blocks("console"):
        for line in block.splitlines():
            if line.startswith("$ netcheck "):
                commands.append(shlex.split(line[2:], comments=True)[1:])
    return commands


def test_the_readme_shows_code_and_commands():
    assert len(_blocks("python")) >= 2
    assert {argv[0] for argv in _netcheck_commands()} == {"verify", "train", "bench", "report"}


def test_the_python_blocks_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in _blocks("python"):
        if "jax.sharding.Mesh" in block:
            continue  # the multi-device snippet: tests/test_train_sharding.py runs it
        exec(compile(block, str(README), "exec"), namespace)
    assert namespace["verdict"].ok
    history = namespace["history"]
    assert history["train_accuracy"][-1] > 0.9  # the tour trains on two moons


@pytest.mark.slow
@pytest.mark.parametrize("argv", _netcheck_commands(), ids=" ".join)
def test_the_cli_examples_run(argv, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if argv[:2] == ["report", "--from"]:  # it re-renders the report a previous line made
        assert main(["report", "--no-progress", "--stages", "training"]) == 0
    assert main(argv) == 0
