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
# # 04 · Auditing a model's custom rules with `audit`
#
# A real model holds several hand-written rules: a fused layer norm, a numerically stable
# loss, a quantiser. When its gradient is wrong, a whole-model check says *that* it is wrong
# (if it notices at all); it does not say *which* rule. `audit` does:
# ```python
# report = nc.audit(loss, params, x, labels, skip=("quantise",))
# ```
# finds every `jax.custom_vjp` / `jax.custom_jvp` rule that `loss(params, x, labels)`
# reaches (inside `jit`, `vmap`, `scan`, `cond`, `remat`), and judges each one against
# autodiff of its own primal (`f.fun`) with `check_custom_rule`, at the values the program
# hands it, with the verifier's calibrated tolerance ([how agreement is
# judged](../docs/agreement.md)).

# %%
import jax
import jax.numpy as jnp
import numpy as np
from jax.test_util import check_grads

import netcheck as nc

# %% [markdown]
# ## A model with three custom rules
#
# A classifier: inputs quantised to a grid of $1/16$ (as a sensor or an 8-bit pipeline
# delivers them), a dense layer, a layer norm, tanh, a dense layer, and softmax
# cross-entropy with label smoothing. Each of three operations has a hand-written rule:
#
# - **`quantise`**, a straight-through estimator: the forward pass rounds, the backward pass
#   passes the cotangent through unchanged. The derivative of rounding is 0 wherever it
#   exists, so this rule is *deliberately* not the derivative of its primal: it lets
#   gradients reach the inputs (for saliency maps or attacks through the quantiser).
# - **`layer_norm`**, $\gamma \odot (h - \mu) / \sqrt{\sigma^2 + \varepsilon} + \beta$ per
#   row, with the backward pass of notebook 03.
# - **`smoothed_cross_entropy`**, $-\sum_k \tilde y_k \log \mathrm{softmax}(z)_k$ with
#   smoothed labels $\tilde y = (1 - \alpha) y + \alpha / K$ over $K$ classes, computed from
#   the logits as one stable rule: $\partial/\partial z = \mathrm{softmax}(z) \sum_k \tilde
#   y_k - \tilde y$, $\ \partial/\partial y = -(1 - \alpha) \log \mathrm{softmax}(z)$.

# %%
EPS = 1e-5
SMOOTHING = 0.1


@jax.custom_vjp
def quantise(x):
    return jnp.round(x)


quantise.defvjp(lambda x: (jnp.round(x), None), lambda _, g: (g,))  # straight through


def layer_norm_primal(h, gain, bias):
    mean = h.mean(axis=-1, keepdims=True)
    variance = ((h - mean) ** 2).mean(axis=-1, keepdims=True)
    return gain * (h - mean) / jnp.sqrt(variance + EPS) + bias


@jax.custom_vjp
def layer_norm(h, gain, bias):
    return layer_norm_primal(h, gain, bias)


def layer_norm_forward(h, gain, bias):
    mean = h.mean(axis=-1, keepdims=True)
    variance = ((h - mean) ** 2).mean(axis=-1, keepdims=True)
    inv_std = 1 / jnp.sqrt(variance + EPS)
    x_hat = (h - mean) * inv_std
    return gain * x_hat + bias, (x_hat, inv_std, gain)


def layer_norm_backward(saved, g):
    x_hat, inv_std, gain = saved
    g_bar = g * gain
    dh = inv_std * (
        g_bar
        - g_bar.mean(axis=-1, keepdims=True)
        - x_hat * (g_bar * x_hat).mean(axis=-1, keepdims=True)
    )
    return dh, (g * x_hat).sum(axis=0), g.sum(axis=0)


layer_norm.defvjp(layer_norm_forward, layer_norm_backward)

# %% [markdown]
# The cross-entropy's backward pass carries a slip that is easy to make: label smoothing
# comes in two conventions, $\alpha/K$ on every class or $\alpha/(K-1)$ on the others, and
# the backward pass below spreads the smoothing mass over $K - 1$ classes while the forward
# pass spreads it over $K$. `make_cross_entropy(classes_in_backward)` builds the rule with
# either count, so that the right and the slipped rule share their primal.


# %%
def smoothed_labels(labels, spread_over):
    return (1 - SMOOTHING) * labels + SMOOTHING / spread_over


def cross_entropy_primal(logits, labels):
    y = smoothed_labels(labels, labels.shape[-1])
    return -jnp.sum(y * jax.nn.log_softmax(logits), axis=-1)


