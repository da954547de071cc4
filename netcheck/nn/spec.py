"""The lecture's fully connected network: its spec, parameters, forward pass and input checks.

A ``Network`` is frozen, hashable configuration (so it can be a static argument of
``jax.jit``); the parameters are a plain pytree, a list with one dict per layer::

    params[ℓ-1] = {"W": (n_ℓ, n_{ℓ-1}), "b": (n_ℓ,)}     # W[j, k] = w^ℓ_{j,k}

The forward pass is batch-first, ``z^ℓ = a^{ℓ-1} W_ℓᵀ + b_ℓ`` on rows, which is the
lecture's ``z^ℓ = W_ℓ a^{ℓ-1}`` for each example; ``bias=False`` drops ``b`` and reproduces
the slides exactly. This module holds what the network *is* and computes forward
(``NetworkSpec``); the algorithms that differentiate it (``backprop``, ``autodiff``,
``hvp``, ``literal``) build on it, and ``netcheck.nn.network.Network`` adds them to it as
methods. Nothing here imports them, so the layers of ``netcheck.nn`` import one way only.

Every public method refuses bad input (shapes, dtypes, non-finite data, targets the loss
is not defined for) with one ``ValueError``/``TypeError`` naming the problem, before
anything is traced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from netcheck.nn.activations import HIDDEN_ACTIVATIONS, Activation, get_activation
from netcheck.nn.losses import Loss, get_loss

Array = jax.Array
Params = list[dict[str, Array]]

INIT_SCHEMES = ("auto", "glorot_normal", "glorot_uniform", "he_normal", "lecun_normal", "nielsen")
"""Weight initialisations accepted by ``Network.init``."""

_RELU_LIKE = frozenset({"relu", "leaky_relu", "elu", "gelu", "silu"})


class ForwardCache(NamedTuple):
    """What the forward pass computed, layer by layer.

    Attributes:
        pre_activations: ``[z^1, ..., z^L]``, each ``(batch, n_ℓ)``.
        activations: ``[a^0 = x, a^1, ..., a^L = ŷ]``, each ``(batch, n_ℓ)``.

    Under ``jit`` only the entries a later computation reads stay alive; the backward pass
    reads ``z^ℓ`` only for activations whose derivative needs it (softplus, gelu, silu).
    """

    pre_activations: list[Array]
    activations: list[Array]


@dataclass(frozen=True)
class NetworkSpec:
    """What a fully connected network ``ŷ = g_L(W_L g(⋯ g(W_1 x)))`` is and computes forward.

    The derivatives are added by its subclass ``netcheck.Network``; the algorithms that
    compute them take a ``NetworkSpec``, so that this module never imports them.

    Attributes:
        sizes: layer widths ``(n_0, n_1, ..., n_L)``; ``n_0`` is the input's feature count.
        activation: hidden activation ``g`` (a name from ``HIDDEN_ACTIVATIONS``).
        output_activation: output activation ``g_L`` (any activation, or ``"softmax"``).
        loss: per-example loss ``L(y, ŷ)``: ``squared_error``, ``binary_cross_entropy``
            (needs a sigmoid output) or ``softmax_cross_entropy`` (needs a softmax output).
        bias: whether each layer has a bias ``b_ℓ``.
    """

    sizes: tuple[int, ...]
    activation: str = "sigmoid"
    output_activation: str = "sigmoid"
    loss: str = "squared_error"
    bias: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "sizes", _checked_sizes(self.sizes))
        hidden = get_activation(self.activation)
        if hidden.output_only:
            raise ValueError(
                f"activation {self.activation!r} can only be an output activation; "
                f"hidden activations: {', '.join(HIDDEN_ACTIVATIONS)}"
            )
        output = get_activation(self.output_activation)
        loss = get_loss(self.loss)
        if loss.output_activation not in (None, output.name):
            raise ValueError(
                f"loss {loss.name!r} needs output_activation={loss.output_activation!r}, "
                f"got {output.name!r}"
            )
        if not output.elementwise and self.sizes[-1] < 2:
            raise ValueError(
                f"output_activation {output.name!r} needs at least 2 outputs, "
                f"got sizes[-1]={self.sizes[-1]}"
            )
        if not isinstance(self.bias, bool):
            raise TypeError(f"bias must be True or False, got {self.bias!r}")

    # ----- the spec -------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """``L``, the number of layers with weights."""
        return len(self.sizes) - 1

    @property
    def hidden(self) -> Activation:
        """The hidden activation record ``g``."""
        return get_activation(self.activation)

    @property
    def output(self) -> Activation:
        """The output activation record ``g_L``."""
        return get_activation(self.output_activation)

    @property
    def loss_fn(self) -> Loss:
        """The per-example loss record."""
        return get_loss(self.loss)

    def layer_activation(self, layer: int) -> Activation:
        """The activation of layer ``ℓ`` (1-based): ``g_L`` for ``ℓ = L``, else ``g``."""
        return self.output if layer == self.depth else self.hidden

    # ----- parameters -----------------------------------------------------------------

    def init(self, key: Array | int, dtype: Any = jnp.float32, scheme: str = "auto") -> Params:
        """Draw initial parameters.

        Args:
            key: a ``jax.random`` key (``jax.random.key(0)``, or the raw ``uint32`` data of
                ``jax.random.PRNGKey(0)``), or an int seed in ``[0, 2**32)``, which stands
                for ``jax.random.key(seed)``.
            dtype: floating dtype of every leaf.
            scheme: ``"glorot_normal"``/``"glorot_uniform"`` (variance ``2/(n_in+n_out)``),
                ``"he_normal"`` (``2/n_in``, for relu-like activations), ``"lecun_normal"``
                (``1/n_in``), all as in ``jax.nn.initializers`` (truncated normals); or
                ``"nielsen"``, standard normal weights and biases as in Nielsen's
                ``network.py``. ``"auto"`` picks ``he_normal`` for relu, leaky_relu, elu,
                gelu and silu, and ``glorot_normal`` otherwise. Biases start at zero except
                under ``"nielsen"``.

        Returns:
            ``[{"W": (n_ℓ, n_{ℓ-1}), "b": (n_ℓ,)} for ℓ = 1..L]`` (no ``"b"`` without bias).
        """
        key = _checked_key(key)
        dtype = _checked_float_dtype(dtype, "dtype")
        if scheme not in INIT_SCHEMES:
            raise ValueError(f"unknown init scheme {scheme!r}; known: {', '.join(INIT_SCHEMES)}")
        if scheme == "auto":
            scheme = "he_normal" if self.activation in _RELU_LIKE else "glorot_normal"
        params: Params = []
        for key_layer, n_in, n_out in zip(
            jax.random.split(key, self.depth), self.sizes[:-1], self.sizes[1:], strict=True
        ):
            key_w, key_b = jax.random.split(key_layer)
            if scheme == "nielsen":
                w = jax.random.normal(key_w, (n_out, n_in), dtype)
                b = jax.random.normal(key_b, (n_out,), dtype)
            else:
                initializer = getattr(jax.nn.initializers, scheme)(in_axis=1, out_axis=0)
                w = initializer(key_w, (n_out, n_in), dtype)
                b = jnp.zeros((n_out,), dtype)
            params.append({"W": w, "b": b} if self.bias else {"W": w})
        return params

    # ----- forward pass (unchecked: these are what jit and jax.grad trace) -------------

    def forward_cache(
        self, params: Params, x: Array, perturbations: list[Array] | None = None
    ) -> ForwardCache:
        """Feed ``x`` forward (lecture step 1), keeping every ``z^ℓ`` and ``a^ℓ``.

        ``z^ℓ = a^{ℓ-1} W_ℓᵀ + b_ℓ``, ``a^ℓ = g(z^ℓ)`` with ``g_L`` on the last layer.

        Args:
            params: the parameter pytree.
            x: inputs, ``(batch, n_0)``.
            perturbations: optional ``[e^1, ..., e^L]`` added to each ``z^ℓ``; the autodiff
                reference differentiates with respect to them to get ``∂L/∂z^ℓ``.

        Returns:
            The ``ForwardCache``. No input checks: see ``forward``.
        """
        activations = [x]
        pre_activations = []
        for layer, weights in enumerate(params, start=1):
            z = rows_times_transpose(activations[-1], weights["W"])
            if self.bias:
                # Explicit row broadcast: b is (n_ℓ,), z is (batch, n_ℓ); no rank promotion.
                z = z + weights["b"][None, :]
            if perturbations is not None:
                z = z + perturbations[layer - 1]
            pre_activations.append(z)
            activations.append(self.layer_activation(layer).fn(z))
        return ForwardCache(pre_activations, activations)

    def example_losses(self, cache: ForwardCache, y: Array) -> Array:
        """Per-example losses ``L(y_i, ŷ(x_i))``, shape ``(batch,)``.

        Fused losses (BCE, softmax CE) are computed from the logits ``z^L``, stably.
        """
        loss = self.loss_fn
        if loss.value_from_logits is not None:
            return loss.value_from_logits(cache.pre_activations[-1], y)
        return loss.value(cache.activations[-1], y)

    def mean_loss_unchecked(self, params: Params, x: Array, y: Array) -> Array:
        """``mean_loss`` without input checks, for use under ``jit``/``grad``."""
        return jnp.mean(self.example_losses(self.forward_cache(params, x), y))

    # ----- the forward pass, checked -------------------------------------------------

    def forward(self, params: Params, x: Any) -> Array:
        """The prediction ``ŷ = a^L``, shape ``(batch, n_L)``, for inputs ``(batch, n_0)``."""
        dtype = self.check_params(params)
        x = self.check_inputs(x, dtype)
        return self.forward_cache(params, x).activations[-1]

    def mean_loss(self, params: Params, x: Any, y: Any) -> Array:
        """The lecture's batch loss ``1/n Σ_i L(y_i, ŷ(x_i))``, a scalar."""
        x, y = self.check_batch(params, x, y)
        return self.mean_loss_unchecked(params, x, y)

    # ----- input checks, at the public boundary ---------------------------------------

    def check_params(self, params: Any, what: str = "params") -> jnp.dtype:
        """Check that ``params`` fits this network; return its (shared) floating dtype.

        Args:
            params: the pytree to check.
            what: its name in the messages (``"v"`` for a direction).

        Raises:
            TypeError: not a list of dicts, or a leaf that is not a floating array (the
                message names the leaf's dtype).
            ValueError: wrong number of layers, wrong keys, wrong shapes, mixed dtypes, or
                float64 leaves while JAX runs in 32-bit mode (the message says to enable x64).
        """
        if not isinstance(params, (list, tuple)):
            raise TypeError(
                f"{what} must be a list of per-layer dicts, got {type(params).__name__}"
            )
        if len(params) != self.depth:
            raise ValueError(
                f"{what} has {len(params)} layers but the network sizes={self.sizes} "
                f"have {self.depth}"
            )
        expected_keys = {"W", "b"} if self.bias else {"W"}
        dtypes = set()
        for layer, weights in enumerate(params, start=1):
            if not isinstance(weights, dict):
                raise TypeError(f"{what}[{layer - 1}] must be a dict, got {type(weights).__name__}")
            if set(weights) != expected_keys:
                raise ValueError(
                    f"{what}[{layer - 1}] has keys {sorted(weights)}, expected "
                    f"{sorted(expected_keys)} (bias={self.bias})"
                )
            n_out, n_in = self.sizes[layer], self.sizes[layer - 1]
            shapes = {"W": (n_out, n_in), "b": (n_out,)}
            for name in sorted(expected_keys):
                leaf = weights[name]
                where = f'{what}[{layer - 1}]["{name}"] ({name}_{layer})'
                if not hasattr(leaf, "shape") or not hasattr(leaf, "dtype"):
                    raise TypeError(f"{where} must be an array, got {type(leaf).__name__}")
                if tuple(leaf.shape) != shapes[name]:
                    raise ValueError(
                        f"{where} has shape {tuple(leaf.shape)}, expected {shapes[name]}"
                    )
                dtypes.add(_checked_float_dtype(leaf.dtype, where))
        if len(dtypes) > 1:
            raise ValueError(f"{what} mix dtypes {sorted(map(str, dtypes))}; use one")
        return dtypes.pop()

    def check_direction(self, params: Params, v: Any) -> None:
        """Check that a direction ``v`` has the structure, shapes and dtype of ``params``.

        Raises:
            TypeError, ValueError: as ``check_params`` for ``v`` itself, and a
                ``ValueError`` when ``v``'s dtype is not the parameters' dtype.
        """
        dtype = self.check_params(params)
        direction_dtype = self.check_params(v, "v")
        if direction_dtype != dtype:
            raise ValueError(
                f"v is {direction_dtype} but params are {dtype}: the direction must have "
                "the parameters' dtype"
            )

    def check_inputs(self, x: Any, dtype: Any) -> Array:
        """Inputs as a ``(batch, n_0)`` array of ``dtype``; refuses other shapes and NaN/Inf."""
        x = _as_finite_array(x, dtype, "x")
        if x.ndim != 2 or x.shape[1] != self.sizes[0]:
            raise ValueError(
                f"x must have shape (batch, {self.sizes[0]}) for sizes={self.sizes}, "
                f"got {tuple(x.shape)}"
            )
        if x.shape[0] == 0:
            raise ValueError("x is empty: the batch needs at least one example")
        return x

    def check_batch(self, params: Params, x: Any, y: Any) -> tuple[Array, Array]:
        """Check params, ``x (batch, n_0)`` and ``y (batch, n_L)``; return ``x, y`` as arrays.

        ``x`` and ``y`` are converted to the parameters' dtype; the targets must then obey
        the loss's rule (``netcheck.nn.losses.Loss.check_targets``: in ``[0, 1]`` for the
        cross-entropies, rows summing to 1 for softmax cross-entropy), which is checked on
        concrete values only (under ``jit`` only the shapes are).
        """
        dtype = self.check_params(params)
        x = self.check_inputs(x, dtype)
        y = _as_finite_array(y, dtype, "y")
        expected = (x.shape[0], self.sizes[-1])
        if tuple(y.shape) != expected:
            raise ValueError(
                f"y must have shape (batch, n_L) = {expected} to match x {tuple(x.shape)}, "
                f"got {tuple(y.shape)}"
            )
        self.loss_fn.check_targets(y, "y")
        return x, y


