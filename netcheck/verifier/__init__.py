"""The verifier: a hand-written gradient judged against autodiff's own error, in two parts.

A fixed tolerance either cries wolf in float32 or lets a 1% bug through. Here every
quantity ``c`` (each ``δ^ℓ``, ``∂L/∂W_ℓ``, ``∂L/∂b_ℓ`` of a network, or each floating leaf
of a user's pytree) is judged against quantities computed at the same point:

* the **truth** ``t``: ``jax.grad`` in float64 on the parameters and data upcast exactly
  from the working dtype (so both sides see the same numbers);
* the **noise floor** ``φ``: the distance from ``jax.grad`` *at the working dtype* to the
  truth, i.e. how far a correct program in this precision lands (on a GPU running float32
  matmuls in TF32, autodiff runs in TF32 too, so the floor grows with it). For float64 the
  working dtype is the truth's own, so ``φ`` is measured one precision down, in float32 at
  the point rounded to float32, and scaled by ``u₆₄ / u₃₂ = 2^-29`` (the *stand-in*);
* a **finite-difference witness** in float64 along one random direction over all
  quantities jointly, which checks the truth itself without autodiff.

Two parts
---------
**Formula.** When the gradient under test can run in float64 (netcheck's manual gradient
always can; a user's ``grad_fn`` is tried under 64-bit mode and used if every output comes
back float64), it is run on the same upcast point and compared with the truth with a
float64 tolerance (its floor from the float32 stand-in). A wrong formula shows there at
~1e-12 whatever the working dtype: a 1e-9 error in one element of a bfloat16 gradient is
caught. It cannot see how the candidate rounds at the working dtype (a formula that is
right but unstable in bfloat16 passes this part), and it does not exist for candidates
that cannot run in float64 (hard casts inside, kernels for one dtype): the verdict then
says so and judges precision alone.

**Precision.** The candidate at the working dtype against the truth, with the floor
measured from autodiff at that dtype: does it round no worse than autodiff (within ``K``
times)? It cannot tell a wrong formula from a badly rounded one, and its power is bounded
by the dtype (in bfloat16 an error must be a sizeable fraction of autodiff's own). With
both parts, a failing quantity is named ``wrong_formula`` or ``imprecise`` ("right
formula, 40x less accurate than autodiff in bfloat16").

Two norms
---------
Each part is judged in the 2-norm (an error spread thin over the array) and element by
element in the max norm (one wrong element, row or tile: the typical bug of a kernel),
each with its own floor measured from autodiff in that norm::

    ‖c - t‖₂ ≤ K · φ₂ + T · u · ‖m‖₂        ‖c - t‖∞ ≤ K · φ∞ + T · u · ‖m‖∞

with ``u`` the unit roundoff of the dtype judged (``2^-53, 2^-24, 2^-11, 2^-8`` for
float64, float32, float16, bfloat16) and ``m`` the magnitude of the terms summed into the
quantity. For the lecture's network they are the δ recursion's own summed terms
(``delta_magnitudes`` in ``netcheck.verifier.network``); for a pytree gradient, a
Hessian-vector product or a custom rule's VJP/JVP, autodiff's own program run with every
linear step in absolute value (``netcheck.verifier.term_magnitudes``: ``|L|(|v|)``, a
difference taken as a sum, a product with ``a`` as one with ``|a|``), or ``|t|`` where that
program holds a step it cannot read (a ``while_loop``, a solve). Every row states the
smallest relative error it would have caught for sure, spread over the array and in one
element of root-mean-square size, and its worst element (index, candidate, truth, autodiff
there): a pass says what it rules out.

Derivation of ``K = 8`` (``noise_multiple``): the candidate and ``jax.grad`` evaluate the
same products and sums in a different order. Both are backward stable, so both land within
``γ · cond · u`` of the truth with the *same* condition number: their distances to the
truth are two draws of the same size, not one number, and ``K`` bounds their ratio. Each
distance is a norm (or a maximum) over many independent roundings, so such a ratio stays
within a small factor; ``K = 8`` allows the candidate up to eight times autodiff's own
error, still a factor ~10^4 below a 1% bug in float32.

Derivation of ``T = 4`` (``tie_multiple``): ``φ`` is one sample of a rounding error and
can be tiny by luck, above all for a quantity of one or two elements (the output bias of a
one-unit layer); then the dtype floor decides. Any correct result is rounded at least once
to the dtype, and a sum's rounding is relative to the magnitude of its terms, not of its
(possibly cancelling) value: ``T = 4`` roundings of ``‖m‖``.

Calibration, measured: over 3456 correct cases (the default suite's 27 specs, each in all
four dtypes, 32 seeds), 9 cases failed, all softmax outputs under squared error, where
``δ^L`` cancels (largest ratio distance / tolerance 4.7, float64): fixed by judging each
``δ^ℓ`` against the summed terms of the δ recursion (``delta_magnitudes`` in
``netcheck.verifier.network``). On the other 103 (spec, dtype) groups the largest ratio
was 0.96 in float64 (where the parts coincide); formula / precision 0.52 / 0.46 in float32,
0.81 / 0.45 in bfloat16 and 0.93 / 0.54 in float16: a margin of 1.04 to 2.2, not more.
Over the 1000 detection-power cases per dtype (``reports/artifacts/detection_power.json``)
the largest ratio of a correct case is 0.33 to 0.36 and none raises an alarm (the one
bfloat16 case that did was the witness straddling a leaky_relu pre-activation exactly 0,
where it now abstains). ``tests/test_calibration.py`` pins both sides: ``K = 2`` or ``T = 0.4``
raise alarms on its correct corpus, ``K = 80`` or ``T = 40`` miss its planted errors.

Where nothing measures the rounding
-----------------------------------
* Autodiff exact and the truth exactly 0 (``sin²w + cos²w``: autodiff cancels to exactly
  0 while a correct candidate lands an ulp away): the precision part is not judged, and
  the formula part's floor is the candidate's own rounding, its change from the working
  dtype to float64 scaled to float64 (for float64 leaves, from float32 to float64).
* The float32 stand-in overflows (a float64 point whose float32 image is Inf): the floor
  is one float64 rounding of the terms, ``u₆₄ ‖m‖``.
* Autodiff at the working dtype is NaN/Inf while the candidate is finite: the precision
  floor is one rounding of the terms, and the reason says so.

NaN or Inf in the candidate, in the truth or in the loss is a failure with its own
reason; two NaNs never agree. Data with NaN/Inf is refused at the boundary. A failing
quantity at a point known to be non-differentiable (a relu pre-activation exactly 0) is
reported as ``"kink"``, not as a failure: there any subgradient is correct. When the
witness disagrees with the float64 truth, the reference itself is suspect (a wrong custom
rule inside the loss): the verdict fails with that reason.

Layers are reported in the lecture's numbering (``δ^ℓ``, ``W_ℓ``, ``b_ℓ``) and read from
``L`` down to 1: the first layer whose ``δ`` disagrees is where the bug sits, because a
wrong ``δ^ℓ`` spoils every ``δ`` below it.

Cost: one compiled program per (network or loss, shapes, dtypes) computes the truth, the
floors, the magnitudes and the witness (one step ladder along one direction, not one per
quantity), with reductions per quantity that keep a sharded array sharded.

Modules: ``tolerance`` (the constants and the judgement),
``measure`` (the measuring program's pieces),
``verdict`` (the records and their table),
``network`` (``verify``), ``pytree``
(``check_gradient``), ``checks`` (input checks).
"""

from netcheck.verifier.measure import FAST_COMPILE
from netcheck.verifier.network import (
    KINKED_ACTIVATIONS,
    measure_network_many,
    network_verdict,
    quantity_names,
    verify,
)
from netcheck.verifier.pytree import check_gradient
from netcheck.verifier.tolerance import (
    FD_MULTIPLE,
    FD_RELATIVE,
    NOISE_MULTIPLE,
    TIE_MULTIPLE,
    Constants,
    unit_roundoff,
)
from netcheck.verifier.verdict import (
    PARTS,
    STATUSES,
    Agreement,
    LayerAgreement,
    Part,
    Verdict,
    Witness,
    jsonable,
)

__all__ = [
    "FAST_COMPILE",
    "FD_MULTIPLE",
    "FD_RELATIVE",
    "KINKED_ACTIVATIONS",
    "NOISE_MULTIPLE",
    "PARTS",
    "STATUSES",
    "TIE_MULTIPLE",
    "Agreement",
    "Constants",
    "LayerAgreement",
    "Part",
    "Verdict",
    "Witness",
    "check_gradient",
    "jsonable",
    "measure_network_many",
    "network_verdict",
    "quantity_names",
    "unit_roundoff",
    "verify",
]
