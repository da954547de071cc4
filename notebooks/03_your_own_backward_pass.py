# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · Checking your own backward pass with `check_gradient`
#
# You wrote a backward pass by hand: a `jax.custom_vjp` for speed or numerical stability,
# or a whole manual gradient as in [the lecture](../docs/lecture.md). Is it right?
# `check_gradient` answers the way `verify` does for netcheck's own backprop:
# ```python
# verdict = check_gradient(loss_fn, grad_fn, params, *args)
# ```
# judges `grad_fn(params, *args)` against `jax.grad(loss_fn)(params, *args)` **leaf by
# leaf** of any pytree: the truth is `jax.grad` in float64 on the same (upcast) numbers; each
# leaf's tolerance is a small multiple of the error `jax.grad` itself makes at the working
# precision (its noise floor), plus a few ulps; a float64 finite-difference witness checks
# the truth without autodiff. To check a custom VJP, pass the plain function as `loss_fn`
# and `jax.grad` of the one that uses your VJP as `grad_fn`.

# %%
import jax
import jax.numpy as jnp
import numpy as np
from jax.test_util import check_grads

from netcheck import check_gradient

# %% [markdown]
# ## A model with a hand-written layer norm
#
# A small classifier: dense layer, layer normalisation, tanh, dense layer, softmax
# cross-entropy. Layer norm of a row $h \in \mathbb R^m$:
# $$\mu = \tfrac1m \textstyle\sum_k h_k, \quad \sigma^2 = \tfrac1m \sum_k (h_k - \mu)^2, \quad
#   \hat x = \frac{h - \mu}{\sqrt{\sigma^2 + \varepsilon}}, \quad
#   \mathrm{LN}(h) = \gamma \odot \hat x + \beta .$$
# Its backward pass, for an incoming cotangent $g$ and $\bar g = g \odot \gamma$:
# $$\frac{\partial}{\partial h} = \frac{1}{\sqrt{\sigma^2 + \varepsilon}}
#   \Bigl(\bar g - \operatorname{mean}(\bar g)
#   - \hat x \operatorname{mean}(\bar g \odot \hat x)\Bigr),
#   \qquad \frac{\partial}{\partial \gamma} = \sum_{\text{batch}} g \odot \hat x, \qquad
#   \frac{\partial}{\partial \beta} = \sum_{\text{batch}} g .$$
# First the plain version, which `jax.grad` differentiates by itself:

# %%
EPS = 1e-5


def layer_norm(h, gain, bias):
    mean = h.mean(axis=-1, keepdims=True)
    variance = ((h - mean) ** 2).mean(axis=-1, keepdims=True)
    return gain * (h - mean) / jnp.sqrt(variance + EPS) + bias


def classifier_loss(norm):
    # The model, parametrised by its layer norm, so the plain and custom ones share it.
    def loss(params, x, y):
        h = x @ params["dense1"]["W"].T + params["dense1"]["b"]
        h = jnp.tanh(norm(h, params["norm"]["gain"], params["norm"]["bias"]))
        logits = h @ params["dense2"]["W"].T + params["dense2"]["b"]
        return -jnp.mean(jnp.sum(y * jax.nn.log_softmax(logits), axis=-1))

    return loss


rng = np.random.default_rng(0)
params = {
    "dense1": {"W": 0.1 * rng.normal(size=(16, 8)), "b": np.zeros(16)},
    "norm": {"gain": np.ones(16), "bias": np.zeros(16)},
    "dense2": {"W": 0.25 * rng.normal(size=(3, 16)), "b": np.zeros(3)},
}
params = jax.tree.map(lambda leaf: jnp.asarray(leaf, jnp.float32), params)
x = jnp.asarray(rng.normal(size=(32, 8)), jnp.float32)
y = jnp.asarray(np.eye(3)[rng.integers(0, 3, size=32)], jnp.float32)  # one-hot targets
# jit: check_gradient calls these many times (float32, float64, finite differences).
plain_loss = jax.jit(classifier_loss(layer_norm))
print("loss:", float(plain_loss(params, x, y)))


# %% [markdown]
# Now the hand-written backward pass as a custom VJP. `make_layer_norm(forget_eps)` builds
# two versions: the right one, and one with a slip that is easy to make and hard to see: the
# backward pass divides by $\sqrt{\sigma^2}$ instead of $\sqrt{\sigma^2 + \varepsilon}$.