def rows_times_transpose(a: Array, w: Array) -> Array:
    """``a Wᵀ``: each row is ``W a_i``, the lecture's ``z^ℓ = W_ℓ a^{ℓ-1}`` for one example.

    Args:
        a: rows ``(batch, n_in)``.
        w: ``(n_out, n_in)``.

    Returns:
        ``(batch, n_out)``. One ``dot_general`` contracting ``n_in`` of both operands, with no
        transpose op: written as ``a @ w.T``, XLA on CPU copied ``Wᵀ`` on every call at batch 1
        (measured 3x slower steps, for jax.grad too).
    """
    return jax.lax.dot_general(a, w, (((1,), (1,)), ((), ())))


def _checked_sizes(sizes: Any) -> tuple[int, ...]:
    try:
        sizes = tuple(sizes)
    except TypeError:
        raise TypeError(f"sizes must be a sequence of layer widths, got {sizes!r}") from None
    if len(sizes) < 2:
        raise ValueError(
            f"sizes must name the input width and at least one layer, e.g. (2, 1); got {sizes}"
        )
    for index, width in enumerate(sizes):
        if isinstance(width, bool) or not isinstance(width, (int, np.integer)):
            raise TypeError(f"sizes[{index}] must be an int, got {width!r}")
        if width < 1:
            raise ValueError(f"sizes[{index}] must be at least 1, got {width}")
    return tuple(int(width) for width in sizes)


