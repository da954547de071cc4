"""The finite-difference witness, from its measured numbers to a verdict's record.

The measuring programs (``netcheck.verifier.measure``) return, per check, the float64
finite-difference estimate of one directional derivative (``value ± error``), float64
autodiff's (``truth``) and the candidate's (``candidate``); here they become a
``Witness`` and, when autodiff and the differences disagree,
the verdict's "reference suspect" reason.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from netcheck.verifier.tolerance import FD_MULTIPLE, FD_RELATIVE
from netcheck.verifier.verdict import Witness


def witness_tolerance(numbers: dict[str, Any]) -> Any:
    """``FD_MULTIPLE · error + FD_RELATIVE · (|t·d| + ‖t‖ ‖d‖)`` (floats or arrays)."""
    truth = np.abs(np.asarray(numbers["truth"]))
    return FD_MULTIPLE * np.asarray(numbers["error"]) + FD_RELATIVE * (truth + numbers["bound"])


def witness_agrees(numbers: dict[str, Any]) -> Any:
    """Whether the finite differences agree with the truth (or abstain at a kink)."""
    gap = np.abs(np.asarray(numbers["value"]) - np.asarray(numbers["truth"]))
    return np.asarray(numbers["kink"]) | (gap <= witness_tolerance(numbers))


def witness_record(numbers: dict[str, Any]) -> Witness:
    """The ``Witness`` from the program's witness numbers."""
    return Witness(
        value=float(numbers["value"]),
        error=float(numbers["error"]),
        truth=float(numbers["truth"]),
        candidate=float(numbers["candidate"]),
        tolerance=float(witness_tolerance(numbers)),
        kink=bool(numbers["kink"]),
        agrees=bool(witness_agrees(numbers)),
    )


def witness_reason(witness: Witness) -> str:
    """The verdict's reason when the witness disagrees with the float64 truth."""
    return (
        f"reference suspect: float64 finite differences along a random direction "
        f"({witness.value:.8g} ± {witness.error:.2g}) disagree with float64 autodiff "
        f"({witness.truth:.8g}; tolerance {witness.tolerance:.2g}): jax.grad of this loss "
        "is not its derivative here (a wrong custom rule inside the loss?), so no row can "
        "be trusted"
    )