# %%
def make_layer_norm(forget_eps=False):
    @jax.custom_vjp
    def custom_layer_norm(h, gain, bias):
        return layer_norm(h, gain, bias)

    def forward(h, gain, bias):
        mean = h.mean(axis=-1, keepdims=True)
        variance = ((h - mean) ** 2).mean(axis=-1, keepdims=True)
        inv_std = 1 / jnp.sqrt(variance + EPS)
        x_hat = (h - mean) * inv_std
        if forget_eps:  # the slip: the backward pass uses 1/sqrt(σ²), not 1/sqrt(σ² + ε)
            inv_std = 1 / jnp.sqrt(variance)
        return gain * x_hat + bias, (x_hat, inv_std, gain)

    def backward(saved, g):
        x_hat, inv_std, gain = saved
        g_bar = g * gain
        dh = inv_std * (
            g_bar
            - g_bar.mean(axis=-1, keepdims=True)
            - x_hat * (g_bar * x_hat).mean(axis=-1, keepdims=True)
        )
        return dh, (g * x_hat).sum(axis=0), g.sum(axis=0)

    custom_layer_norm.defvjp(forward, backward)
    return custom_layer_norm


right_grad = jax.jit(jax.grad(classifier_loss(make_layer_norm())))
slipped_grad = jax.jit(jax.grad(classifier_loss(make_layer_norm(forget_eps=True))))

# %% [markdown]
# ## The right backward pass

# %%
right_verdict = check_gradient(plain_loss, right_grad, params, x, y)
print(right_verdict)

# %% [markdown]
# ## The subtly wrong one, and where the verdict points

# %%
slipped_verdict = check_gradient(plain_loss, slipped_grad, params, x, y)
print(slipped_verdict)


# %% [markdown]
# Reading the verdict:
#
# - the error is tiny (a relative error around $10^{-4}$, cosine 1.000000 to six places), yet
#   it is many times the tolerance, because `jax.grad` in float32 lands within a few
#   $10^{-7}$ of the truth here, and the finite differences (FD: ok) confirm that truth;
# - `dense2`, `norm.gain` and `norm.bias` pass: their gradients do not go through
#   $\partial/\partial h$ of the layer norm;
# - only `dense1`'s leaves fail, and the only way from the loss to `dense1` runs through the
#   layer norm's input cotangent `dh`. So the bug is in `dh`.
#
# To confirm, check the operation alone, with a fixed random cotangent $v$: the loss
# $\sum v \odot \mathrm{LN}(h)$ has leaves $h$, $\gamma$ and $\beta$:


# %%
def probe(norm):
    def loss(leaves, v):
        return jnp.sum(v * norm(leaves["h"], leaves["gain"], leaves["bias"]))

    return loss


h = x @ params["dense1"]["W"].T + params["dense1"]["b"]
leaves = {"h": h, "gain": params["norm"]["gain"], "bias": params["norm"]["bias"]}
v = jnp.asarray(rng.normal(size=h.shape), jnp.float32)
op_verdict = check_gradient(
    jax.jit(probe(layer_norm)),
    jax.jit(jax.grad(probe(make_layer_norm(forget_eps=True)))),
    leaves,
    v,
)
print(op_verdict)

# %% [markdown]
# Only `['h']` fails: the input cotangent of the custom VJP. The size fits the slip: dropping
# $\varepsilon$ scales row $i$'s `dh` by $\sqrt{(\sigma_i^2 + \varepsilon)/\sigma_i^2}$, a
# relative change of about $\varepsilon / 2\sigma_i^2$:

# %%
row_variance = np.var(np.asarray(h, np.float64), axis=-1)
scale_error = np.sqrt((row_variance + EPS) / row_variance) - 1
print(f"row variances of h: {row_variance.min():.3f} .. {row_variance.max():.3f}")
print(f"relative change of dh per row: {scale_error.min():.1e} .. {scale_error.max():.1e}")


# %% [markdown]
# ## What a fixed tolerance says
#
# `jax.test_util.check_grads` compares reverse mode with finite differences at a fixed
# float32 tolerance. It passes both versions: the slip is far below its tolerance.


# %%
def passes_check_grads(loss):
    try:
        check_grads(loss, (params, x, y), order=1, modes=["rev"])
    except AssertionError:
        return False
    return True


fixed_tolerance = {
    "right": passes_check_grads(classifier_loss(make_layer_norm())),
    "forgot ε": passes_check_grads(classifier_loss(make_layer_norm(forget_eps=True))),
}
print("check_grads passes:", fixed_tolerance)


# %% [markdown]
# ## Summary
#
# The test suite (`tests/test_notebooks.py`) runs this notebook again and recomputes the
# relative errors from a float64 `jax.grad` of its own.

# %%
checks = {"right": right_verdict, "forgot ε": slipped_verdict, "the operation alone": op_verdict}
for name, checked in checks.items():
    failing = [row.name for row in checked.rows if not row.ok]
    print(f"{name:>19}: ok = {checked.ok!s:<5}  failing leaves: {', '.join(failing) or 'none'}")
print("check_grads passes:", fixed_tolerance)
