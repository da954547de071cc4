"""netcheck: the lecture's backpropagation by hand in JAX, verified against jax.grad.

The public surface::

    net = Network(sizes=(2, 16, 1), activation="tanh", output_activation="sigmoid",
                  loss="binary_cross_entropy")
    params = net.init(key)
    net.manual_grad(params, x, y)        # the δ recursion, jit-compiled
    net.autodiff_grad(params, x, y)      # jax.grad of the same mean loss
    verify(net, params, x, y)            # per-layer verdict, calibrated tolerance
    check_gradient(loss_fn, grad_fn, params, *args)   # the same for any pytree
    check_custom_rule(f, *args)          # a custom_vjp/custom_jvp against autodiff of f.fun
    audit(fn, *args, skip=(...))         # every custom rule fn reaches, checked where reached
    params, history = train(net, params, (x, y), ...)  # jit-compiled trainer

``netcheck.testing`` holds the same checks as pytest assertions.
"""

from netcheck import datasets, testing
from netcheck.nn import INIT_SCHEMES, ForwardCache, Network
from netcheck.nn.activations import ACTIVATIONS, HIDDEN_ACTIVATIONS, Activation
from netcheck.nn.literal import literal_grad
from netcheck.nn.losses import LOSSES, Loss
from netcheck.training.checkpoint import Checkpoint
from netcheck.training.checkpoint import load as load_checkpoint
from netcheck.training.checkpoint import save as save_checkpoint
from netcheck.training.trainer import (
    DivergenceWarning,
    TrainState,
    fit,
    init_state,
    iterate_epochs,
    make_epoch_fn,
    make_train_step,
    train,
)
from netcheck.verifier import Verdict, check_gradient, verify
from netcheck.verifier.audit import AuditReport, audit
from netcheck.verifier.custom_rule import check_custom_rule

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "HIDDEN_ACTIVATIONS",
    "INIT_SCHEMES",
    "LOSSES",
    "Activation",
    "AuditReport",
    "Checkpoint",
    "DivergenceWarning",
    "ForwardCache",
    "Loss",
    "Network",
    "TrainState",
    "Verdict",
    "__version__",
    "audit",
    "check_custom_rule",
    "check_gradient",
    "datasets",
    "fit",
    "init_state",
    "iterate_epochs",
    "literal_grad",
    "load_checkpoint",
    "make_epoch_fn",
    "make_train_step",
    "save_checkpoint",
    "testing",
    "train",
    "verify",
]
