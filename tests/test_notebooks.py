"""Tests of notebooks/: each notebook runs top to bottom and its key numbers hold.

Each notebook's source is a jupytext percent file, ``notebooks/NN_name.py``, paired with the
committed ``NN_name.ipynb`` that ``notebooks/build.py`` executes and writes. The tests check
that the committed notebook has its source's cells and carries their outputs, then run the
source again in a fresh Jupyter kernel (driven by nbclient) and append one cell of their
own that prints, as JSON, the notebook variables they need (a record that never enters the
committed notebook). Those numbers are checked against a computation of the test's own:
finite differences in float64 numpy, or a rule the number must satisfy.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

import jupytext
import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
KERNEL_NAME = "netcheck-tests"
MAX_NOTEBOOK_BYTES = 300_000


def _load_builder() -> Any:
    spec = importlib.util.spec_from_file_location("notebooks_build", NOTEBOOKS / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BUILDER = _load_builder()
NAMES = [source.stem for source in BUILDER.SOURCES]


@pytest.fixture(scope="session")
def kernel_spec_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a kernel spec that runs *this* interpreter.

    A "python3" kernel spec elsewhere on the machine could point at another Python; a
    spec of our own, first on ``JUPYTER_PATH``, runs the checkout under test.
    """
    root = tmp_path_factory.mktemp("jupyter")
    spec_dir = root / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "netcheck tests",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return root


