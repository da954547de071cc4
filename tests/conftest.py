"""Test settings: strict dtype and rank promotion, so silent broadcasting bugs fail loudly.

float64 is enabled only inside tests that ask for it (the ``x64`` fixture), through
``jax.enable_x64``, so it never leaks into other tests.

Under CI (``CI`` set) Hypothesis runs derandomized, so a CI run is reproducible; locally it
explores new examples on every run.

The ``make_problem`` fixture draws a network's parameters and a batch with numpy (not with
``Network.init``), so gradient tests do not depend on the code under test for their data.
"""

from __future__ import annotations

import atexit
import itertools
import os
import shutil
import tempfile
from collections.abc import Callable

import jax
import numpy as np
import pytest
from hypothesis import settings


def _share_compiled_programs() -> None:
    """One JAX compilation cache for this test run: its xdist workers and the processes they
    start (the README's blocks, the notebooks' kernels) compile each program once.

    The process that starts the run makes a fresh folder and removes it when it exits; the
    workers it starts inherit the folder's name. Programs compiled in under 0.2 s are not
    stored.
    """
    folder = os.environ.get("NETCHECK_TESTS_JAX_CACHE")
    if folder is None:
        folder = tempfile.mkdtemp(prefix="netcheck-tests-jax-cache-")
        os.environ["NETCHECK_TESTS_JAX_CACHE"] = folder
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = folder
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.2"
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)


_share_compiled_programs()
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")

settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture
def x64():
    """Run the test with 64-bit JAX enabled, restoring the previous mode afterwards."""
    with jax.enable_x64(True):
        yield


def draw_problem(
    sizes: tuple[int, ...], loss: str, bias: bool, batch: int, seed: int
) -> tuple[list[dict[str, np.ndarray]], np.ndarray, np.ndarray]:
    """Float64 numpy parameters and a batch for a network; cast them as each test needs.

    Weights are N(0, 1/n_in) (pre-activations of order one: every activation is exercised
    off its flat tails), biases N(0, 0.25). Targets fit the loss: real values for squared
    error, soft labels in [0, 1] for binary cross-entropy, one-hot rows for softmax
    cross-entropy.

    Returns:
        ``(params, x (batch, n_0), y (batch, n_L))``.
    """
    rng = np.random.default_rng(seed)
    params = []
    for n_in, n_out in itertools.pairwise(sizes):
        layer = {"W": rng.normal(0.0, 1.0 / np.sqrt(n_in), (n_out, n_in))}
        if bias:
            layer["b"] = rng.normal(0.0, 0.5, (n_out,))
        params.append(layer)
    x = rng.normal(0.0, 1.0, (batch, sizes[0]))
    n_out = sizes[-1]
    if loss == "squared_error":
        y = rng.normal(0.0, 1.0, (batch, n_out))
    elif loss == "binary_cross_entropy":
        y = rng.uniform(0.0, 1.0, (batch, n_out))
    else:
        y = np.eye(n_out)[rng.integers(0, n_out, batch)]
    return params, x, y


@pytest.fixture(scope="session")
def make_problem() -> Callable[..., tuple[list[dict[str, np.ndarray]], np.ndarray, np.ndarray]]:
    """``draw_problem``, as a fixture (session-scoped: it is a pure function)."""
    return draw_problem