def make_cross_entropy(classes_in_backward):
    @jax.custom_vjp
    def smoothed_cross_entropy(logits, labels):
        return cross_entropy_primal(logits, labels)

    def forward(logits, labels):
        log_p = jax.nn.log_softmax(logits)
        y = smoothed_labels(labels, labels.shape[-1])
        return -jnp.sum(y * log_p, axis=-1), (log_p, labels)

    def backward(saved, g):
        log_p, labels = saved
        y = smoothed_labels(labels, classes_in_backward(labels.shape[-1]))  # the slip lives here
        d_logits = jnp.exp(log_p) * y.sum(axis=-1, keepdims=True) - y
        return g[:, None] * d_logits, -(1 - SMOOTHING) * g[:, None] * log_p

    smoothed_cross_entropy.defvjp(forward, backward)
    return smoothed_cross_entropy


right_cross_entropy = make_cross_entropy(lambda k: k)
slipped_cross_entropy = make_cross_entropy(lambda k: k - 1)


def make_model(cross_entropy):
    def loss(params, x, labels):
        h = (quantise(16 * x) / 16) @ params["w1"] + params["b1"]
        h = jnp.tanh(layer_norm(h, params["gain"], params["bias"]))
        logits = h @ params["w2"] + params["b2"]
        return jnp.mean(cross_entropy(logits, labels))

    return loss


rng = np.random.default_rng(0)
classes, hidden, batch = 10, 32, 64
params = {
    "w1": rng.normal(size=(8, hidden)) / 3,
    "b1": np.zeros(hidden),
    "gain": np.ones(hidden),
    "bias": np.zeros(hidden),
    "w2": rng.normal(size=(hidden, classes)) / 6,
    "b2": np.zeros(classes),
}
params = jax.tree.map(lambda leaf: jnp.asarray(leaf, jnp.float32), params)
x = jnp.asarray(rng.normal(size=(batch, 8)), jnp.float32)
labels = jnp.asarray(np.eye(classes)[rng.integers(0, classes, size=batch)], jnp.float32)

loss = jax.jit(make_model(slipped_cross_entropy))  # the model as written, slip included
print("loss:", float(loss(params, x, labels)))

# %% [markdown]
# ## What a whole-model check says
#
# `jax.test_util.check_grads` compares reverse mode with finite differences of the
# forward pass at a fixed tolerance. Differentiating with respect to the parameters, it
# passes: the slip changes every gradient by a few parts in a thousand, inside its float32
# tolerance.


# %%
def passes_check_grads(model):
    try:
        check_grads(lambda p: model(p, x, labels), (params,), order=1, modes=["rev"])
    except AssertionError:
        return False
    return True


check_grads_passes = passes_check_grads(make_model(slipped_cross_entropy))
print("check_grads passes the slipped model:", check_grads_passes)

# %% [markdown]
# ## The audit
#
# `audit` runs the program, finds its three rules and checks each where the program
# reaches it. Left in, the straight-through quantiser fails too, as it should (it is not the
# derivative of rounding), and the report says so, with a hint:

# %%
unskipped = nc.audit(loss, params, x, labels)
print(unskipped)

# %% [markdown]
# The quantiser is a surrogate on purpose, so it goes in `skip`; what is left is the slip,
# named by the rule's Python name and the line it is defined on, with the argument it
# spoils (`args[0]`, the logits: the labels' gradient does not involve the smoothing count):

# %%
report = nc.audit(loss, params, x, labels, skip=("quantise",))
print(report)

# %% [markdown]
# Every rule was checked at the values the model gives it (the `values` column; in a
# notebook, "defined at" and "called at" name the cells' files). The failing rule's own
# verdict shows where and by how much: the formula part runs the rule in float64 on the
# same point and finds it wrong by about $10^{12}$ times its float64 tolerance; the
# precision part, float32 against autodiff's own float32 error, by a few thousand times.
# Calibrated to autodiff's own error, even float32 sees what `check_grads`' fixed
# tolerance does not.

# %%
slipped = report["smoothed_cross_entropy"]
print(slipped.verdict)

# %% [markdown]
# The size fits the slip: the backward pass's labels are off by
# $\delta = \alpha/(K-1) - \alpha/K$ on every class, so $\partial/\partial z$ is off by
# $g\,\delta\,(K\,\mathrm{softmax}(z) - 1)$ per row, a relative change of a few $10^{-3}$.
# The fixed rule passes, and so does the whole audit:

# %%
delta = SMOOTHING / (classes - 1) - SMOOTHING / classes
fixed = nc.audit(jax.jit(make_model(right_cross_entropy)), params, x, labels, skip=("quantise",))
print(f"δ = {delta:.3g}")
print(fixed)

# %% [markdown]
# ## Summary
#
# The test suite (`tests/test_notebooks.py`) runs this notebook again and recomputes the
# slip's effect on the model's gradient from a float64 `jax.grad` of its own.

# %%
statuses = {rule.name: rule.status for rule in report.rules}
slipped_gradient = jax.grad(loss)(params, x, labels)
print("check_grads passes the slipped model:", check_grads_passes)
print("audit, quantiser skipped:", statuses)
print("audit of the fixed model ok:", fixed.ok)