@pytest.fixture
def kernel_path(kernel_spec_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put the test kernel spec first on ``JUPYTER_PATH`` for one test."""
    previous = os.environ.get("JUPYTER_PATH")
    monkeypatch.setenv(
        "JUPYTER_PATH", os.pathsep.join(filter(None, [str(kernel_spec_root), previous]))
    )
    return kernel_spec_root


RECORD_CELL = """\
import json as _json
import jax as _jax
import numpy as _np
_plain = lambda value: _jax.tree.map(lambda leaf: _np.asarray(leaf).tolist(), value)
print(_json.dumps({_name: _plain(eval(_expression)) for _name, _expression in %r.items()}))
"""
"""Run after the notebook: evaluates each expression in its namespace and prints the values."""


def run_and_record(name: str, workdir: Path, expressions: dict[str, str]) -> dict[str, Any]:
    """Execute ``notebooks/<name>.py`` in a fresh kernel, then evaluate ``expressions`` there.

    Args:
        name: the notebook, e.g. ``"01_backprop_by_hand"``.
        workdir: the kernel's working directory.
        expressions: ``{key: Python expression over the notebook's variables}``.

    Returns:
        ``{key: value}``, arrays as nested lists (a value is a pytree of array-likes).
    """
    notebook = jupytext.read(NOTEBOOKS / f"{name}.py")
    notebook.cells.append(nbformat.v4.new_code_cell(RECORD_CELL % (expressions,)))
    NotebookClient(
        notebook,
        timeout=BUILDER.CELL_TIMEOUT_S,
        kernel_name=KERNEL_NAME,
        resources={"metadata": {"path": str(workdir)}},
    ).execute()
    outputs = notebook.cells[-1].outputs
    return json.loads("".join(o.get("text", "") for o in outputs if o.output_type == "stream"))


# ----- the committed files -----------------------------------------------------------------


def test_every_notebook_has_its_text_source() -> None:
    assert NAMES, "no notebooks/NN_name.py found"
    assert sorted(path.stem for path in NOTEBOOKS.glob("*.ipynb")) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_is_its_source_built(name: str) -> None:
    committed = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    source = jupytext.read(NOTEBOOKS / f"{name}.py")
    BUILDER.set_ids_from_text(source)
    assert committed.metadata["jupytext"]["formats"] == "ipynb,py:percent"
    assert [(c.cell_type, c.source, c.id) for c in committed.cells] == [
        (c.cell_type, c.source, c.id) for c in source.cells
    ], f"notebooks/{name}.ipynb is stale: run `python notebooks/build.py notebooks/{name}.py`"


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_carries_outputs_without_errors(name: str) -> None:
    path = NOTEBOOKS / f"{name}.ipynb"
    assert path.stat().st_size < MAX_NOTEBOOK_BYTES
    notebook = nbformat.read(path, as_version=4)
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is not None for cell in code_cells), "not executed"
    errors = [o for c in code_cells for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    assert code_cells[-1].outputs, "the summary cell printed nothing"


ALLOWED_IMPORTS = {"netcheck", "numpy", "matplotlib", "jax", "optax", "json", "time"}
"""What a notebook may import: netcheck's public API, the plotting and JAX stack, stdlib."""


@pytest.mark.parametrize("name", NAMES)
def test_notebook_imports_only_the_public_api(name: str) -> None:
    for cell in jupytext.read(NOTEBOOKS / f"{name}.py").cells:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for module in modules:
                parts = module.split(".")
                assert parts[0] in ALLOWED_IMPORTS, f"{name} imports {module}"
                assert not any(part.startswith("_") for part in parts), f"{name}: {module}"


# ----- executing the notebooks -------------------------------------------------------------


def _mean_squared_error_loss(weights: list[np.ndarray], x: np.ndarray, y: np.ndarray) -> float:
    """The slides' network, sigmoid everywhere, no bias: mean of ½(y - ŷ)² over rows."""
    a = x
    for w in weights:
        a = 1 / (1 + np.exp(-(a @ w.T)))
    return float(np.mean(0.5 * np.sum((y - a) ** 2, axis=1)))


def _finite_difference_grad(loss, weights: list[np.ndarray], step: float = 1e-6):
    """Central differences of ``loss(weights)`` with respect to every weight, in float64."""
    grads = []
    for index, w in enumerate(weights):
        grad = np.zeros_like(w)
        for position in np.ndindex(w.shape):
            moved = [v.copy() for v in weights]
            moved[index][position] += step
            up = loss(moved)
            moved[index][position] -= 2 * step
            grad[position] = (up - loss(moved)) / (2 * step)
        grads.append(grad)
    return grads


def _slide_sign_grad(weights: list[np.ndarray], x: np.ndarray, y: np.ndarray):
    """The slide's steps (1)-(5) with δ^L = G(L)(y - ŷ), batch mean, in numpy."""
    a = [x]
    for w in weights:
        a.append(1 / (1 + np.exp(-(a[-1] @ w.T))))
    deltas = [a[-1] * (1 - a[-1]) * (y - a[-1])]
    for layer in range(len(weights) - 1, 0, -1):
        deltas.insert(0, a[layer] * (1 - a[layer]) * (deltas[0] @ weights[layer]))
    return [d.T @ a_prev / x.shape[0] for d, a_prev in zip(deltas, a[:-1], strict=True)]


RECORD_01 = {
    "sizes": "net.sizes",
    "weights": "[W1, W2, W3]",
    "X": "X",
    "Y": "Y",
    "manual_grad": '[g["W"] for g in batch_grad]',
    "manual_vs_autodiff_max_error": 'errors["net.manual_grad"]',
    "literal_vs_autodiff_max_error": 'errors["nc.literal_grad"]',
    "perceptron": '{"W": w, "b": b, "x": x_lr, "y": y_lr, "grad": grad[0]}',
    "verify_ok": "verdict.ok",
    "verify_float32_ok": "wide_verdict.ok",
    "sign_bug": """{
        "ok": slide_verdict.ok,
        "first_bad_layer": slide_verdict.first_bad_layer,
        "cosines": {row.name: row.cosine for row in slide_verdict.rows},
    }""",
    "loss_after_one_step": "steps",
    "mutants": "caught",
    "hvp": """{
        "direction": direction,
        "manual_hvp": [h["W"] for h in hvp_netcheck],
        "by_hand": [h["W"] for h in hvp_numpy],
        "verify_ok": hvp_verdict.ok,
        "verify_rows": [row.name for row in hvp_verdict.rows],
    }""",
}


def test_notebook_01_backprop_by_hand(kernel_path: Path, tmp_path: Path) -> None:
    results = run_and_record("01_backprop_by_hand", tmp_path, RECORD_01)
    weights = [np.asarray(w, dtype=np.float64) for w in results["weights"]]
    x, y = np.asarray(results["X"]), np.asarray(results["Y"])
    assert tuple(results["sizes"]) == (2, 3, 3, 1)
    assert [w.shape for w in weights] == [(3, 2), (3, 3), (1, 3)]

    # The notebook's manual gradient against finite differences computed here: the FD
    # error is O(step²) + O(eps/step) ≈ 1e-10 for these O(1) weights.
    expected = _finite_difference_grad(lambda ws: _mean_squared_error_loss(ws, x, y), weights)
    for layer, (got, want) in enumerate(zip(results["manual_grad"], expected, strict=True), 1):
        np.testing.assert_allclose(np.asarray(got), want, atol=1e-9, err_msg=f"W_{layer}")
    # Round-off agreement in float64: gradients are O(1e-2), eps is 2.2e-16.
    assert results["manual_vs_autodiff_max_error"] < 1e-15
    assert results["literal_vs_autodiff_max_error"] < 1e-15
    assert results["verify_ok"] is True
    assert results["verify_float32_ok"] is True

    # The perceptron (logistic regression): ∂L/∂w = mean of (ŷ - y) x, ∂L/∂b = mean of ŷ - y.
    w, b, x_lr, y_lr = (np.asarray(results["perceptron"][key]) for key in ("W", "b", "x", "y"))
    grad = {name: np.asarray(value) for name, value in results["perceptron"]["grad"].items()}
    residual = 1 / (1 + np.exp(-(x_lr @ w.T + b))) - y_lr  # ŷ - y, (3, 1)
    np.testing.assert_allclose(
        grad["W"], (residual * x_lr).mean(axis=0)[None, :], rtol=0, atol=1e-15
    )
    np.testing.assert_allclose(grad["b"], residual.mean(axis=0), rtol=0, atol=1e-15)

    # The slide's sign: δ^L = G(L)(y - ŷ) is -δ^L, so the slide's gradient is exactly the
    # negative of the finite-difference gradient. Its cosines with the truth, per W_ℓ, and
    # the loss after one step of W ← W - ∇, recomputed here.
    sign_bug = results["sign_bug"]
    assert sign_bug["ok"] is False
    assert sign_bug["first_bad_layer"] == len(weights) == 3
    slide = _slide_sign_grad(weights, x, y)
    for layer, (got, want) in enumerate(zip(slide, expected, strict=True), 1):
        cosine = np.vdot(got, want) / (np.linalg.norm(got) * np.linalg.norm(want))
        assert sign_bug["cosines"][f"W_{layer}"] == pytest.approx(cosine, abs=1e-9)
        assert cosine == pytest.approx(-1.0, abs=1e-9)
    assert all(c == pytest.approx(-1.0, abs=1e-12) for c in sign_bug["cosines"].values())
    assert set(sign_bug["cosines"]) == {f"{q}{n}" for q in ("δ^", "W_") for n in (1, 2, 3)}
    steps = results["loss_after_one_step"]
    loss = _mean_squared_error_loss(weights, x, y)
    stepped = [[w - g for w, g in zip(weights, grads, strict=True)] for grads in (expected, slide)]
    descended, climbed = (_mean_squared_error_loss(ws, x, y) for ws in stepped)
    assert list(steps.values()) == pytest.approx([loss, descended, climbed], abs=1e-10)
    assert descended < loss < climbed
    # Every planted bug that applies is caught and localised to its own layer.
    assert "slide_sign" in results["mutants"]
    for name, row in results["mutants"].items():
        assert row["caught"] is True, name
        assert row["verdict names layer"] == row["bug in layer"], name

    # H v, the derivative of the gradient along v: central differences of this test's own
    # numpy gradient (the slide's, negated), error O(h²) ≈ 1e-10 for these O(1) weights.
    hvp = results["hvp"]
    direction = [np.asarray(d) for d in hvp["direction"]]
    h = 1e-5
    up, down = (
        _slide_sign_grad([w + s * h * d for w, d in zip(weights, direction, strict=True)], x, y)
        for s in (1, -1)
    )
    expected_hvp = [(d - u) / (2 * h) for u, d in zip(up, down, strict=True)]
    for name in ("manual_hvp", "by_hand"):
        for layer, (got, want) in enumerate(zip(hvp[name], expected_hvp, strict=True), 1):
            np.testing.assert_allclose(
                np.asarray(got), want, atol=1e-9, err_msg=f"{name} W_{layer}"
            )
    assert hvp["verify_ok"] is True
    assert {f"H·v{p} W_{n}" for p in (1, 2) for n in (1, 2, 3)} <= set(hvp["verify_rows"])


def _numpy_accuracy(params: list[dict[str, list]], x: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of a tanh network with a sigmoid output, thresholded at 0.5, in numpy."""
    a = x.astype(np.float64)
    for layer, weights in enumerate(params, start=1):
        z = a @ np.asarray(weights["W"]).T + np.asarray(weights["b"])
        a = 1 / (1 + np.exp(-z)) if layer == len(params) else np.tanh(z)
    return float(np.mean((a[:, 0] >= 0.5) == (y[:, 0] >= 0.5)))


RECORD_02 = {
    "moons": """{
        "options": moons_options,
        "test_accuracy": history["validation_accuracy"][-1],
        "params": params,
    }""",
    "breast_cancer": """{
        "options": cancer_options,
        "test_accuracy": cancer_history["validation_accuracy"][-1],
        "params": cancer_params,
    }""",
    "manual_train_loss": "manual_curve",
    "autodiff_train_loss": "autodiff_curve",
    "initial_loss": "initial_loss",
    "speed_examples_per_s": "speed",
    "speed_ratio": "ratio",
    "speed_final_loss": "final_losses",
}


def test_notebook_02_training(kernel_path: Path, tmp_path: Path) -> None:
    from netcheck import datasets

    results = run_and_record("02_training", tmp_path, RECORD_02)

    # Held-out accuracies, recomputed here in numpy from the notebook's trained parameters,
    # on the same held-out split rebuilt from the same seeds.
    moons = results["moons"]
    _, moons_test = datasets.standardize(
        *datasets.train_test_split(
            datasets.load("moons", **moons["options"]), test_fraction=0.25, seed=0
        )
    )
    cancer = results["breast_cancer"]
    _, cancer_test = datasets.standardize(
        *datasets.train_test_split(datasets.load("breast_cancer"), **cancer["options"])
    )
    for record, test_set, floor in ((moons, moons_test, 0.95), (cancer, cancer_test, 0.93)):
        recomputed = _numpy_accuracy(record["params"], test_set.x, test_set.y)
        # float32 vs float64 may flip a point lying on the boundary, no more.
        assert abs(recomputed - record["test_accuracy"]) <= 1 / test_set.n_samples
        assert recomputed >= floor

    # Manual and autodiff training from the same start and shuffles: the same trajectory
    # up to float32 round-off accumulated over 30 epochs (measured: ~2e-6).
    manual = np.asarray(results["manual_train_loss"])
    autodiff = np.asarray(results["autodiff_train_loss"])
    assert manual.shape == autodiff.shape == (30,)
    np.testing.assert_allclose(manual, autodiff, rtol=1e-4)
    assert manual[-1] < 0.25 * results["initial_loss"]

    # The speed comparison trained both loops for real: both losses fell, to similar values
    # (different shuffles, so not equal).
    speed, final = results["speed_examples_per_s"], results["speed_final_loss"]
    assert set(speed) == set(final) == {"netcheck trainer", "typical JAX loop"}
    assert all(np.isfinite(rate) and rate > 0 for rate in speed.values())
    assert np.isfinite(results["speed_ratio"]) and results["speed_ratio"] > 0
    assert all(loss < 0.75 * results["initial_loss"] for loss in final.values())
    assert final["netcheck trainer"] == pytest.approx(final["typical JAX loop"], rel=0.2)


def _classifier_loss(params: dict, x, y):
    """Notebook 03's model with the plain layer norm (ε = 1e-5), written again here."""
    import jax
    import jax.numpy as jnp

    # Explicit [None, :]: the tests run with rank promotion off.
    h = x @ params["dense1"]["W"].T + params["dense1"]["b"][None, :]
    mean = h.mean(axis=-1, keepdims=True)
    variance = ((h - mean) ** 2).mean(axis=-1, keepdims=True)
    gain, bias = params["norm"]["gain"][None, :], params["norm"]["bias"][None, :]
    h = gain * (h - mean) / jnp.sqrt(variance + 1e-5) + bias
    logits = jnp.tanh(h) @ params["dense2"]["W"].T + params["dense2"]["b"][None, :]
    return -jnp.mean(jnp.sum(y * jax.nn.log_softmax(logits), axis=-1))


LEAVES = "{row.name: {'ok': row.ok, 'relative_error': row.relative_error} for row in %s.rows}"
RECORD_03 = {
    "right": LEAVES % "right_verdict",
    "right_ok": "right_verdict.ok",
    "slipped": LEAVES % "slipped_verdict",
    "slipped_ok": "slipped_verdict.ok",
    "op": LEAVES % "op_verdict",
    "check_grads_passes": "fixed_tolerance",
    "point": '{"params": params, "x": x, "y": y}',
    "slipped_grad": "slipped_grad(params, x, y)",
}


def test_notebook_03_your_own_backward_pass(kernel_path: Path, tmp_path: Path, x64) -> None:
    import jax
    import jax.numpy as jnp

    results = run_and_record("03_your_own_backward_pass", tmp_path, RECORD_03)
    point = results["point"]

    def as_f64(tree):  # JSON nested lists -> float64 arrays, keeping the dicts
        is_array = lambda value: isinstance(value, list)  # noqa: E731
        return jax.tree.map(lambda leaf: jnp.asarray(leaf, jnp.float64), tree, is_leaf=is_array)

    params, x, y = as_f64(point["params"]), as_f64(point["x"]), as_f64(point["y"])
    assert x.shape == (32, 8) and y.shape == (32, 3)

    # The truth: float64 jax.grad of the plain model, computed here. The slipped backward
    # pass's error is in dense1 only (upstream of the layer norm), far above float32
    # round-off there (relative ~1e-4) and at round-off everywhere else.
    truth = jax.grad(_classifier_loss)(params, x, y)
    slipped = as_f64(results["slipped_grad"])
    paths_and_truth = jax.tree_util.tree_leaves_with_path(truth)
    wrong = {"['dense1']['W']", "['dense1']['b']"}
    for (path, t), c in zip(paths_and_truth, jax.tree.leaves(slipped), strict=True):
        name = jax.tree_util.keystr(path)
        relative = float(jnp.linalg.norm(c - t) / jnp.linalg.norm(t))
        reported = results["slipped"][name]
        if name in wrong:
            assert relative > 1e-5, name
            assert reported["ok"] is False, name
            assert reported["relative_error"] == pytest.approx(relative, rel=0.01), name
        else:
            assert relative < 1e-6, name
            assert reported["ok"] is True, name
    assert set(results["slipped"]) == {jax.tree_util.keystr(p) for p, _ in paths_and_truth}
    assert results["slipped_ok"] is False

    # The right custom VJP passes with float32 round-off errors on every leaf.
    assert results["right_ok"] is True
    assert all(r["ok"] and r["relative_error"] < 1e-6 for r in results["right"].values())
    # The operation alone: only its input cotangent fails.
    assert {name for name, r in results["op"].items() if not r["ok"]} == {"['h']"}
    # The notebook's claim about a fixed tolerance: check_grads passes the slip.
    assert results["check_grads_passes"] == {"right": True, "forgot ε": True}


def _smoothed_model_loss(params: dict, x, labels, smoothing: float = 0.1):
    """Notebook 04's model with every rule's primal (rounding, layer norm ε = 1e-5,
    label-smoothed cross-entropy), written again here; ``[None, :]`` as rank promotion is off."""
    import jax
    import jax.numpy as jnp

    h = (jnp.round(16 * x) / 16) @ params["w1"] + params["b1"][None, :]
    mean = h.mean(axis=-1, keepdims=True)
    variance = ((h - mean) ** 2).mean(axis=-1, keepdims=True)
    gain, bias = params["gain"][None, :], params["bias"][None, :]
    h = jnp.tanh(gain * (h - mean) / jnp.sqrt(variance + 1e-5) + bias)
    logits = h @ params["w2"] + params["b2"][None, :]
    y = (1 - smoothing) * labels + smoothing / labels.shape[-1]
    return jnp.mean(-jnp.sum(y * jax.nn.log_softmax(logits), axis=-1)), logits


RECORD_04 = {
    "check_grads_passes": "check_grads_passes",
    "unskipped": "{r.name: {'status': r.status, 'note': r.note} for r in unskipped.rules}",
    "skipped": "{r.name: [r.status, r.values_recovered, r.count] for r in report.rules}",
    "failing_rows": "[row.name for row in slipped.verdict.rows if not row.ok]",
    "fixed_ok": "fixed.ok",
    "delta": "delta",
    "point": '{"params": params, "x": x, "labels": labels}',
    "slipped_gradient": "slipped_gradient",
}


def test_notebook_04_auditing_a_model(kernel_path: Path, tmp_path: Path, x64) -> None:
    import jax
    import jax.numpy as jnp

    results = run_and_record("04_auditing_a_model", tmp_path, RECORD_04)
    point = jax.tree.map(
        lambda leaf: jnp.asarray(leaf, jnp.float64),
        results["point"],
        is_leaf=lambda value: isinstance(value, list),
    )
    params, x, labels = point["params"], point["x"], point["labels"]
    classes = labels.shape[-1]
    assert x.shape == (64, 8) and classes == 10

    # The slip, recomputed here: the backward pass's labels are off by δ = α/(K-1) - α/K on
    # every class, so ∂L/∂z is off by g δ (K softmax(z) - 1) per row, g = 1/batch; on
    # ∂L/∂b2 that is the batch mean of δ (K p - 1). The other leaves: a relative error of a
    # few parts in a thousand (check_grads' float32 tolerance lets it through).
    delta = 0.1 / (classes - 1) - 0.1 / classes
    assert results["delta"] == pytest.approx(delta)
    truth = jax.grad(lambda p: _smoothed_model_loss(p, x, labels)[0])(params)
    logits = _smoothed_model_loss(params, x, labels)[1]
    expected_b2_error = jnp.mean(delta * (classes * jax.nn.softmax(logits) - 1), axis=0)
    slipped = jax.tree.map(
        lambda leaf: jnp.asarray(leaf, jnp.float64),
        results["slipped_gradient"],
        is_leaf=lambda value: isinstance(value, list),
    )
    np.testing.assert_allclose(slipped["b2"] - truth["b2"], expected_b2_error, atol=1e-6)
    for name, leaf in truth.items():
        relative = float(jnp.linalg.norm(slipped[name] - leaf) / jnp.linalg.norm(leaf))
        assert 1e-3 < relative < 2e-2, name
    assert results["check_grads_passes"] is True

    # The audit names the slipped rule, and only its logits' cotangent; the quantiser is a
    # surrogate: unskipped it fails with the hint to skip it.
    name = "make_cross_entropy.<locals>.smoothed_cross_entropy"
    assert results["skipped"] == {
        name: ["failed", True, 1],
        "layer_norm": ["ok", True, 1],
        "quantise": ["skipped", True, 1],
    }
    assert results["failing_rows"] == ["args[0]"]
    unskipped = results["unskipped"]
    assert unskipped["quantise"]["status"] == "failed"
    assert "skip=('quantise',)" in unskipped["quantise"]["note"]
    assert "most likely a slip" in unskipped[name]["note"]
    assert results["fixed_ok"] is True
