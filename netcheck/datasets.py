"""Datasets for the trainer: the lecture's binary problems and more, as plain numpy arrays.

Every dataset is a ``Dataset`` whose targets are ready for the loss::

    ds = load("moons", n_samples=500, noise=0.1, seed=0)
    ds.x          # (n, d) float32 features
    ds.y          # (n, 1) float32 in {0, 1} when binary; (n, k) one-hot float32 otherwise
    ds.labels     # (n,) int64 class labels 0..k-1
    train, test = standardize(*train_test_split(ds, test_fraction=0.2, seed=0))

Generated in-process from a seed (numpy only, deterministic): ``make_xor`` (the
classic problem a single perceptron cannot solve), ``make_moons``,
``make_circles``, ``make_spirals`` and ``make_blobs``; classes are balanced
(class ``c`` of ``k`` gets ``n // k + (c < n % k)`` examples) and rows are shuffled.
Real datasets: ``load_breast_cancer`` and ``load_digits``, read from the files that
scikit-learn ships inside its package (no download; ``pip install scikit-learn``).
Files: ``load_npz``, ``load_csv`` and ``save_npz``. Every entry point refuses
bad input with one ``ValueError``/``TypeError`` that names the argument (or the file) and
the problem.
"""

from __future__ import annotations

import csv
import inspect
import io
import math
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from netcheck._io import write_bytes_atomic

DATASETS = ("xor", "moons", "circles", "spirals", "blobs", "breast_cancer", "digits")
"""Every dataset ``load`` knows, by name."""

_ONE_HOT_ATOL = 1e-5  # float32 probability rows may miss 1 by a few ulps per class


class Dataset(NamedTuple):
    """Features and loss-ready targets of a classification problem.

    Attributes:
        x: ``(n, d)`` float32 features.
        y: ``(n, 1)`` float32 targets in ``[0, 1]`` for a binary problem (sigmoid output with
            binary cross-entropy or squared error); ``(n, k)`` float32 rows summing to 1
            (one-hot) for ``k`` classes (softmax output with softmax cross-entropy).
        name: where the data came from (a dataset name or a file's stem).
        n_classes: ``k``; 2 for a binary problem.
    """

    x: np.ndarray
    y: np.ndarray
    name: str
    n_classes: int

    @property
    def labels(self) -> np.ndarray:
        """Integer class labels, ``(n,)`` int64: ``y ≥ 0.5`` when binary, else ``argmax y``."""
        if self.y.shape[1] == 1:
            return (self.y[:, 0] >= 0.5).astype(np.int64)
        return np.argmax(self.y, axis=1).astype(np.int64)

    @property
    def n_samples(self) -> int:
        """``n``, the number of examples."""
        return int(self.x.shape[0])

    @property
    def n_features(self) -> int:
        """``d``, the number of features (the network's ``n_0``)."""
        return int(self.x.shape[1])


# ----- targets ----------------------------------------------------------------------------


def to_one_hot(labels: Any, n_classes: int) -> np.ndarray:
    """One-hot rows from integer class labels.

    Args:
        labels: ``(n,)`` integer class labels in ``0..n_classes-1`` (integer-valued floats
            are accepted).
        n_classes: ``k ≥ 1``, the number of classes.

    Returns:
        ``(n, k)`` float32 with ``out[i, labels[i]] = 1`` and zeros elsewhere.
    """
    k = _checked_int(n_classes, "n_classes", minimum=1)
    values = _numeric_array(labels, "labels")
    if values.ndim != 1:
        raise ValueError(f"labels must be 1-D (n,), got shape {values.shape}")
    classes = _integer_labels(values, "labels")
    if classes is None:
        raise ValueError("labels must be integer class labels, got non-integer values")
    _check_label_range(classes, k, "labels")
    return np.eye(k, dtype=np.float32)[classes]


