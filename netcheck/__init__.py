"""netcheck: the lecture's backpropagation by hand in JAX, verified against jax.grad.

The public surface::

    net = Network(sizes=(2, 16, 1), activation="tanh", output_activation="sigmoid",
                  loss="binary_cross_entropy")
    params = net.init(key)
    net.manual_grad(params, x, y)      # the δ recursion, jit-compiled
    net.autodiff_grad(params, x, y)    # jax.grad of the same mean loss
"""

from netcheck.activations import ACTIVATIONS, HIDDEN_ACTIVATIONS, Activation
from netcheck.literal import literal_grad
from netcheck.losses import LOSSES, Loss
from netcheck.network import INIT_SCHEMES, ForwardCache, Network

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "HIDDEN_ACTIVATIONS",
    "INIT_SCHEMES",
    "LOSSES",
    "Activation",
    "ForwardCache",
    "Loss",
    "Network",
    "__version__",
    "literal_grad",
]
