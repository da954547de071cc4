"""Every command and code block the README shows runs as shown.

The Python blocks run in order in one namespace, every one of them (the API tour, the
check_gradient example, the data-parallel example), in a fresh Python process on 4
simulated CPU devices (``XLA_FLAGS`` must be set before JAX starts, hence the process).
Every ``$ netcheck ...`` line of the console block runs through the CLI's ``main`` in a
temporary folder and must exit 0.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
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


RUN_BLOCKS = textwrap.dedent(
    """
    import json, re, sys

    import jax

    # As in tests/conftest.py: silent dtype or rank promotion fails loudly.
    jax.config.update("jax_numpy_dtype_promotion", "strict")
    jax.config.update("jax_numpy_rank_promotion", "raise")

    readme = sys.argv[1]
    namespace = {}
    blocks = re.findall(r"```python\\n(.*?)```", open(readme, encoding="utf-8").read(), re.S)
    for block in blocks:
        exec(compile(block, readme, "exec"), namespace)
    params = namespace["params"]
    print(json.dumps({
        "blocks": len(blocks),
        "devices": jax.device_count(),
        "mesh_devices": namespace["mesh"].devices.size,
        "params_devices": len(params[0]["W"].sharding.device_set),
        "check_gradient_ok": bool(namespace["verdict"].ok),
        "train_accuracy": float(namespace["history"]["train_accuracy"][-1]),
    }))
    """
)
"""Runs in the fresh process: every Python block of the README, then a JSON summary."""


def test_the_readme_shows_code_and_commands():
    assert len(_blocks("python")) >= 3
    assert {argv[0] for argv in _netcheck_commands()} == {"verify", "train", "bench", "report"}


def test_every_python_block_runs_in_order_on_four_devices(tmp_path):
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
        "JAX_PLATFORMS": "cpu",
    }
    completed = subprocess.run(
        [sys.executable, "-c", RUN_BLOCKS, str(README)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["blocks"] == len(_blocks("python"))
    assert result["devices"] == result["mesh_devices"] == 4
    assert result["params_devices"] == 4  # the sharded run left its parameters on all four
    assert result["check_gradient_ok"]  # the check_gradient example's verdict
    assert result["train_accuracy"] > 0.9  # the tour and the sharded run train on two moons


@pytest.mark.slow
@pytest.mark.parametrize("argv", _netcheck_commands(), ids=" ".join)
def test_the_cli_examples_run(argv, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if argv[:2] == ["report", "--from"]:  # it re-renders the report a previous line made
        assert main(["report", "--no-progress", "--stages", "training"]) == 0
    assert main(argv) == 0


def _update_readme_module():
    path = README.parent / "scripts" / "update_readme.py"
    spec = importlib.util.spec_from_file_location("update_readme", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_measured_table_in_the_readme_and_docs_is_drawn_from_its_committed_artifact():
    """Each generated block equals what ``scripts/update_readme.py`` draws from
    ``reports/artifacts/`` now: a changed artifact or a hand-edited number fails here."""
    update_readme = _update_readme_module()
    readme_names = re.findall(r"<!-- generated: (\w+) -->", README.read_text(encoding="utf-8"))
    assert sorted(readme_names) == sorted(update_readme.BLOCKS)
    assert README in update_readme.DOCUMENTS
    for document in update_readme.DOCUMENTS:
        _assert_blocks_drawn(update_readme, document.read_text(encoding="utf-8"))


def _assert_blocks_drawn(update_readme, text):
    for name in re.findall(r"<!-- generated: (\w+) -->", text):
        block = re.search(
            rf"<!-- generated: {name} -->\n(.*?)\n<!-- end generated: {name} -->", text, re.S
        )
        assert block is not None and block.group(1) == update_readme.block_text(name), name
        artifact = json.loads((update_readme.ARTIFACTS / update_readme.BLOCKS[name][0]).read_text())
        assert artifact["command"] in block.group(1), name


@pytest.mark.skipif(not (README.parent / ".git").exists(), reason="not a git checkout")
def test_the_main_command_leaves_the_checkout_clean():
    """``netcheck report`` writes reports/latest/ (or reports/<name>/): git ignores both,
    while the committed example report and the artifacts stay tracked."""
    paths = [
        "reports/latest/index.html",
        "reports/my-run/results.json",
        "reports/example-cpu/index.html",
        "reports/artifacts/bench.json",
    ]
    completed = subprocess.run(
        ["git", "check-ignore", "--no-index", *paths],
        cwd=README.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.stdout.split() == paths[:2]