def _targets(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Loss-ready targets: ``(n, 1)`` in {0, 1} for two classes, ``(n, k)`` one-hot otherwise."""
    if n_classes == 2:
        return labels.astype(np.float32)[:, None]
    return np.eye(n_classes, dtype=np.float32)[labels]


def _integer_labels(values: np.ndarray, what: str) -> np.ndarray | None:
    """``values`` as int64 class labels if every value is a whole number, else ``None``."""
    if values.dtype.kind in "biu":
        return values.astype(np.int64)
    _check_finite(values, what)
    if np.all(values == np.round(values)):
        return values.astype(np.int64)
    return None


def _check_label_range(labels: np.ndarray, n_classes: int, what: str) -> None:
    bad = np.flatnonzero((labels < 0) | (labels >= n_classes))
    if bad.size:
        row = int(bad[0])
        raise ValueError(
            f"{what} must be class labels 0..{n_classes - 1}, got {labels[row]} at row {row}"
        )


def _targets_from_values(y: np.ndarray, n_classes: int | None, what: str) -> tuple[np.ndarray, int]:
    """Validate user targets and turn them into loss-ready ``(targets, n_classes)``.

    Accepted: ``(n,)`` integer labels 0..k-1 (two classes become ``(n, 1)`` binary targets,
    more become one-hot); ``(n,)`` or ``(n, 1)`` binary targets in ``[0, 1]``; ``(n, k)``
    rows of non-negative values summing to 1 (one-hot or class probabilities).
    """
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
        if n_classes not in (None, 2):
            raise ValueError(f"{what} has one column (binary targets) but n_classes={n_classes}")
        return _binary_targets(y, what), 2
    if y.ndim == 1:
        labels = _integer_labels(y, what)
        if labels is None:
            if n_classes not in (None, 2):
                raise ValueError(
                    f"{what} holds non-integer values, which only binary targets in [0, 1] "
                    f"may do, but n_classes={n_classes}"
                )
            return _binary_targets(y, what), 2
        k = n_classes if n_classes is not None else max(int(labels.max()) + 1, 2)
        _check_label_range(labels, k, what)
        return _targets(labels, k), k
    if y.ndim == 2:
        return _probability_rows(y, n_classes, what), y.shape[1]
    raise ValueError(f"{what} must be 1-D labels (n,) or 2-D targets (n, k), got shape {y.shape}")


def _binary_targets(y: np.ndarray, what: str) -> np.ndarray:
    values = y.astype(np.float64)
    _check_finite(values, what)
    bad = np.flatnonzero((values < 0) | (values > 1))
    if bad.size:
        row = int(bad[0])
        raise ValueError(
            f"{what} must be integer class labels or binary targets in [0, 1], "
            f"got {values[row]:g} at row {row}"
        )
    return values.astype(np.float32)[:, None]


def _probability_rows(y: np.ndarray, n_classes: int | None, what: str) -> np.ndarray:
    if n_classes is not None and n_classes != y.shape[1]:
        raise ValueError(f"{what} has {y.shape[1]} columns but n_classes={n_classes}")
    values = y.astype(np.float64)
    _check_finite(values, what)
    negative = np.argwhere(values < 0)
    if negative.size:
        row, column = (int(i) for i in negative[0])
        raise ValueError(
            f"{what} must hold one-hot rows, got {values[row, column]:g} "
            f"at row {row}, column {column}"
        )
    sums = values.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1) > _ONE_HOT_ATOL)
    if bad.size:
        row = int(bad[0])
        raise ValueError(
            f"{what} must hold one-hot rows summing to 1, row {row} sums to {sums[row]:g}"
        )
    return values.astype(np.float32)


# ----- validation of arrays ---------------------------------------------------------------


def from_arrays(x: Any, y: Any, *, name: str = "arrays", n_classes: int | None = None) -> Dataset:
    """A validated ``Dataset`` from in-memory arrays.

    Args:
        x: ``(n, d)`` numeric features, finite, and representable in float32.
        y: ``(n,)`` integer class labels 0..k-1, ``(n,)``/``(n, 1)`` binary targets in
            ``[0, 1]``, or ``(n, k)`` one-hot rows summing to 1.
        name: the dataset's name.
        n_classes: ``k``, if the labels alone do not show it (a class absent from the data);
            by default the largest label + 1 (at least 2).

    Returns:
        The dataset, with float32 ``x`` and loss-ready ``y`` (see ``Dataset``).
    """
    return _validated(x, y, name=name, n_classes=n_classes, x_what="x", y_what="y")


def _validated(
    x: Any, y: Any, *, name: str, n_classes: int | None, x_what: str, y_what: str
) -> Dataset:
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if n_classes is not None:
        n_classes = _checked_int(n_classes, "n_classes", minimum=2)
    features = _numeric_array(x, x_what)
    targets = _numeric_array(y, y_what)
    if features.ndim != 2:
        raise ValueError(
            f"{x_what} must be 2-D (n_samples, n_features), got shape {features.shape}"
            + ("; reshape a single feature with x.reshape(-1, 1)" if features.ndim == 1 else "")
        )
    n, d = features.shape
    if n == 0:
        raise ValueError(f"{x_what} is empty: no examples")
    if d == 0:
        raise ValueError(f"{x_what} has no features (shape {features.shape})")
    if targets.ndim == 0 or targets.shape[0] != n:
        raise ValueError(
            f"{x_what} and {y_what} must have the same number of rows, "
            f"got {x_what} {features.shape} and {y_what} {targets.shape}"
        )
    _check_finite(features, x_what)
    with np.errstate(over="ignore"):  # overflow is reported just below, as an error
        as_float32 = features.astype(np.float32)
    # Finite float64 values above float32's range would become Inf on the way to the device.
    _check_finite(as_float32, f"{x_what} (as float32, overflow)")
    y_ready, k = _targets_from_values(targets, n_classes, y_what)
    return Dataset(as_float32, y_ready, name, k)


def _numeric_array(value: Any, what: str) -> np.ndarray:
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{what} must be a numeric array, got {type(value).__name__}")
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as error:  # ragged nested lists
        raise ValueError(f"{what} cannot be read as an array: {error}") from None
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{what} must be numeric (bool, int or float), got dtype {array.dtype}")
    return array


def _check_finite(values: np.ndarray, what: str) -> None:
    if values.dtype.kind != "f":
        return
    bad = np.argwhere(~np.isfinite(values))
    if bad.size:
        where = ", ".join(
            f"{axis} {int(i)}"
            for axis, i in zip(("row", "column")[: values.ndim], bad[0], strict=True)
        )
        raise ValueError(
            f"{what} has {len(bad)} non-finite value(s) (NaN or Inf); "
            f"the first is {values[tuple(bad[0])]} at {where}"
        )


def _checked_int(value: Any, what: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{what} must be at least {minimum}, got {value}")
    return int(value)


def _checked_float(value: Any, what: str, *, low: float, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{what} must be a number, got {value!r}")
    if not (math.isfinite(value) and low <= value <= high):
        bounds = f"at least {low}" if high == math.inf else f"in [{low}, {high}]"
        raise ValueError(f"{what} must be {bounds}, got {value}")
    return float(value)


def _check_dataset(ds: Any, what: str) -> Dataset:
    if not isinstance(ds, Dataset):
        raise TypeError(f"{what} must be a netcheck.datasets.Dataset, got {type(ds).__name__}")
    return ds


# ----- generated datasets -----------------------------------------------------------------


def _class_sizes(n_samples: int, n_classes: int) -> np.ndarray:
    """Balanced class sizes: class ``c`` gets ``n // k + (c < n % k)``."""
    return n_samples // n_classes + (np.arange(n_classes) < n_samples % n_classes)


def _generated(
    name: str, points: np.ndarray, labels: np.ndarray, n_classes: int, rng: np.random.Generator
) -> Dataset:
    """Shuffle the rows (generators build class by class) and make the targets."""
    order = rng.permutation(len(labels))
    return Dataset(
        points[order].astype(np.float32), _targets(labels[order], n_classes), name, n_classes
    )


def _generator_args(n_samples: Any, seed: Any, n_classes: int) -> np.random.Generator:
    n = _checked_int(n_samples, "n_samples", minimum=1)
    if n < n_classes:
        raise ValueError(f"n_samples must be at least n_classes={n_classes}, got {n}")
    return np.random.default_rng(_checked_int(seed, "seed", minimum=0))


def make_xor(n_samples: int = 200, *, noise: float = 0.2, seed: int = 0) -> Dataset:
    """XOR: four Gaussian clusters at the corners ``(±1, ±1)``; label 1 where the signs differ.

    ``label = 1`` iff ``sign(x_1) · sign(x_2) < 0`` at the cluster's corner: the classic
    problem that no single perceptron (a linear boundary) can solve. With ``noise=0`` and
    ``n_samples=4`` it is exactly XOR's truth table, written in ±1 coordinates.

    Args:
        n_samples: ``n ≥ 2``; the corners get ``n // 4 + (i < n % 4)`` points each, in the
            order (-1,-1), (-1,+1), (+1,+1), (+1,-1), so the two classes differ by at most 1.
        noise: standard deviation of each cluster (isotropic Gaussian), ``≥ 0``.
        seed: seed of the numpy generator.

    Returns:
        A binary ``Dataset``: ``x (n, 2)``, ``y (n, 1)``.
    """
    sigma = _checked_float(noise, "noise", low=0.0)
    rng = _generator_args(n_samples, seed, 2)
    corners = np.array([[-1.0, -1.0], [-1.0, 1.0], [1.0, 1.0], [1.0, -1.0]])
    corner = np.repeat(np.arange(4), _class_sizes(n_samples, 4))
    points = corners[corner] + sigma * rng.standard_normal((n_samples, 2))
    labels = (corners[corner, 0] * corners[corner, 1] < 0).astype(np.int64)
    return _generated("xor", points, labels, 2, rng)


def make_moons(n_samples: int = 200, *, noise: float = 0.1, seed: int = 0) -> Dataset:
    """Two interleaving half-circles of radius 1, with Gaussian noise.

    Class 0 lies on ``(cos t, sin t)``, class 1 on ``(1 - cos t, 0.5 - sin t)``, with
    ``t ~ U[0, π]``; then ``N(0, noise²)`` is added to each coordinate.

    Args:
        n_samples: ``n ≥ 2``, split as evenly as possible between the two moons.
        noise: standard deviation of the Gaussian noise, ``≥ 0``.
        seed: seed of the numpy generator.

    Returns:
        A binary ``Dataset``: ``x (n, 2)``, ``y (n, 1)``.
    """
    sigma = _checked_float(noise, "noise", low=0.0)
    rng = _generator_args(n_samples, seed, 2)
    labels = np.repeat(np.arange(2), _class_sizes(n_samples, 2))
    t = rng.uniform(0.0, np.pi, n_samples)
    outer = np.stack([np.cos(t), np.sin(t)], axis=1)
    inner = np.stack([1 - np.cos(t), 0.5 - np.sin(t)], axis=1)
    points = np.where(labels[:, None] == 0, outer, inner)
    points = points + sigma * rng.standard_normal((n_samples, 2))
    return _generated("moons", points, labels, 2, rng)


def make_circles(
    n_samples: int = 200, *, noise: float = 0.05, factor: float = 0.5, seed: int = 0
) -> Dataset:
    """Two concentric circles: class 0 of radius 1, class 1 of radius ``factor``.

    Angles are uniform on ``[0, 2π)``; then ``N(0, noise²)`` is added to each coordinate.

    Args:
        n_samples: ``n ≥ 2``, split as evenly as possible between the two circles.
        noise: standard deviation of the Gaussian noise, ``≥ 0``.
        factor: the inner radius relative to the outer one, ``0 < factor < 1``.
        seed: seed of the numpy generator.

    Returns:
        A binary ``Dataset``: ``x (n, 2)``, ``y (n, 1)``.
    """
    sigma = _checked_float(noise, "noise", low=0.0)
    radius = _checked_float(factor, "factor", low=0.0, high=1.0)
    if radius in (0.0, 1.0):
        raise ValueError(f"factor must be strictly between 0 and 1, got {factor}")
    rng = _generator_args(n_samples, seed, 2)
    labels = np.repeat(np.arange(2), _class_sizes(n_samples, 2))
    angle = rng.uniform(0.0, 2 * np.pi, n_samples)
    r = np.where(labels == 0, 1.0, radius)
    points = r[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    points = points + sigma * rng.standard_normal((n_samples, 2))
    return _generated("circles", points, labels, 2, rng)


def make_spirals(
    n_samples: int = 300,
    *,
    n_classes: int = 2,
    noise: float = 0.05,
    turns: float = 1.0,
    seed: int = 0,
) -> Dataset:
    """Interleaved spiral arms, one per class (binary for two classes, multiclass above).

    Arm ``c`` of ``k`` is the curve ``r (cos θ, sin θ)`` with ``θ = 2π (turns · r + c / k)``
    for radius ``r ~ U[0, 1]``; then ``N(0, noise²)`` is added to each coordinate.

    Args:
        n_samples: ``n ≥ n_classes``, split as evenly as possible between the arms.
        n_classes: ``k ≥ 2`` arms.
        noise: standard deviation of the Gaussian noise, ``≥ 0``.
        turns: how many full turns each arm makes from the centre to radius 1, ``> 0``.
        seed: seed of the numpy generator.

    Returns:
        A ``Dataset`` with ``x (n, 2)`` and ``y (n, 1)`` for two classes, else
        one-hot ``y (n, k)``.
    """
    k = _checked_int(n_classes, "n_classes", minimum=2)
    sigma = _checked_float(noise, "noise", low=0.0)
    n_turns = _checked_float(turns, "turns", low=0.0)
    if n_turns == 0:
        raise ValueError("turns must be greater than 0, got 0")
    rng = _generator_args(n_samples, seed, k)
    labels = np.repeat(np.arange(k), _class_sizes(n_samples, k))
    r = rng.uniform(0.0, 1.0, n_samples)
    theta = 2 * np.pi * (n_turns * r + labels / k)
    points = r[:, None] * np.stack([np.cos(theta), np.sin(theta)], axis=1)
    points = points + sigma * rng.standard_normal((n_samples, 2))
    return _generated("spirals", points, labels, k, rng)


def make_blobs(
    n_samples: int = 300,
    *,
    n_classes: int = 3,
    n_features: int = 2,
    noise: float = 1.0,
    radius: float = 4.0,
    seed: int = 0,
) -> Dataset:
    """Isotropic Gaussian blobs, one per class, with centres evenly spaced on a circle.

    Centre ``c`` of ``k`` is ``radius (cos 2πc/k, sin 2πc/k, 0, …, 0)`` in ``n_features``
    dimensions; each point is its centre plus ``N(0, noise² I)``.

    Args:
        n_samples: ``n ≥ n_classes``, split as evenly as possible between the blobs.
        n_classes: ``k ≥ 2`` blobs.
        n_features: ``d ≥ 2``, the dimension of the points.
        noise: standard deviation of each blob, ``≥ 0``.
        radius: distance of every centre from the origin, ``≥ 0``.
        seed: seed of the numpy generator.

    Returns:
        A ``Dataset`` with ``x (n, d)`` and ``y (n, 1)`` for two classes, else one-hot
        ``y (n, k)``.
    """
    k = _checked_int(n_classes, "n_classes", minimum=2)
    d = _checked_int(n_features, "n_features", minimum=2)
    sigma = _checked_float(noise, "noise", low=0.0)
    distance = _checked_float(radius, "radius", low=0.0)
    rng = _generator_args(n_samples, seed, k)
    labels = np.repeat(np.arange(k), _class_sizes(n_samples, k))
    angle = 2 * np.pi * np.arange(k) / k
    centres = np.zeros((k, d))
    centres[:, 0] = distance * np.cos(angle)
    centres[:, 1] = distance * np.sin(angle)
    points = centres[labels] + sigma * rng.standard_normal((n_samples, d))
    return _generated("blobs", points, labels, k, rng)


# ----- scikit-learn's bundled datasets ----------------------------------------------------


def _sklearn_datasets(name: str) -> Any:
    try:
        import sklearn.datasets
    except ImportError as error:
        raise ImportError(
            f"the {name!r} dataset needs scikit-learn: pip install scikit-learn "
            '(in a netcheck checkout: pip install ".[datasets]")'
        ) from error
    return sklearn.datasets


def _bundled(name: str, bunch: Any, n_samples: int | None, seed: int) -> Dataset:
    rng = np.random.default_rng(_checked_int(seed, "seed", minimum=0))
    labels = np.asarray(bunch.target, dtype=np.int64)
    n_classes = int(labels.max()) + 1
    ds = Dataset(
        np.asarray(bunch.data, dtype=np.float32), _targets(labels, n_classes), name, n_classes
    )
    if n_samples is None:
        return ds
    n = _checked_int(n_samples, "n_samples", minimum=n_classes)
    if n > ds.n_samples:
        raise ValueError(f"n_samples must be at most {ds.n_samples} for {name!r}, got {n}")
    taken, _ = _stratified_partition(ds.labels, n, rng)
    return _rows(ds, taken)


def load_breast_cancer(n_samples: int | None = None, *, seed: int = 0) -> Dataset:
    """The Wisconsin breast cancer dataset, from the copy inside scikit-learn (no download).

    569 examples, 30 real-valued features on very different scales (standardize them);
    label 1 = benign, 0 = malignant.

    Args:
        n_samples: ``None`` for all 569, or a stratified random subset of this size.
        seed: seed of the subset.

    Returns:
        A binary ``Dataset``: ``x (n, 30)``, ``y (n, 1)``.

    Raises:
        ImportError: scikit-learn is not installed (``pip install scikit-learn``).
    """
    bunch = _sklearn_datasets("breast_cancer").load_breast_cancer()
    return _bundled("breast_cancer", bunch, n_samples, seed)


def load_digits(n_samples: int | None = None, *, seed: int = 0) -> Dataset:
    """Handwritten digits 8×8, from the copy inside scikit-learn (no download).

    1797 examples, 64 pixel intensities in 0..16 (row-major), ten classes 0..9.

    Args:
        n_samples: ``None`` for all 1797, or a stratified random subset of this size.
        seed: seed of the subset.

    Returns:
        A ``Dataset``: ``x (n, 64)``, one-hot ``y (n, 10)``.

    Raises:
        ImportError: scikit-learn is not installed (``pip install scikit-learn``).
    """
    bunch = _sklearn_datasets("digits").load_digits()
    return _bundled("digits", bunch, n_samples, seed)


# ----- by name ----------------------------------------------------------------------------

_LOADERS: dict[str, Callable[..., Dataset]] = {
    "xor": make_xor,
    "moons": make_moons,
    "circles": make_circles,
    "spirals": make_spirals,
    "blobs": make_blobs,
    "breast_cancer": load_breast_cancer,
    "digits": load_digits,
}


def dataset_options(name: str) -> dict[str, Any]:
    """The options ``load`` accepts for dataset ``name``, with their defaults."""
    loader = _loader(name)
    return {
        parameter.name: parameter.default
        for parameter in inspect.signature(loader).parameters.values()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY and parameter.name != "seed"
    }


def _loader(name: Any) -> Callable[..., Dataset]:
    if not isinstance(name, str):
        raise TypeError(f"dataset name must be a str, got {type(name).__name__}")
    try:
        return _LOADERS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}") from None


def load(name: str, *, n_samples: int | None = None, seed: int = 0, **options: Any) -> Dataset:
    """A dataset by name: one of ``DATASETS``.

    Args:
        name: the dataset's name.
        n_samples: how many examples; ``None`` for the generator's default (or, for a real
            dataset, all of it).
        seed: seed of the generator (or of the real dataset's subset).
        **options: the generator's own options, e.g. ``noise``; ``n_classes`` for spirals
            and blobs (see ``dataset_options``).

    Returns:
        The ``Dataset``.
    """
    loader = _loader(name)
    known = dataset_options(name)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise TypeError(
            f"unknown option(s) {', '.join(map(repr, unknown))} for dataset {name!r}; "
            f"it takes: {', '.join(known) or 'none'}"
        )
    if n_samples is not None:
        return loader(n_samples, seed=seed, **options)
    return loader(seed=seed, **options)


# ----- files ------------------------------------------------------------------------------


def _existing_file(path: Any) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    file = Path(path)
    if not file.exists():
        raise FileNotFoundError(f"{file}: no such file")
    if not file.is_file():
        raise IsADirectoryError(f"{file}: not a regular file")
    return file


def load_npz(
    path: str | os.PathLike[str],
    *,
    x_key: str = "x",
    y_key: str = "y",
    n_classes: int | None = None,
) -> Dataset:
    """A ``Dataset`` from a numpy ``.npz`` archive holding features and targets.

    Args:
        path: the ``.npz`` file (as written by ``np.savez`` or ``save_npz``).
        x_key: the archive's name for the ``(n, d)`` numeric features.
        y_key: the archive's name for the targets: ``(n,)`` integer labels 0..k-1,
            ``(n,)``/``(n, 1)`` binary targets in ``[0, 1]``, or ``(n, k)`` one-hot rows.
        n_classes: ``k``, if the labels alone do not show it.

    Returns:
        The validated dataset, named after the file's stem.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not an ``.npz`` archive, a key is missing, or the arrays are
            malformed (each message names the file).
    """
    for key, what in ((x_key, "x_key"), (y_key, "y_key")):
        if not isinstance(key, str):
            raise TypeError(f"{what} must be a str, got {type(key).__name__}")
    file = _existing_file(path)
    if not zipfile.is_zipfile(file):
        raise ValueError(f"{file}: not an .npz archive (not a zip file)")
    try:
        with np.load(file, allow_pickle=False) as archive:
            arrays = {key: _archive_array(archive, key, file) for key in (x_key, y_key)}
    except (zipfile.BadZipFile, EOFError) as error:
        raise ValueError(f"{file}: corrupt .npz archive: {error}") from None
    try:
        return _validated(
            arrays[x_key],
            arrays[y_key],
            name=file.stem,
            n_classes=n_classes,
            x_what=f"array {x_key!r}",
            y_what=f"array {y_key!r}",
        )
    except ValueError as error:
        raise ValueError(f"{file}: {error}") from None
    except TypeError as error:
        raise TypeError(f"{file}: {error}") from None


def _archive_array(archive: Any, key: str, file: Path) -> np.ndarray:
    if key not in archive.files:
        raise ValueError(
            f"{file}: no array {key!r} in the archive; "
            f"it holds: {', '.join(archive.files) or 'nothing'}"
        )
    try:
        return archive[key]
    except ValueError as error:  # object arrays need pickle, which we never allow
        raise ValueError(f"{file}: cannot read array {key!r}: {error}") from None


def save_npz(ds: Dataset, path: str | os.PathLike[str]) -> Path:
    """Write ``ds.x`` and ``ds.y`` to an ``.npz`` archive atomically (keys ``x`` and ``y``).

    Args:
        ds: the dataset.
        path: the file to write; its folder must exist.

    Returns:
        The path written. ``load_npz`` reads it back as the same dataset.
    """
    ds = _check_dataset(ds, "ds")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    buffer = io.BytesIO()
    np.savez(buffer, x=ds.x, y=ds.y)
    return write_bytes_atomic(path, buffer.getvalue())


def load_csv(
    path: str | os.PathLike[str],
    *,
    target_column: int | str = -1,
    delimiter: str = ",",
    header: bool | None = None,
    n_classes: int | None = None,
) -> Dataset:
    """A ``Dataset`` from a CSV file of numbers: one example per line.

    Args:
        path: the CSV file (UTF-8). Blank lines are skipped.
        target_column: the column holding the targets, by index (negative counts from the
            end) or, with a header, by name. Every other column is a feature.
        delimiter: the field separator.
        header: whether the first line names the columns; ``None`` detects it (a header is
            a first line with a field that is not a number).
        n_classes: ``k``, if the labels alone do not show it.

    Returns:
        The validated dataset, named after the file's stem. The targets are ``(n,)``
        integer labels 0..k-1 or binary targets in ``[0, 1]`` (see ``from_arrays``).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is empty, ragged, holds a field that is not a finite
            number, or bad targets (each message names the file and the line).
    """
    if not isinstance(target_column, (int, str)) or isinstance(target_column, bool):
        raise TypeError(f"target_column must be an int or a column name, got {target_column!r}")
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise ValueError(f"delimiter must be one character, got {delimiter!r}")
    if header not in (None, True, False):
        raise TypeError(f"header must be True, False or None (detect), got {header!r}")
    file = _existing_file(path)
    names, table = _read_csv(file, delimiter, header)
    column = _target_index(target_column, names, table.shape[1], file)
    features = np.delete(table, column, axis=1)
    try:
        return _validated(
            features,
            table[:, column],
            name=file.stem,
            n_classes=n_classes,
            x_what="features",
            y_what=f"target column {column}",
        )
    except ValueError as error:
        raise ValueError(f"{file}: {error}") from None


def _read_csv(
    file: Path, delimiter: str, header: bool | None
) -> tuple[list[str] | None, np.ndarray]:
    """The header (if any) and the ``(rows, columns)`` float64 table of a CSV file."""
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{file}: not a UTF-8 text file") from None
    try:
        lines = [
            (number, row)
            for number, row in enumerate(csv.reader(io.StringIO(text), delimiter=delimiter), 1)
            if any(field.strip() for field in row)
        ]
    except csv.Error as error:
        raise ValueError(f"{file}: malformed CSV: {error}") from None
    if not lines:
        raise ValueError(f"{file}: empty file, no rows")
    names = None
    if header or (header is None and not all(_is_number(field) for field in lines[0][1])):
        names = [field.strip() for field in lines[0][1]]
        lines = lines[1:]
        if not lines:
            raise ValueError(f"{file}: only a header, no rows")
    width = len(names) if names is not None else len(lines[0][1])
    if width < 2:
        raise ValueError(f"{file}: needs at least 2 columns (features and a target), got {width}")
    table = np.empty((len(lines), width))
    for row, (number, fields) in enumerate(lines):
        if len(fields) != width:
            raise ValueError(f"{file}: line {number} has {len(fields)} fields, expected {width}")
        for column, field in enumerate(fields):
            table[row, column] = _csv_number(field, file, number, column)
    return names, table


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _csv_number(field: str, file: Path, line: int, column: int) -> float:
    try:
        value = float(field)
    except ValueError:
        raise ValueError(
            f"{file}: line {line}, column {column}: {field!r} is not a number"
        ) from None
    if not math.isfinite(value):
        raise ValueError(f"{file}: line {line}, column {column}: {field.strip()!r} is not finite")
    return value


def _target_index(target: int | str, names: list[str] | None, width: int, file: Path) -> int:
    if isinstance(target, str):
        if names is None:
            raise ValueError(
                f"{file}: target_column {target!r} is a name, but the file has no header"
            )
        if target not in names:
            raise ValueError(f"{file}: no column named {target!r}; columns: {', '.join(names)}")
        return names.index(target)
    if not -width <= target < width:
        raise ValueError(f"{file}: target_column {target} is out of range for {width} columns")
    return target % width


# ----- splitting and scaling --------------------------------------------------------------


def _rows(ds: Dataset, index: np.ndarray) -> Dataset:
    return ds._replace(x=ds.x[index], y=ds.y[index])


def _stratified_partition(
    labels: np.ndarray, n_take: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Split row indices into ``n_take`` rows and the rest, keeping class proportions.

    Class ``c`` with ``n_c`` of ``n`` rows gives ``n_take · n_c / n`` rows, rounded by largest
    remainder so that the counts add up to ``n_take`` exactly. Both parts are shuffled.
    """
    classes, counts = np.unique(labels, return_counts=True)
    quota = n_take * counts / len(labels)
    take = np.floor(quota).astype(np.int64)
    # Hand the rows lost to flooring to the classes with the largest remainders.
    short = n_take - int(take.sum())
    take[np.argsort(-(quota - take), kind="stable")[:short]] += 1
    taken, rest = [], []
    for cls, n_cls in zip(classes, take, strict=True):
        members = rng.permutation(np.flatnonzero(labels == cls))
        taken.append(members[:n_cls])
        rest.append(members[n_cls:])
    return rng.permutation(np.concatenate(taken)), rng.permutation(np.concatenate(rest))


def train_test_split(
    ds: Dataset, test_fraction: float = 0.2, seed: int = 0, *, stratify: bool = True
) -> tuple[Dataset, Dataset]:
    """Split a dataset into shuffled training and test parts.

    Args:
        ds: the dataset.
        test_fraction: the share of examples that goes to the test part, ``0 < f < 1``;
            ``round(f · n)`` examples, at least 1, leaving at least 1 for training.
        seed: seed of the shuffle.
        stratify: keep each class's share equal in both parts (up to rounding).

    Returns:
        ``(train, test)``, each a ``Dataset`` with the same name and ``n_classes``.
    """
    ds = _check_dataset(ds, "ds")
    fraction = _checked_float(test_fraction, "test_fraction", low=0.0, high=1.0)
    if fraction in (0.0, 1.0):
        raise ValueError(f"test_fraction must be strictly between 0 and 1, got {test_fraction}")
    rng = np.random.default_rng(_checked_int(seed, "seed", minimum=0))
    if not isinstance(stratify, bool):
        raise TypeError(f"stratify must be True or False, got {stratify!r}")
    n = ds.n_samples
    if n < 2:
        raise ValueError(f"ds needs at least 2 examples to split, got {n}")
    n_test = min(max(round(fraction * n), 1), n - 1)
    if stratify:
        test, train = _stratified_partition(ds.labels, n_test, rng)
    else:
        order = rng.permutation(n)
        test, train = order[:n_test], order[n_test:]
    return _rows(ds, train), _rows(ds, test)


def standardize(train: Dataset, test: Dataset) -> tuple[Dataset, Dataset]:
    """Scale both parts by the training part's feature mean and standard deviation.

    ``x' = (x - μ_train) / σ_train`` per feature, computed in float64. A feature that is
    constant on the training part (``σ`` at or below float32 round-off of ``μ``) is only
    centred (``σ`` taken as 1), so it never divides by zero.

    Args:
        train: the training dataset, ``x (n_train, d)``.
        test: the held-out dataset, ``x (n_test, d)``.

    Returns:
        ``(train, test)`` with float32 standardized ``x``; targets unchanged.
    """
    train = _check_dataset(train, "train")
    test = _check_dataset(test, "test")
    if train.n_features != test.n_features:
        raise ValueError(
            f"train and test must have the same features, got {train.n_features} and "
            f"{test.n_features}"
        )
    features = train.x.astype(np.float64)
    mean = features.mean(axis=0)
    std = features.std(axis=0)
    std = np.where(std <= np.finfo(np.float32).eps * np.abs(mean), 1.0, std)

    def scaled(ds: Dataset) -> Dataset:
        return ds._replace(x=((ds.x.astype(np.float64) - mean) / std).astype(np.float32))

    return scaled(train), scaled(test)
