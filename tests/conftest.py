"""Test settings: strict dtype and rank promotion, so silent broadcasting bugs fail loudly.

float64 is enabled only inside tests that ask for it (the ``x64`` fixture), through
``jax.enable_x64``, so it never leaks into other tests.
"""

from __future__ import annotations

import jax
import pytest

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def x64():
    """Run the test with 64-bit JAX enabled, restoring the previous mode afterwards."""
    with jax.enable_x64(True):
        yield
