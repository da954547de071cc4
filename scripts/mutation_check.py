"""A mutation check of netcheck's own test suite: plant realistic bugs, see which tests fail.

    python scripts/mutation_check.py                  # the whole catalogue (about half an hour)
    python scripts/mutation_check.py --only verifier  # mutations whose name contains a word
    python scripts/mutation_check.py --list           # the catalogue, and where each applies

netcheck asks its users to prove a gradient check's power with planted bugs; this script asks
the same of netcheck's tests. Each ``Mutation`` of ``CATALOGUE`` is one realistic bug:
a regular expression that finds the code by intent (by the names around it, not by line
numbers, so it survives refactors) and its replacement. For each, the repository is copied to
a temporary directory (without ``.venv`` and ``.git``), the one file is rewritten there, and the
mutation's own small selection of tests is run against the copy, one pytest at a time::

    PYTHONPATH=<copy> python -m pytest -q -x -p no:cacheprovider <tests>

Outcomes: ``killed`` (the tests fail), ``survived`` (they pass), ``no longer applies`` (the
expression matched 0 times, or more than once: the code changed and the catalogue must follow;
never counted as killed), ``timeout``, and ``error`` (pytest collected nothing or was misused,
or the test that killed the mutation fails on the unmutated copy too: every kill is confirmed
by running its killing test once more without the mutation).
A survivor that cannot be killed because the mutant computes the same thing carries its reason
in the catalogue (``equivalent``), which the table and the JSON report.

It is far too slow for CI (one pytest per mutation) and stays out of ``.ci/run``. The JSON
(``--json``, default ``reports/artifacts/mutation_check.json``) records the command, the date,
the load average, and per mutation its file, tests, outcome and seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON = ROOT / "reports" / "artifacts" / "mutation_check.json"
DEFAULT_TIMEOUT_S = 300.0
COPY_IGNORE = (".venv", ".git", "__pycache__", ".pytest_cache", ".hypothesis", ".ruff_cache")

KILLED, SURVIVED, NOT_APPLIED = "killed", "survived", "no longer applies"
TIMEOUT, ERROR = "timeout", "error"


@dataclass(frozen=True)
class Mutation:
    """One planted bug.

    Attributes:
        name: short and unique, ``area:what``.
        file: the file it rewrites, relative to the repository root.
        pattern: a regular expression (``re.MULTILINE``) that finds the code by intent.
        replacement: what replaces each match (``re.sub`` syntax: ``\\g<1>`` ...).
        tests: pytest arguments, relative to the root: test files or node ids.
        keyword: a ``-k`` expression narrowing ``tests``, or ``""`` for all of them.
        once: the pattern must match exactly once (otherwise at least once, each replaced).
        equivalent: for a mutant that computes the same thing as the code, why; ``""`` if not.
    """

    name: str
    file: str
    pattern: str
    replacement: str
    tests: tuple[str, ...]
    keyword: str = ""
    once: bool = True
    equivalent: str = ""


def _return_of(function: str) -> str:
    """A pattern whose group 1 runs from ``def function(`` to its first ``return ``, and
    whose group 2 is the rest of that line: the returned expression."""
    return rf"(^def {function}\(.*\n(?:.*\n)*?\s+return )(.+)$"


BACKPROP_SWEEPS = "by_hand or reproduces_the_slides or manual_matches_autodiff"
"""The hand-computed networks and the activation x loss x depth x width sweep: the slower
Hypothesis and vmap tests of ``test_backprop.py`` add nothing these miss."""

CATALOGUE: tuple[Mutation, ...] = (
    # ----- activations ---------------------------------------------------------------------
    Mutation(
        "activations:gelu' x 1.001",
        "netcheck/nn/activations.py",
        _return_of("_gelu_prime"),
        r"\g<1>1.001 * (\g<2>)",
        ("tests/test_activations.py",),
    ),
    Mutation(
        "activations:tanh' from z, not from a",
        "netcheck/nn/activations.py",
        _return_of("_tanh_prime"),
        r"\g<1>(1 - z) * (1 + z)",
        ("tests/test_activations.py",),
    ),
    Mutation(
        "activations:leaky_relu' loses its leak",
        "netcheck/nn/activations.py",
        r"(^def _leaky_relu_prime\(.*\n(?:.*\n)*?.*jnp\.where\(a >= 0, 1, )LEAKY_RELU_SLOPE\)",
        r"\g<1>0)",
        ("tests/test_activations.py",),
    ),
    Mutation(
        "activations:elu' is e^z - 1, not e^z",
        "netcheck/nn/activations.py",
        r"(^def _elu_prime\(.*\n(?:.*\n)*?\s+return jnp\.where\(a > 0, 1, )a \+ 1\)",
        r"\g<1>a)",
        ("tests/test_activations.py",),
    ),
    Mutation(
        "activations:sigmoid'' sign flipped",
        "netcheck/nn/activations.py",
        _return_of("_sigmoid_second"),
        r"\g<1>-(\g<2>)",
        ("tests/test_activations.py",),
    ),
    Mutation(
        "activations:softmax G(L) v without -s sᵀv",
        "netcheck/nn/activations.py",
        _return_of("softmax_vjp"),
        r"\g<1>s * v",
        ("tests/test_activations.py",),
    ),
    # ----- losses --------------------------------------------------------------------------
    Mutation(
        "losses:squared error ∂L/∂ŷ = y - ŷ (the slide's sign)",
        "netcheck/nn/losses.py",
        _return_of("_squared_error_grad"),
        r"\g<1>y - y_hat",
        ("tests/test_losses.py",),
    ),
    Mutation(
        "losses:sigmoid + BCE δ^L = y - ŷ",
        "netcheck/nn/losses.py",
        _return_of("_bce_delta"),
        r"\g<1>y - jax.nn.sigmoid(z)",
        ("tests/test_losses.py",),
    ),
    Mutation(
        "losses:BCE ∂²L/∂ŷ² with ŷ² for (1-ŷ)²",
        "netcheck/nn/losses.py",
        r"(^def _bce_grad_tangent\(.*\n(?:.*\n)*?.*\(1 - y\) / jnp\.square\()1 - y_hat\)",
        r"\g<1>y_hat)",
        ("tests/test_losses.py",),
    ),
    Mutation(
        "losses:targets above 1 accepted",
        "netcheck/nn/losses.py",
        r"if low < 0 or high > 1:",
        r"if low < 0:",
        ("tests/test_losses.py",),
    ),
    # ----- backprop ------------------------------------------------------------------------
    Mutation(
        "backprop:δ recursion uses W_ℓ for W_{ℓ+1}",
        "netcheck/nn/backprop.py",
        r"(deltas\.append\(g_prime \* \(deltas\[-1\] @ params\[)layer(\]\[\"W\"\]\)\))",
        r"\g<1>layer - 1\g<2>",
        ("tests/test_backprop.py",),
        keyword=BACKPROP_SWEEPS,
    ),
    Mutation(
        "backprop:δ^L without G(L) for an elementwise output",
        "netcheck/nn/backprop.py",
        r"return output\.derivative\(z_out, y_hat\) \* grad_prediction",
        r"return grad_prediction",
        ("tests/test_backprop.py",),
        keyword=BACKPROP_SWEEPS,
    ),
    Mutation(
        "backprop:∂L/∂b_ℓ averages the already averaged δ",
        "netcheck/nn/backprop.py",
        r"(layer\[\"b\"\] = delta)\.sum\(axis=0\)",
        r"\g<1>.mean(axis=0)",
        ("tests/test_backprop.py",),
        keyword=BACKPROP_SWEEPS,
    ),
    Mutation(
        "backprop:the mean's 1/n forgotten",
        "netcheck/nn/backprop.py",
        r"(top_delta = output_delta\(net, cache, y\)) / x\.shape\[0\]",
        r"\g<1>",
        ("tests/test_backprop.py",),
        keyword=BACKPROP_SWEEPS,
    ),
    # ----- autodiff ------------------------------------------------------------------------
    Mutation(
        "autodiff:per-example δ from the mean, not the sum, of the losses",
        "netcheck/nn/autodiff.py",
        r"(def summed_loss\(.*\n\s+return )jnp\.sum\(",
        r"\g<1>jnp.mean(",
        ("tests/test_autodiff.py",),
    ),
    Mutation(
        "autodiff:H v is the gradient (jvp's primal output)",
        "netcheck/nn/autodiff.py",
        r"(return jax\.jvp\(gradient, \(params,\), \(v,\)\))\[1\]",
        r"\g<1>[0]",
        ("tests/test_autodiff.py",),
    ),
    # ----- literal -------------------------------------------------------------------------
    Mutation(
        "literal:δ^L without G(L)",
        "netcheck/nn/literal.py",
        r"delta = \[g\[-1\] @ (net\.loss_fn\.grad_prediction\(a\[-1\], y\))\]",
        r"delta = [\g<1>]",
        ("tests/test_literal.py",),
    ),
    Mutation(
        "literal:the batch summed, not averaged",
        "netcheck/nn/literal.py",
        r"(def literal_grad\(.*\n(?:.*\n)*?.*)jnp\.mean\(g, axis=0\)",
        r"\g<1>jnp.sum(g, axis=0)",
        ("tests/test_literal.py",),
    ),
    # ----- the verifier's rule -------------------------------------------------------------
    Mutation(
        "verifier:K = 2 (cries wolf)",
        "netcheck/verifier/tolerance.py",
        r"^(NOISE_MULTIPLE\s*=\s*)[0-9.e+-]+",
        r"\g<1>2.0",
        ("tests/test_verifier.py",),
    ),
    Mutation(
        "verifier:K = 80 (ten times blinder)",
        "netcheck/verifier/tolerance.py",
        r"^(NOISE_MULTIPLE\s*=\s*)[0-9.e+-]+",
        r"\g<1>80.0",
        ("tests/test_verifier.py",),
    ),
    Mutation(
        "verifier:T / 10",
        "netcheck/verifier/tolerance.py",
        r"^(TIE_MULTIPLE\s*=\s*)([0-9.e+-]+)",
        r"\g<1>\g<2> / 10",
        ("tests/test_verifier.py",),
    ),
    Mutation(
        "verifier:T x 10",
        "netcheck/verifier/tolerance.py",
        r"^(TIE_MULTIPLE\s*=\s*)([0-9.e+-]+)",
        r"\g<1>\g<2> * 10",
        ("tests/test_verifier.py",),
    ),
    Mutation(
        "verifier:the max norm dropped (only the 2-norm judges)",
        "netcheck/verifier/tolerance.py",
        r"return \(np\.asarray\(distance\) <= tol\) & \(np\.asarray\(max_distance\) <= max_tol\)",
        r"return np.asarray(distance) <= tol",
        ("tests/test_verifier.py",),
    ),
    Mutation(
        "verifier:a failing formula part ignored (verdict)",
        "netcheck/verifier/tolerance.py",
        r"if formula is not None and not formula\.ok:",
        r"if False:",
        ("tests/test_verifier.py",),
    ),
    Mutation(
        "verifier:a failing formula part ignored (vectorised sweep)",
        "netcheck/verifier/tolerance.py",
        r"judged_ok = judged_ok & part_passes\(",
        r"formula_ok = part_passes(",
        ("tests/test_verifier.py", "tests/test_suite.py"),
        keyword="vectorised or detection_power",
    ),
    Mutation(
        "verifier:the finite-difference witness never fails",
        "netcheck/verifier/witness.py",
        r"(def witness_agrees\(.*\n(?:.*\n)*?\s+return )(.+)$",
        r"\g<1>np.ones(np.shape(gap), bool)",
        ("tests/test_verifier.py", "tests/test_check_gradient.py"),
        keyword="reference_suspect",
    ),
    Mutation(
        "verifier:a disagreeing witness not reported by check_gradient",
        "netcheck/verifier/maps.py",
        r"if not witness\.agrees:",
        r"if False:",
        ("tests/test_check_gradient.py",),
        keyword="reference_suspect",
    ),
    Mutation(
        "verifier:the witness's tolerance without its error estimate",
        "netcheck/verifier/witness.py",
        r"(def witness_tolerance\(.*\n(?:.*\n)*?\s+return )"
        r"FD_MULTIPLE \* np\.asarray\(numbers\[\"error\"\]\) \+ ",
        r"\g<1>",
        ("tests/test_verifier.py", "tests/test_check_gradient.py"),
        keyword="correct_backprop_passes or reference_suspect",
    ),
    # ----- finite differences --------------------------------------------------------------
    Mutation(
        "finite_diff:central difference over h, not 2h",
        "netcheck/verifier/finite_diff.py",
        r"central = \(f_plus - f_minus\) / \(2 \* h\)",
        r"central = (f_plus - f_minus) / h",
        ("tests/test_finite_diff.py",),
    ),
    Mutation(
        "finite_diff:a kink where the second difference shrinks",
        "netcheck/verifier/finite_diff.py",
        r"kink = \(second\[\.\.\., -1\] > KINK_RATIO",
        r"kink = (second[..., -1] < KINK_RATIO",
        ("tests/test_finite_diff.py",),
    ),
    Mutation(
        "finite_diff:random directions not scaled to unit norm",
        "netcheck/verifier/finite_diff.py",
        r"(def random_direction\(.*\n(?:.*\n)*?.*)\[r / norm for r in raw\]",
        r"\g<1>raw",
        ("tests/test_finite_diff.py",),
    ),
    # ----- Hessian-vector product ----------------------------------------------------------
    Mutation(
        "hvp:R{δ^ℓ} without δ^{ℓ+1} V_{ℓ+1}",
        "netcheck/nn/hvp.py",
        r"tangent_above @ weights_above \+ delta_above @ v\[layer\]\[\"W\"\]",
        r"tangent_above @ weights_above",
        ("tests/test_hvp.py",),
        keyword="matches_autodiff or by_hand",
    ),
    Mutation(
        "hvp:step 5 without the product rule's (Δ^ℓ)ᵀ R{A^{ℓ-1}}",
        "netcheck/nn/hvp.py",
        r"layer_hvp\[\"W\"\] = layer_hvp\[\"W\"\] \+ delta\.T @ a_prev_tangent",
        r"layer_hvp['W'] = layer_hvp['W']",
        ("tests/test_hvp.py",),
        keyword="matches_autodiff or by_hand",
    ),
    # ----- trainer -------------------------------------------------------------------------
    Mutation(
        "trainer:the last partial minibatch skipped",
        "netcheck/training/trainer.py",
        r"if n_used > split:",
        r"if False:",
        ("tests/test_trainer.py",),
        keyword="float64_python_loop",
    ),
    Mutation(
        "trainer:binary accuracy thresholds ŷ at 0 (as if logits)",
        "netcheck/training/trainer.py",
        r"right = \(y_hat\[:, 0\] >= 0\.5\)",
        r"right = (y_hat[:, 0] >= 0)",
        ("tests/test_trainer.py",),
        keyword="accuracy",
    ),
    Mutation(
        "trainer:no divergence guard (NaN state kept)",
        "netcheck/training/trainer.py",
        r"jnp\.where\(finite, new, old\)",
        r"new",
        ("tests/test_trainer.py",),
        keyword="divergence or non_finite_optimizer",
    ),
    Mutation(
        "trainer:running loss not weighted by batch size",
        "netcheck/training/trainer.py",
        r"total \+ loss\.astype\(total\.dtype\) \* x_batch\.shape\[0\]",
        r"total + loss.astype(total.dtype) * batch_size",
        ("tests/test_trainer.py",),
        keyword="float64_python_loop",
    ),
    # ----- checkpoint ----------------------------------------------------------------------
    Mutation(
        "checkpoint:a non-finite state written",
        "netcheck/training/checkpoint.py",
        r"(bad = non_finite_leaves\(\{\"params\": state\.params.*\n\s+)if bad:",
        r"\g<1>if False:",
        ("tests/test_checkpoint.py",),
        keyword="non_finite",
    ),
    Mutation(
        "checkpoint:a non-finite state loaded",
        "netcheck/training/checkpoint.py",
        r"(bad = non_finite_leaves\(\{\"params\": params, .*\n\s+)if bad:",
        r"\g<1>if False:",
        ("tests/test_checkpoint.py",),
        keyword="non_finite",
    ),
    # ----- bench ---------------------------------------------------------------------------
    Mutation(
        "bench:manual / jax.grad ratio inverted",
        "netcheck/bench/step.py",
        r"row\[\"manual_over_autodiff\"\] = paired_ratio\(manual\[\"times_s\"\], "
        r"auto\[\"times_s\"\]\)",
        r'row["manual_over_autodiff"] = paired_ratio(auto["times_s"], manual["times_s"])',
        ("tests/test_bench.py",),
        keyword="bench_record",
    ),
    Mutation(
        "bench:a timed goal judged by its interval's upper end",
        "netcheck/bench/step.py",
        r"met = low <= target",
        r"met = high <= target",
        ("tests/test_bench.py",),
        keyword="goal",
    ),
    Mutation(
        "bench:the worst-shape goal judged where the evidence is weakest",
        "netcheck/bench/step.py",
        r"index = max\(range\(len\(rows\)\), key=lambda i: intervals\[i\]\[0\]\)",
        r"index = min(range(len(rows)), key=lambda i: intervals[i][0])",
        ("tests/test_bench.py",),
        keyword="goal",
    ),
    # ----- figures -------------------------------------------------------------------------
    Mutation(
        "figures:ratio panel inverted (jax.grad / manual)",
        "netcheck/report/figures.py",
        r"\"y\": \[r\[\"manual_over_autodiff\"\] for r in rows\]",
        r'"y": [1 / r["manual_over_autodiff"] for r in rows]',
        ("tests/test_figures.py",),
        keyword="ratio_panel",
    ),
    Mutation(
        "figures:heat map in natural log",
        "netcheck/report/figures.py",
        r"math\.log10\(ratio\)",
        r"math.log(ratio)",
        ("tests/test_figures.py",),
        keyword="heatmap",
    ),
    Mutation(
        "figures:kill matrix colours a killed-and-localised case as merely killed",
        "netcheck/report/figures.py",
        r"state = \"localised\" if case\[\"localised\"\] else \"killed\"",
        r'state = "killed"',
        ("tests/test_figures.py",),
        keyword="kill_matrix",
    ),
    # ----- report --------------------------------------------------------------------------
    Mutation(
        'report:the "jax.grad" training run uses the manual gradient',
        "netcheck/report/stages.py",
        r"(def training_comparison\(.*\n(?:.*\n)*?\s+)grad=grad,",
        r'\g<1>grad="manual",',
        ("tests/test_report.py",),
        keyword="training_uses",
    ),
    # ----- custom rules --------------------------------------------------------------------
    Mutation(
        "rules:a custom_vjp's candidate is its primal's autodiff",
        "netcheck/verifier/custom_rule.py",
        r"(class VjpMap\b.*\n(?:.*\n)*?.*def candidate\(.*\n\s+return self\._pullbacks\()"
        r"self\.call\.through\(rule\)",
        r"\g<1>self.call.primal",
        ("tests/test_rules.py",),
    ),
    Mutation(
        "rules:a custom_jvp's candidate is its primal's autodiff",
        "netcheck/verifier/custom_rule.py",
        r"(class JvpMap\b.*\n(?:.*\n)*?.*def candidate\(.*\n\s+return self\._tangents\()"
        r"self\.call\.through\(rule\)",
        r"\g<1>self.call.primal",
        ("tests/test_rules.py",),
    ),
    Mutation(
        "audit:a failing rule reported ok",
        "netcheck/verifier/audit.py",
        r"(def _audit_one\(.*\n(?:.*\n)*?\s+)if not verdict\.ok:",
        r"\g<1>if False:",
        ("tests/test_audit.py",),
    ),
    Mutation(
        "audit:skip by short name ignored",
        "netcheck/verifier/audit.py",
        r"return name == qualname or name == qualname\.rpartition\(\"\.\"\)\[2\]",
        r"return name == qualname",
        ("tests/test_audit.py",),
    ),
)


# ----- applying one mutation ------------------------------------------------------------


def apply(source: str, mutation: Mutation) -> tuple[str | None, int]:
    """``(mutated source, matches)``; the source is ``None`` when the mutation does not apply
    (no match, or more than one where exactly one is required)."""
    pattern = re.compile(mutation.pattern, re.MULTILINE)
    matches = len(pattern.findall(source))
    if matches == 0 or (mutation.once and matches != 1):
        return None, matches
    return pattern.sub(mutation.replacement, source), matches


def copy_repository(root: Path, destination: Path) -> Path:
    """Copy the working tree to ``destination/repo`` without the venv, git and caches."""
    target = destination / "repo"
    shutil.copytree(root, target, ignore=shutil.ignore_patterns(*COPY_IGNORE), symlinks=True)
    return target


def mutant_environment(copy: Path) -> dict[str, str]:
    """The environment the tests run in: ``netcheck`` imported from the copy, no bytecode
    written (a restored file is never mistaken for its mutant's cached bytecode), and
    Hypothesis derandomized (the conftest's ``CI`` profile) so outcomes are reproducible."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(copy), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["CI"] = "1"
    return env


def imported_from(copy: Path) -> Path:
    """Where ``import netcheck`` resolves in the copy's test environment."""
    out = subprocess.run(
        [sys.executable, "-c", "import netcheck; print(netcheck.__file__)"],
        cwd=copy,
        env=mutant_environment(copy),
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip()).resolve()


def pytest_command(mutation: Mutation) -> list[str]:
    """The pytest command line of one mutation (run from the copy's root)."""
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider"]
    command += ["-p", "no:xdist"] if _has_xdist() else []
    command += list(mutation.tests)
    if mutation.keyword:
        command += ["-k", mutation.keyword]
    return command


def _has_xdist() -> bool:
    try:
        import xdist  # noqa: F401
    except ImportError:
        return False
    return True


def run_tests(copy: Path, mutation: Mutation, timeout_s: float) -> tuple[str, str]:
    """Run the mutation's tests in the copy: ``(outcome, the first failing test or why)``.

    pytest's exit status 1 (tests failed) or 2 (collection failed: the mutant does not even
    import) kills; 0 survives; anything else (no tests collected, usage error) is an error.
    """
    try:
        done = subprocess.run(
            pytest_command(mutation),
            cwd=copy,
            env=mutant_environment(copy),
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        return TIMEOUT, f"over {timeout_s:g} s"
    output = done.stdout + done.stderr
    if done.returncode == 0:
        return SURVIVED, ""
    if done.returncode in (1, 2):
        return KILLED, _first_failure(output)
    return ERROR, f"pytest exit status {done.returncode}: {output.strip()[-300:]}"


def _first_failure(output: str) -> str:
    """The first ``FAILED``/``ERROR`` line of pytest's summary, without its prefix."""
    failures = _failures(output)
    if failures:
        return failures[0][:300]
    return output.strip().splitlines()[-1][:300] if output.strip() else ""


def _failures(output: str) -> list[str]:
    """Every ``FAILED``/``ERROR`` line of pytest's short summary (the ``-ra`` of the
    project's pytest options), without its prefix: ``node id - message``."""
    prefixes = ("FAILED ", "ERROR ")
    return [line.split(" ", 1)[1] for line in output.splitlines() if line.startswith(prefixes)]


def killing_test(row: dict[str, Any]) -> str | None:
    """The node id of the test that killed a mutation (``None`` for a collection error)."""
    node = row["detail"].split(" - ", 1)[0].strip()
    return node if row["outcome"] == KILLED and "::" in node else None


def confirm_kills(copy: Path, rows: list[dict[str, Any]], timeout_s: float) -> None:
    """Run every killing test once more on the unmutated copy, in one pytest: a kill whose
    test fails without the mutation too is no kill (the suite was red already), and its
    row becomes an error that says so. Rewrites ``rows`` in place."""
    nodes = sorted({node for row in rows if (node := killing_test(row))})
    if not nodes:
        return
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *nodes]
    command += ["-p", "no:xdist"] if _has_xdist() else []
    done = subprocess.run(
        command,
        cwd=copy,
        env=mutant_environment(copy),
        capture_output=True,
        text=True,
        timeout=timeout_s * 2,
    )
    red = {failure.split(" - ", 1)[0].strip() for failure in _failures(done.stdout)}
    for row in rows:
        if killing_test(row) in red:
            row["outcome"] = ERROR
            row["detail"] = f"its killing test fails without the mutation too: {row['detail']}"


def check_one(copy: Path, mutation: Mutation, timeout_s: float) -> dict[str, Any]:
    """Apply one mutation to the copy, run its tests, restore the file; its JSON row."""
    path = copy / mutation.file
    original = path.read_text(encoding="utf-8")
    mutated, matches = apply(original, mutation)
    row: dict[str, Any] = {
        "name": mutation.name,
        "file": mutation.file,
        "tests": list(mutation.tests),
        "keyword": mutation.keyword,
        "matches": matches,
    }
    clock = time.perf_counter()
    if mutated is None:
        outcome, detail = NOT_APPLIED, f"the pattern matched {matches} times"
    else:
        path.write_text(mutated, encoding="utf-8")
        try:
            outcome, detail = run_tests(copy, mutation, timeout_s)
        finally:
            path.write_text(original, encoding="utf-8")
    row.update(outcome=outcome, seconds=round(time.perf_counter() - clock, 1), detail=detail)
    if outcome == SURVIVED:
        row["explanation"] = mutation.equivalent or "NOT EXPLAINED: the suite misses this bug"
    return row


# ----- the whole check ------------------------------------------------------------------


def selected(catalogue: tuple[Mutation, ...], only: list[str]) -> tuple[Mutation, ...]:
    """The mutations whose name contains any of the words in ``only`` (all when empty)."""
    if not only:
        return catalogue
    return tuple(m for m in catalogue if any(word in m.name for word in only))


def summary(rows: list[dict[str, Any]]) -> dict[str, int]:
    """How many mutations ended in each outcome, and in all."""
    counts = {outcome: 0 for outcome in (KILLED, SURVIVED, NOT_APPLIED, TIMEOUT, ERROR)}
    for row in rows:
        counts[row["outcome"]] += 1
    return {**counts, "total": len(rows)}


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table, then the totals."""
    lines = [
        "| mutation | file | outcome | s | killed by / why |",
        "| --- | --- | --- | ---: | --- |",
    ]
    for row in rows:
        why = row.get("explanation") or row["detail"]
        why = why.replace("|", "\\|")
        lines.append(
            f"| {row['name']} | {row['file']} | {row['outcome']} | {row['seconds']:.0f} | {why} |"
        )
    counts = summary(rows)
    lines.append("")
    lines.append(
        f"{counts[KILLED]} of {counts['total']} killed; {counts[SURVIVED]} survived, "
        f"{counts[NOT_APPLIED]} no longer apply, {counts[TIMEOUT]} timed out, "
        f"{counts[ERROR]} errors"
    )
    return "\n".join(lines)


def run_check(
    catalogue: tuple[Mutation, ...], timeout_s: float, root: Path = ROOT
) -> list[dict[str, Any]]:
    """Every mutation of ``catalogue`` on one temporary copy of ``root``, one after another,
    then the kills confirmed on the unmutated copy (``confirm_kills``)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="netcheck-mutation-") as scratch:
        copy = copy_repository(root, Path(scratch))
        where = imported_from(copy)
        if copy.resolve() not in where.parents:
            raise RuntimeError(f"in the copy, netcheck is imported from {where}, not the copy")
        for index, mutation in enumerate(catalogue, start=1):
            row = check_one(copy, mutation, timeout_s)
            rows.append(row)
            print(
                f"[{index}/{len(catalogue)}] {row['outcome']:>17}  {row['seconds']:6.1f} s  "
                f"{mutation.name}",
                file=sys.stderr,
                flush=True,
            )
        confirm_kills(copy, rows, timeout_s)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write")
    parser.add_argument("--only", action="append", default=[], help="a word of the names")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="per mutation")
    parser.add_argument("--list", action="store_true", help="list the catalogue and stop")
    args = parser.parse_args(argv)
    catalogue = selected(CATALOGUE, args.only)
    if args.list:
        for mutation in catalogue:
            source = (ROOT / mutation.file).read_text(encoding="utf-8")
            matches = apply(source, mutation)[1]
            print(f"{matches:3d} match(es)  {mutation.file:32s} {mutation.name}")
        return 0
    clock, load_at_start = time.perf_counter(), list(os.getloadavg())
    rows = run_check(catalogue, args.timeout)
    record = {
        "command": " ".join(["python", "scripts/mutation_check.py", *(argv or sys.argv[1:])]),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "load_average": {"start": load_at_start, "end": list(os.getloadavg())},
        "python": sys.version.split()[0],
        "wall_s": round(time.perf_counter() - clock, 1),
        "summary": summary(rows),
        "mutations": rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(table(rows))
    print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
