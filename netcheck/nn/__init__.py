"""The lecture's network and its derivatives, by hand and by autodiff.

Modules, in the order they import one another (none imports back up):

- ``activations``, ``losses``: each ``g`` with its hand-written ``g'`` (and ``g''``), each
  loss with ``∂L/∂ŷ``, side by side;
- ``spec``: ``NetworkSpec``, what the network is and computes forward
  (``z^ℓ = W_ℓ a^{ℓ-1}``, ``a^ℓ = g(z^ℓ)``), and its input checks;
- ``backprop``: the δ recursion by hand, ``δ^ℓ = G(ℓ) W_{ℓ+1}ᵀ δ^{ℓ+1}``;
- ``autodiff``: ``jax.grad`` of the very same loss, the reference;
- ``hvp``: Hessian-vector products by hand (the R-operator);
- ``literal``: the slides' per-example form, ``G(ℓ)`` as matrices;
- ``network``: ``Network``, the spec with one method per derivative.
"""

from netcheck.nn.activations import ACTIVATIONS, HIDDEN_ACTIVATIONS, Activation
from netcheck.nn.literal import literal_grad
from netcheck.nn.losses import LOSSES, Loss
from netcheck.nn.network import Network
from netcheck.nn.spec import INIT_SCHEMES, ForwardCache, NetworkSpec, Params

__all__ = [
    "ACTIVATIONS",
    "HIDDEN_ACTIVATIONS",
    "INIT_SCHEMES",
    "LOSSES",
    "Activation",
    "ForwardCache",
    "Loss",
    "Network",
    "NetworkSpec",
    "Params",
    "literal_grad",
]