def _checked_key(key: Any) -> Array:
    """``key`` as a typed ``jax.random`` key; an int seed becomes ``jax.random.key(seed)``."""
    if isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_)):
        if not 0 <= key < 2**32:
            # jax.random.key keeps only 32 bits of a seed in 32-bit mode: 2**32 would be 0.
            raise ValueError(f"key: an int seed must be in [0, 2**32), got {key}")
        return jax.random.key(int(key))
    dtype = getattr(key, "dtype", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(f"key must be one jax.random key, got an array of keys {key.shape}")
        return key
    if dtype == np.uint32:
        try:  # raw key data, as jax.random.PRNGKey(0) returns
            return jax.random.wrap_key_data(key)
        except (TypeError, ValueError):
            pass
    described = type(key).__name__ if dtype is None else f"an array of {dtype} {np.shape(key)}"
    raise TypeError(
        f"key must be a jax.random key (e.g. jax.random.key(0)) or an int seed, got {described}"
    )


def _checked_float_dtype(dtype: Any, what: str) -> jnp.dtype:
    try:
        dtype = jnp.dtype(dtype)
    except TypeError:
        raise TypeError(f"{what}: {dtype!r} is not a dtype") from None
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"{what} must be floating point, got {dtype}")
    if dtype == jnp.float64 and not jax.config.jax_enable_x64:
        raise ValueError(
            f"{what} is float64 but JAX runs in 32-bit mode; "
            "enable it with jax.config.update('jax_enable_x64', True)"
        )
    return dtype


