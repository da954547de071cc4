"""Tests for netcheck.datasets: generators' geometry, loaders' round trips and every refusal.

Every number asserted comes from an independent reference: the documented geometry recomputed
here in float64 numpy, scikit-learn's own copy of the bundled data, or the rows written to a
file in ``tmp_path``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netcheck import datasets as nd

GENERATORS = {
    "xor": (nd.make_xor, {}),
    "moons": (nd.make_moons, {}),
    "circles": (nd.make_circles, {}),
    "spirals2": (nd.make_spirals, {"n_classes": 2}),
    "spirals3": (nd.make_spirals, {"n_classes": 3}),
    "blobs2": (nd.make_blobs, {"n_classes": 2}),
    "blobs4": (nd.make_blobs, {"n_classes": 4, "n_features": 3}),
}


# ----- generators: shapes, dtypes, determinism, balance -----------------------------------


@pytest.mark.parametrize("case", list(GENERATORS), ids=str)
def test_generator_shapes_dtypes_and_targets(case):
    make, options = GENERATORS[case]
    ds = make(101, seed=3, **options)
    k = options.get("n_classes", 2)
    d = options.get("n_features", 2)
    assert isinstance(ds, nd.Dataset)
    assert ds.x.shape == (101, d) and ds.x.dtype == np.float32
    assert ds.n_classes == k and ds.n_samples == 101 and ds.n_features == d
    assert ds.y.dtype == np.float32
    if k == 2:
        assert ds.y.shape == (101, 1)
        assert set(np.unique(ds.y)) <= {0.0, 1.0}
        np.testing.assert_array_equal(ds.labels, ds.y[:, 0].astype(np.int64))
    else:
        assert ds.y.shape == (101, k)
        np.testing.assert_array_equal(ds.y.sum(axis=1), 1.0)
        np.testing.assert_array_equal(ds.y[np.arange(101), ds.labels], 1.0)
    assert np.all(np.isfinite(ds.x))


@pytest.mark.parametrize("case", list(GENERATORS), ids=str)
def test_generator_is_deterministic_in_its_seed(case):
    make, options = GENERATORS[case]
    first, again, other = (
        make(60, seed=7, **options),
        make(60, seed=7, **options),
        make(60, seed=8, **options),
    )
    np.testing.assert_array_equal(first.x, again.x)
    np.testing.assert_array_equal(first.y, again.y)
    assert not np.array_equal(first.x, other.x)


@pytest.mark.parametrize("case", list(GENERATORS), ids=str)
@pytest.mark.parametrize("n", [7, 100, 103])
def test_generator_classes_are_balanced(case, n):
    make, options = GENERATORS[case]
    ds = make(n, seed=0, **options)
    counts = np.bincount(ds.labels, minlength=ds.n_classes)
    assert counts.sum() == n
    # Documented: the class sizes differ by at most one.
    assert counts.max() - counts.min() <= 1


def test_generators_shuffle_the_rows():
    # Built class by class; a shuffled order has many label changes, a sorted one has k-1.
    ds = nd.make_moons(200, seed=0)
    assert np.count_nonzero(np.diff(ds.labels)) > 50


# ----- generators: geometry, recomputed independently -------------------------------------


def test_xor_without_noise_is_the_truth_table():
    ds = nd.make_xor(4, noise=0.0, seed=0)
    rows = {(tuple(map(float, x)), float(y[0])) for x, y in zip(ds.x, ds.y, strict=True)}
    # XOR of the bits b = (x + 1) / 2: (0,0)->0, (0,1)->1, (1,1)->0, (1,0)->1.
    assert rows == {((-1.0, -1.0), 0.0), ((-1.0, 1.0), 1.0), ((1.0, 1.0), 0.0), ((1.0, -1.0), 1.0)}


def test_xor_label_is_the_sign_product_and_clusters_have_the_stated_spread():
    noise = 0.15
    ds = nd.make_xor(2000, noise=noise, seed=1)
    x = ds.x.astype(np.float64)
    np.testing.assert_array_equal(ds.labels, (x[:, 0] * x[:, 1] < 0).astype(np.int64))
    corner = np.sign(x)
    offsets = x - corner
    # Each coordinate's offset from its corner is N(0, noise²): sample std within 10%.
    assert np.all(np.abs(offsets.std(axis=0) / noise - 1) < 0.1)
    assert np.all(np.abs(offsets.mean(axis=0)) < 5 * noise / np.sqrt(len(x)))
    assert {tuple(c) for c in corner} == {(-1, -1), (-1, 1), (1, 1), (1, -1)}


def _distance_to_curve(points: np.ndarray, curve: np.ndarray) -> np.ndarray:
    """Distance from each point to a densely sampled curve ``(m, 2)``."""
    return np.min(np.linalg.norm(points[:, None, :] - curve[None, :, :], axis=2), axis=1)


def _half_circle(centre: tuple[float, float], upper: bool, m: int = 4000) -> np.ndarray:
    t = np.linspace(0.0, np.pi, m)
    sign = 1.0 if upper else -1.0
    return np.stack([centre[0] + sign * np.cos(t), centre[1] + sign * np.sin(t)], axis=1)


@pytest.mark.parametrize("noise", [0.0, 0.05])
def test_moons_lie_on_their_half_circles_within_the_noise(noise):
    ds = nd.make_moons(400, noise=noise, seed=2)
    x = ds.x.astype(np.float64)
    upper = _half_circle((0.0, 0.0), upper=True)  # class 0: (cos t, sin t)
    lower = _half_circle((1.0, 0.5), upper=False)  # class 1: (1 - cos t, 0.5 - sin t)
    own = np.where(ds.labels == 0, _distance_to_curve(x, upper), _distance_to_curve(x, lower))
    # The noise moves a point by |N(0, σ² I_2)|, which exceeds 5σ with probability e^-12.5;
    # the dense curve adds at most half a sampling step (π / 4000 / 2).
    assert np.all(own <= 5 * noise + 1e-3)
    if noise == 0.0:
        radius = np.where(
            ds.labels == 0, np.linalg.norm(x, axis=1), np.linalg.norm(x - [1.0, 0.5], axis=1)
        )
        np.testing.assert_allclose(radius, 1.0, atol=1e-6)
    else:
        # Root-mean-square distance of 2-D Gaussian noise to a smooth curve ≈ σ (the normal
        # component); it stays well below the 2-D noise's own RMS σ√2.
        rms = np.sqrt(np.mean(own**2))
        assert 0.7 * noise < rms < 1.2 * noise


@pytest.mark.parametrize("noise", [0.0, 0.03])
def test_circles_have_the_stated_radii(noise):
    ds = nd.make_circles(400, noise=noise, factor=0.3, seed=4)
    radius = np.linalg.norm(ds.x.astype(np.float64), axis=1)
    expected = np.where(ds.labels == 0, 1.0, 0.3)
    assert np.all(np.abs(radius - expected) <= 5 * noise + 1e-6)


def test_spirals_without_noise_follow_their_arms():
    k, turns = 3, 1.5
    ds = nd.make_spirals(300, n_classes=k, noise=0.0, turns=turns, seed=5)
    x = ds.x.astype(np.float64)
    r = np.linalg.norm(x, axis=1)
    theta = np.arctan2(x[:, 1], x[:, 0])
    arm = 2 * np.pi * (turns * r + ds.labels / k)
    gap = np.mod(theta - arm, 2 * np.pi)
    np.testing.assert_allclose(np.minimum(gap, 2 * np.pi - gap), 0.0, atol=1e-5)
    assert np.all(r <= 1.0 + 1e-6)


def test_noisy_spirals_stay_near_their_own_arm():
    k, turns, noise = 2, 1.0, 0.02
    ds = nd.make_spirals(400, n_classes=k, noise=noise, turns=turns, seed=6)
    r = np.linspace(0.0, 1.0, 4000)
    for c in range(k):
        theta = 2 * np.pi * (turns * r + c / k)
        curve = r[:, None] * np.stack([np.cos(theta), np.sin(theta)], axis=1)
        points = ds.x[ds.labels == c].astype(np.float64)
        assert np.all(_distance_to_curve(points, curve) <= 5 * noise + 2e-3)


def test_blobs_are_centred_on_a_circle_with_the_stated_spread():
    k, d, noise, radius = 4, 3, 0.5, 6.0
    ds = nd.make_blobs(4000, n_classes=k, n_features=d, noise=noise, radius=radius, seed=7)
    x = ds.x.astype(np.float64)
    for c in range(k):
        members = x[ds.labels == c]
        centre = np.zeros(d)
        centre[:2] = radius * np.cos(2 * np.pi * c / k), radius * np.sin(2 * np.pi * c / k)
        assert np.all(np.abs(members.mean(axis=0) - centre) < 5 * noise / np.sqrt(len(members)))
        assert np.all(np.abs(members.std(axis=0) / noise - 1) < 0.12)


# ----- generator and load() errors --------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "pattern"),
    [
        (lambda: nd.make_moons(0), ValueError, "n_samples must be at least 1"),
        (lambda: nd.make_moons(1), ValueError, "n_samples must be at least n_classes=2"),
        (lambda: nd.make_moons(10.5), TypeError, "n_samples must be an int"),
        (lambda: nd.make_moons(True), TypeError, "n_samples must be an int"),
        (lambda: nd.make_moons(10, noise=-0.1), ValueError, "noise must be at least 0"),
        (lambda: nd.make_moons(10, noise=float("nan")), ValueError, "noise must be"),
        (lambda: nd.make_moons(10, noise="big"), TypeError, "noise must be a number"),
        (lambda: nd.make_moons(10, seed=-1), ValueError, "seed must be at least 0"),
        (lambda: nd.make_xor(10, seed=1.0), TypeError, "seed must be an int"),
        (lambda: nd.make_circles(10, factor=1.0), ValueError, "factor must be"),
        (lambda: nd.make_circles(10, factor=0.0), ValueError, "factor must be"),
        (lambda: nd.make_spirals(10, n_classes=1), ValueError, "n_classes must be at least 2"),
        (lambda: nd.make_spirals(10, turns=0), ValueError, "turns must be greater than 0"),
        (lambda: nd.make_spirals(2, n_classes=3), ValueError, "n_samples must be at least"),
        (lambda: nd.make_blobs(10, n_features=1), ValueError, "n_features must be at least 2"),
        (lambda: nd.make_blobs(10, radius=-1.0), ValueError, "radius must be at least 0"),
        (lambda: nd.load("mnist"), ValueError, "unknown dataset 'mnist'; known: xor, moons"),
        (lambda: nd.load(3), TypeError, "dataset name must be a str"),
        (lambda: nd.load("moons", n_classes=3), TypeError, "'n_classes' for dataset 'moons'"),
        (lambda: nd.load("digits", noise=0.1), TypeError, "it takes: none"),
    ],
)
def test_generator_and_load_errors(call, error, pattern):
    with pytest.raises(error, match=re.escape(pattern)):
        call()


@pytest.mark.parametrize("name", ["xor", "moons", "circles", "spirals", "blobs"])
def test_load_by_name_matches_the_generator(name):
    make = {
        "xor": nd.make_xor,
        "moons": nd.make_moons,
        "circles": nd.make_circles,
        "spirals": nd.make_spirals,
        "blobs": nd.make_blobs,
    }[name]
    default = nd.load(name, seed=2)
    np.testing.assert_array_equal(default.x, make(seed=2).x)
    sized = nd.load(name, n_samples=50, seed=2, noise=0.3)
    direct = make(50, seed=2, noise=0.3)
    np.testing.assert_array_equal(sized.x, direct.x)
    np.testing.assert_array_equal(sized.y, direct.y)
    assert sized.name == name


def test_load_passes_n_classes_and_lists_options():
    ds = nd.load("spirals", n_samples=30, n_classes=3)
    assert ds.n_classes == 3 and ds.y.shape == (30, 3)
    assert nd.dataset_options("blobs") == {
        "n_classes": 3,
        "n_features": 2,
        "noise": 1.0,
        "radius": 4.0,
    }
    assert set(nd.DATASETS) == {
        "xor",
        "moons",
        "circles",
        "spirals",
        "blobs",
        "breast_cancer",
        "digits",
    }


# ----- scikit-learn's bundled datasets ----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "shape", "k"), [("breast_cancer", (569, 30), 2), ("digits", (1797, 64), 10)]
)
def test_bundled_datasets_match_scikit_learn(name, shape, k):
    sk = pytest.importorskip("sklearn.datasets")
    reference = getattr(sk, f"load_{name}")()
    ds = nd.load(name)
    assert ds.x.shape == shape and ds.x.dtype == np.float32 and ds.n_classes == k
    np.testing.assert_array_equal(ds.x, reference.data.astype(np.float32))
    np.testing.assert_array_equal(ds.labels, reference.target)
    assert ds.y.shape == ((shape[0], 1) if k == 2 else (shape[0], k))


def test_bundled_subset_is_stratified_rows_of_the_full_set():
    pytest.importorskip("sklearn.datasets")
    full = nd.load_digits()
    subset = nd.load("digits", n_samples=200, seed=1)
    assert subset.x.shape == (200, 64)
    full_rows = {row.tobytes(): label for row, label in zip(full.x, full.labels, strict=True)}
    for row, label in zip(subset.x, subset.labels, strict=True):
        assert full_rows[row.tobytes()] == label
    expected = 200 * np.bincount(full.labels) / full.n_samples
    assert np.all(np.abs(np.bincount(subset.labels, minlength=10) - expected) < 1)
    with pytest.raises(ValueError, match="n_samples must be at most 1797 for 'digits'"):
        nd.load_digits(5000)


def test_bundled_datasets_without_scikit_learn_say_how_to_install(monkeypatch):
    # A None entry in sys.modules makes `import sklearn.datasets` raise ImportError.
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    for loader in (nd.load_breast_cancer, nd.load_digits):
        with pytest.raises(ImportError, match="pip install scikit-learn"):
            loader()


# ----- targets and from_arrays ------------------------------------------------------------


def test_to_one_hot_matches_a_loop():
    labels = np.array([2, 0, 1, 2, 3])
    expected = np.zeros((5, 4), dtype=np.float32)
    for row, label in enumerate(labels):
        expected[row, label] = 1.0
    out = nd.to_one_hot(labels, 4)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(nd.to_one_hot(labels.astype(np.float64), 4), expected)


@pytest.mark.parametrize(
    ("labels", "k", "error", "pattern"),
    [
        ([0, 4], 4, ValueError, "class labels 0..3, got 4 at row 1"),
        ([-1, 0], 4, ValueError, "class labels 0..3, got -1 at row 0"),
        ([0.5, 1], 4, ValueError, "integer class labels"),
        ([[0, 1]], 4, ValueError, "labels must be 1-D"),
        (["a"], 4, TypeError, "labels must be numeric"),
        ([0, 1], 0, ValueError, "n_classes must be at least 1"),
        ([0, 1], 2.0, TypeError, "n_classes must be an int"),
        ([0.0, float("nan")], 2, ValueError, "non-finite"),
    ],
)
def test_to_one_hot_errors(labels, k, error, pattern):
    with pytest.raises(error, match=re.escape(pattern)):
        nd.to_one_hot(labels, k)


def test_from_arrays_turns_labels_into_loss_ready_targets():
    x = np.arange(12, dtype=np.int32).reshape(6, 2)
    binary = nd.from_arrays(x, [0, 1, 1, 0, 1, 0])
    assert binary.x.dtype == np.float32 and binary.n_classes == 2
    np.testing.assert_array_equal(binary.y, [[0], [1], [1], [0], [1], [0]])
    multi = nd.from_arrays(x, np.array([0, 2, 1, 2, 0, 1], dtype=np.uint8))
    np.testing.assert_array_equal(multi.y, np.eye(3, dtype=np.float32)[[0, 2, 1, 2, 0, 1]])
    absent = nd.from_arrays(x, [0, 1, 1, 0, 1, 0], n_classes=4)  # classes 2, 3 never occur
    assert absent.y.shape == (6, 4)
    soft = nd.from_arrays(x, [[0.25], [1], [0], [0.5], [0.75], [1]])
    np.testing.assert_array_equal(soft.labels, [0, 1, 0, 1, 1, 1])
    probabilities = np.array([[0.2, 0.8], [1, 0], [0, 1], [0.5, 0.5], [0.9, 0.1], [0.3, 0.7]])
    rows = nd.from_arrays(x, probabilities, name="p")
    assert rows.n_classes == 2 and rows.name == "p"
    np.testing.assert_array_equal(rows.labels, [1, 0, 1, 0, 0, 1])


@pytest.mark.parametrize(
    ("x", "y", "kwargs", "error", "pattern"),
    [
        (np.ones(3), [0, 1, 0], {}, ValueError, "x must be 2-D (n_samples, n_features), got"),
        (np.ones((0, 2)), np.ones(0), {}, ValueError, "x is empty"),
        (np.ones((3, 0)), [0, 1, 0], {}, ValueError, "x has no features"),
        (np.ones((3, 2)), [0, 1], {}, ValueError, "same number of rows, got x (3, 2) and y (2,)"),
        (np.ones((3, 2)), 1, {}, ValueError, "same number of rows"),
        (np.array([["a", "b"]]), [0], {}, TypeError, "x must be numeric"),
        (np.ones((2, 2)), ["a", "b"], {}, TypeError, "y must be numeric"),
        (np.ones((2, 2)), [0 + 1j, 1], {}, TypeError, "y must be numeric"),
        ([[1, 2], [3]], [0, 1], {}, ValueError, "x cannot be read as an array"),
        ("x", [0], {}, TypeError, "x must be a numeric array"),
        ([[1.0, np.nan], [0, 0]], [0, 1], {}, ValueError, "x has 1 non-finite value(s)"),
        ([[1.0, 2], [0, np.inf]], [0, 1], {}, ValueError, "at row 1, column 1"),
        ([[1e300, 2], [0, 0]], [0, 1], {}, ValueError, "as float32, overflow"),
        (np.ones((2, 2)), [0.0, np.nan], {}, ValueError, "y has 1 non-finite"),
        (np.ones((2, 2)), [0, -1], {}, ValueError, "y must be class labels 0..1, got -1 at row 1"),
        (np.ones((2, 2)), [0, 3], {"n_classes": 3}, ValueError, "0..2, got 3 at row 1"),
        (np.ones((2, 2)), [0.5, 1.5], {}, ValueError, "binary targets in [0, 1], got 1.5"),
        (np.ones((2, 2)), [[0.5], [-0.5]], {}, ValueError, "binary targets in [0, 1], got -0.5"),
        (np.ones((2, 2)), [[1, 0], [1, 1]], {}, ValueError, "summing to 1, row 1 sums to 2"),
        (np.ones((2, 2)), [[1.5, -0.5], [1, 0]], {}, ValueError, "got -0.5 at row 0, column 1"),
        (np.ones((2, 2)), [[1, 0], [0, 1]], {"n_classes": 3}, ValueError, "2 columns but"),
        (np.ones((2, 2)), [[1], [0]], {"n_classes": 3}, ValueError, "one column (binary"),
        (np.ones((2, 2)), [0.5, 1], {"n_classes": 3}, ValueError, "non-integer values"),
        (np.ones((2, 2)), np.ones((2, 1, 1)), {}, ValueError, "got shape (2, 1, 1)"),
        (np.ones((2, 2)), [0, 1], {"n_classes": 1}, ValueError, "n_classes must be at least 2"),
        (np.ones((2, 2)), [0, 1], {"name": 5}, TypeError, "name must be a str"),
    ],
)
def test_from_arrays_errors(x, y, kwargs, error, pattern):
    with pytest.raises(error, match=re.escape(pattern)):
        nd.from_arrays(x, y, **kwargs)


@settings(max_examples=30, deadline=None)
@given(
    labels=st.lists(st.integers(0, 5), min_size=1, max_size=40),
    extra=st.integers(0, 2),
)
def test_labels_round_trip_through_targets(labels, extra):
    k = max(max(labels) + 1, 2) + extra
    x = np.arange(len(labels), dtype=np.float64)[:, None]
    ds = nd.from_arrays(x, labels, n_classes=k)
    np.testing.assert_array_equal(ds.labels, labels)
    assert ds.n_classes == k
    if k > 2:
        np.testing.assert_array_equal(ds.y, nd.to_one_hot(labels, k))


# ----- files ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["moons", "spirals3"])
def test_npz_round_trip(tmp_path, case):
    make, options = GENERATORS[case]
    ds = make(50, seed=1, **options)
    path = nd.save_npz(ds, tmp_path / "data.npz")
    back = nd.load_npz(path)
    np.testing.assert_array_equal(back.x, ds.x)
    np.testing.assert_array_equal(back.y, ds.y)
    assert back.n_classes == ds.n_classes and back.name == "data"
    assert [p.name for p in tmp_path.iterdir()] == ["data.npz"]  # no temporary left behind


def test_npz_with_own_keys_and_integer_labels(tmp_path):
    x = np.random.default_rng(0).normal(size=(20, 3))
    labels = np.arange(20) % 3
    np.savez(tmp_path / "own.npz", features=x, classes=labels)
    ds = nd.load_npz(tmp_path / "own.npz", x_key="features", y_key="classes")
    np.testing.assert_array_equal(ds.x, x.astype(np.float32))
    np.testing.assert_array_equal(ds.labels, labels)
    assert ds.y.shape == (20, 3)


def test_save_npz_into_a_missing_folder_writes_nothing(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        nd.save_npz(nd.make_xor(8), tmp_path / "nowhere" / "data.npz")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(TypeError, match=re.escape("ds must be a netcheck.datasets.Dataset")):
        nd.save_npz((np.ones((2, 2)), np.ones((2, 1))), tmp_path / "data.npz")


def _write_npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def _write_npy(path: Path, array: np.ndarray) -> Path:
    np.save(path, array)
    return path


def _write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("make_file", "kwargs", "error", "pattern"),
    [
        (lambda d: d / "absent.npz", {}, FileNotFoundError, "absent.npz: no such file"),
        (lambda d: d, {}, IsADirectoryError, "not a regular file"),
        (
            lambda d: _write_text(d / "text.npz", "x,y\n"),
            {},
            ValueError,
            "text.npz: not an .npz archive",
        ),
        (
            lambda d: _write_npy(d / "single.npy", np.ones(3)),
            {},
            ValueError,
            "single.npy: not an .npz archive",
        ),
        (
            lambda d: _write_npz(d / "keys.npz", x=np.ones((2, 2)), z=np.ones(2)),
            {},
            ValueError,
            "keys.npz: no array 'y' in the archive; it holds: x, z",
        ),
        (
            lambda d: _write_npz(d / "obj.npz", x=np.array([{}, {}], dtype=object), y=[0, 1]),
            {},
            ValueError,
            "obj.npz: cannot read array 'x'",
        ),
        (
            lambda d: _write_npz(d / "flat.npz", x=np.ones(4), y=np.zeros(4)),
            {},
            ValueError,
            "flat.npz: array 'x' must be 2-D",
        ),
        (
            lambda d: _write_npz(d / "str.npz", x=np.array([["a"]]), y=[0]),
            {},
            TypeError,
            "str.npz: array 'x' must be numeric",
        ),
        (
            lambda d: _write_npz(d / "nan.npz", x=np.array([[np.nan], [0]]), y=[0, 1]),
            {},
            ValueError,
            "nan.npz: array 'x' has 1 non-finite value(s) (NaN or Inf); the first is nan at row 0",
        ),
        (
            lambda d: _write_npz(d / "rows.npz", x=np.ones((3, 1)), y=[0, 1]),
            {},
            ValueError,
            "rows.npz: array 'x' and array 'y' must have the same number of rows",
        ),
        (
            lambda d: _write_npz(d / "bce.npz", x=np.ones((2, 1)), y=[[0.5], [2.0]]),
            {},
            ValueError,
            "bce.npz: array 'y' must be integer class labels or binary targets in [0, 1]",
        ),
        (
            lambda d: _write_npz(d / "hot.npz", x=np.ones((2, 1)), y=[[1, 0, 0], [0, 1, 1]]),
            {},
            ValueError,
            "hot.npz: array 'y' must hold one-hot rows summing to 1, row 1 sums to 2",
        ),
        (
            lambda d: _write_npz(d / "k.npz", x=np.ones((2, 1)), y=[0, 5]),
            {"n_classes": 3},
            ValueError,
            "k.npz: array 'y' must be class labels 0..2, got 5 at row 1",
        ),
        (lambda d: d / "any.npz", {"x_key": 0}, TypeError, "x_key must be a str"),
        (lambda d: 42, {}, TypeError, "path must be a str or os.PathLike"),
    ],
)
def test_load_npz_errors(tmp_path, make_file, kwargs, error, pattern):
    with pytest.raises(error, match=re.escape(pattern)):
        nd.load_npz(make_file(tmp_path), **kwargs)


def test_load_npz_corrupt_archive(tmp_path):
    path = _write_npz(tmp_path / "cut.npz", x=np.ones((50, 4)), y=np.zeros(50))
    data = bytearray(path.read_bytes())
    data[100:400] = bytes(300)  # inside the first member's stored bytes: its CRC fails
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=re.escape(f"{path}: corrupt .npz archive: Bad CRC")):
        nd.load_npz(path)


def test_csv_round_trip_with_and_without_header(tmp_path):
    ds = nd.make_blobs(30, n_classes=3, n_features=2, seed=0)
    rows = [
        f"{float(a)!r},{float(b)!r},{label}" for (a, b), label in zip(ds.x, ds.labels, strict=True)
    ]
    (tmp_path / "plain.csv").write_text("\n".join(rows) + "\n\n")  # trailing blank line
    (tmp_path / "named.csv").write_text("f1,f2,species\n" + "\n".join(rows))
    for name in ("plain", "named"):
        back = nd.load_csv(tmp_path / f"{name}.csv")
        np.testing.assert_array_equal(back.x, ds.x)
        np.testing.assert_array_equal(back.y, ds.y)
        assert back.name == name and back.n_classes == 3
    by_name = nd.load_csv(tmp_path / "named.csv", target_column="species")
    np.testing.assert_array_equal(by_name.y, ds.y)


def test_csv_target_first_column_semicolons_and_binary_targets(tmp_path):
    (tmp_path / "first.csv").write_text("1;0.5;2\n0;1.5;-3\n0.5;2.5;4\n")
    ds = nd.load_csv(tmp_path / "first.csv", target_column=0, delimiter=";")
    np.testing.assert_array_equal(ds.x, [[0.5, 2], [1.5, -3], [2.5, 4]])
    np.testing.assert_array_equal(ds.y, [[1.0], [0.0], [0.5]])
    forced = nd.load_csv(tmp_path / "first.csv", delimiter=";", header=True, target_column=0)
    assert forced.n_samples == 2  # the first line taken as a header


@pytest.mark.parametrize(
    ("text", "kwargs", "error", "pattern"),
    [
        ("", {}, ValueError, "empty file, no rows"),
        ("\n\n", {}, ValueError, "empty file, no rows"),
        ("a,b,c\n", {}, ValueError, "only a header, no rows"),
        ("1\n2\n", {}, ValueError, "needs at least 2 columns"),
        ("1,2,0\n3,4\n", {}, ValueError, "line 2 has 2 fields, expected 3"),
        ("a,b,y\n1,2,0\n\n3,x,1\n", {}, ValueError, "line 4, column 1: 'x' is not a number"),
        ("1,2,0\n3,nan,1\n", {}, ValueError, "line 2, column 1: 'nan' is not finite"),
        ("1,2,0\n3,inf,1\n", {}, ValueError, "line 2, column 1: 'inf' is not finite"),
        ("1,2,0\n3,4,2.5\n", {}, ValueError, "target column 2 must be integer class labels"),
        ("1,2,0\n3,4,-1\n", {}, ValueError, "target column 2 must be class labels 0..1, got -1"),
        ("1,2,0\n3,4,1\n", {"target_column": 3}, ValueError, "target_column 3 is out of range"),
        ("1,2,0\n3,4,1\n", {"target_column": -4}, ValueError, "out of range for 3 columns"),
        ("1,2,0\n", {"target_column": "y"}, ValueError, "is a name, but the file has no header"),
        ("a,b,y\n1,2,0\n", {"target_column": "z"}, ValueError, "no column named 'z'; columns"),
    ],
)
def test_load_csv_errors(tmp_path, text, kwargs, error, pattern):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(error, match=re.escape(pattern)) as raised:
        nd.load_csv(path, **kwargs)
    if error is ValueError:
        assert str(raised.value).startswith(str(path)), "the message names the file"


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"target_column": 1.0}, TypeError, "target_column must be an int or a column name"),
        ({"delimiter": ",,"}, ValueError, "delimiter must be one character, got ',,'"),
        ({"header": "yes"}, TypeError, "header must be True, False or None"),
        ({"n_classes": 1}, ValueError, "n_classes must be at least 2"),
    ],
)
def test_load_csv_argument_errors(tmp_path, kwargs, error, pattern):
    path = _write_text(tmp_path / "good.csv", "1,2,0\n3,4,1\n")
    with pytest.raises(error, match=re.escape(pattern)):
        nd.load_csv(path, **kwargs)


def test_load_csv_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape("missing.csv: no such file")):
        nd.load_csv(tmp_path / "missing.csv")
    with pytest.raises(IsADirectoryError, match="not a regular file"):
        nd.load_csv(tmp_path)
    (tmp_path / "latin.csv").write_bytes("1,2,0\n\xe9,1,1\n".encode("latin-1"))
    with pytest.raises(ValueError, match=re.escape("latin.csv: not a UTF-8 text file")):
        nd.load_csv(tmp_path / "latin.csv")


# ----- split and standardize --------------------------------------------------------------


def _indexed(n: int, k: int) -> nd.Dataset:
    """Row i has feature i (so rows can be traced) and label i mod k."""
    x = np.stack([np.arange(n), np.arange(n) % 5], axis=1).astype(np.float64)
    return nd.from_arrays(x, np.arange(n) % k, n_classes=k)


@pytest.mark.parametrize("stratify", [True, False])
def test_split_partitions_the_rows(stratify):
    ds = _indexed(103, 3)
    train, test = nd.train_test_split(ds, 0.25, seed=1, stratify=stratify)
    assert test.n_samples == round(0.25 * 103) and train.n_samples == 103 - test.n_samples
    ids = np.concatenate([train.x[:, 0], test.x[:, 0]]).astype(np.int64)
    np.testing.assert_array_equal(np.sort(ids), np.arange(103))
    for part in (train, test):
        np.testing.assert_array_equal(part.labels, part.x[:, 0].astype(np.int64) % 3)
        assert part.n_classes == 3 and part.name == ds.name
    again = nd.train_test_split(ds, 0.25, seed=1, stratify=stratify)
    np.testing.assert_array_equal(again[1].x, test.x)
    other = nd.train_test_split(ds, 0.25, seed=2, stratify=stratify)
    assert not np.array_equal(other[1].x, test.x)


@settings(max_examples=30, deadline=None)
@given(
    counts=st.lists(st.integers(1, 30), min_size=2, max_size=5),
    fraction=st.floats(0.05, 0.95),
    seed=st.integers(0, 2**31),
)
def test_stratified_split_keeps_class_shares(counts, fraction, seed):
    labels = np.repeat(np.arange(len(counts)), counts)
    n = len(labels)
    ds = nd.from_arrays(np.arange(n, dtype=np.float64)[:, None], labels, n_classes=len(counts))
    train, test = nd.train_test_split(ds, fraction, seed=seed)
    n_test = min(max(round(fraction * n), 1), n - 1)
    assert test.n_samples == n_test and train.n_samples == n - n_test
    # Each class's test count is its exact share rounded up or down.
    share = n_test * np.array(counts) / n
    got = np.bincount(test.labels, minlength=len(counts))
    assert np.all((got >= np.floor(share)) & (got <= np.ceil(share)))
    # Largest remainder: a class rounded up never has a smaller remainder than one rounded down.
    remainder = share - np.floor(share)
    up = got > np.floor(share)
    down = ~up & (remainder > 0)
    if up.any() and down.any():
        assert remainder[up].min() >= remainder[down].max()


@pytest.mark.parametrize(
    ("args", "error", "pattern"),
    [
        ((0.0,), ValueError, "test_fraction must be strictly between 0 and 1"),
        ((1.0,), ValueError, "test_fraction must be strictly between 0 and 1"),
        ((1.5,), ValueError, "test_fraction must be in [0.0, 1.0], got 1.5"),
        ((True,), TypeError, "test_fraction must be a number"),
        ((0.2, -1), ValueError, "seed must be at least 0"),
    ],
)
def test_split_errors(args, error, pattern):
    with pytest.raises(error, match=re.escape(pattern)):
        nd.train_test_split(_indexed(10, 2), *args)


def test_split_refuses_non_datasets_and_single_rows():
    with pytest.raises(
        TypeError, match=re.escape("ds must be a netcheck.datasets.Dataset, got tuple")
    ):
        nd.train_test_split((np.ones((4, 2)), np.ones((4, 1))))
    with pytest.raises(ValueError, match="at least 2 examples to split, got 1"):
        nd.train_test_split(nd.from_arrays([[1.0]], [1]))
    with pytest.raises(TypeError, match="stratify must be True or False"):
        nd.train_test_split(_indexed(10, 2), stratify="yes")


def test_standardize_uses_the_training_statistics():
    rng = np.random.default_rng(0)
    x_train = rng.normal(loc=[3.0, -2.0, 5.0], scale=[10.0, 0.1, 1.0], size=(80, 3))
    x_train[:, 2] = 5.0  # a constant feature: zero standard deviation
    x_test = rng.normal(size=(20, 3))
    train = nd.from_arrays(x_train, np.arange(80) % 2)
    test = nd.from_arrays(x_test, np.arange(20) % 2)
    scaled_train, scaled_test = nd.standardize(train, test)
    reference = x_train.astype(np.float32).astype(np.float64)
    mean, std = reference.mean(axis=0), reference.std(axis=0)
    std[2] = 1.0  # the documented guard: a constant feature is only centred
    np.testing.assert_allclose(scaled_train.x, (reference - mean) / std, rtol=1e-6, atol=1e-6)
    expected_test = (x_test.astype(np.float32).astype(np.float64) - mean) / std
    np.testing.assert_allclose(scaled_test.x, expected_test, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(scaled_train.x[:, :2].mean(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(scaled_train.x[:, :2].std(axis=0), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(scaled_train.x[:, 2], 0.0)
    assert scaled_train.x.dtype == np.float32 and scaled_test.x.dtype == np.float32
    np.testing.assert_array_equal(scaled_test.y, test.y)


def test_standardize_errors():
    two = nd.make_blobs(10, n_features=2)
    three = nd.make_blobs(10, n_features=3)
    with pytest.raises(ValueError, match="same features, got 2 and 3"):
        nd.standardize(two, three)
    with pytest.raises(TypeError, match=re.escape("test must be a netcheck.datasets.Dataset")):
        nd.standardize(two, two.x)