def _as_finite_array(value: Any, dtype: Any, what: str) -> Array:
    """``value`` as an array of ``dtype``; refuses NaN/Inf when the values are concrete.

    Under a transformation (``jit``, ``vmap``, ``grad``) only the shape can be checked.
    """
    if isinstance(value, jax.core.Tracer):
        return value.astype(dtype)
    if not isinstance(value, jax.Array):
        try:
            value = np.asarray(value)
        except Exception as error:
            raise TypeError(f"{what} cannot be read as an array: {error}") from None
    if not (jnp.issubdtype(value.dtype, jnp.number) or value.dtype == np.bool_):
        raise TypeError(f"{what} must be numeric, got dtype {value.dtype}")
    if jnp.issubdtype(value.dtype, jnp.complexfloating):
        # Casting to the real parameter dtype would silently drop the imaginary part.
        raise TypeError(f"{what} must be real, got complex dtype {value.dtype}")
    with np.errstate(over="ignore"):  # an overflow is reported below, in words
        array = jnp.asarray(value, dtype=dtype)
    # One reduction on the device, one number back to the host.
    non_finite = jnp.size(array) - jnp.count_nonzero(jnp.isfinite(array))
    if isinstance(non_finite, jax.core.Tracer):
        # Under jit even a constant (a closed-over numpy x) is traced: shapes only.
        return array
    non_finite = int(non_finite)
    if non_finite and np.isfinite(np.asarray(value)).all():
        raise ValueError(
            f"{what} has {non_finite} value(s) beyond the range of {jnp.dtype(dtype).name} "
            "(they overflow to Inf)"
        )
    if non_finite:
        raise ValueError(f"{what} has {non_finite} non-finite value(s) (NaN or Inf)")
    return array
