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
# # 01 · Backpropagation by hand, step by step
#
# [The lecture](../docs/lecture.md) builds a deep network out of logistic regressions and derives
# backpropagation in a few steps. This notebook walks those steps in code, section by section
# of the lecture page, with numbers you can check by hand:
#
# 1. the perceptron as logistic regression;
# 2. the notation $w^\ell_{j,k}$ and the vectorised forward pass
#    $\hat y = g(W_3\,g(W_2\,g(W_1 x)))$;
# 3. the learning problem and the chain rule;
# 4. the literal $G(\ell)$ matrices and the $\delta$ recursion, next to netcheck's vectorised form;
# 5. verification against `jax.grad`, layer by layer;
# 6. the sign printed on the original slide, $(y - \hat y)$, caught by the verifier, and why;
# 7. second order: the Hessian-vector product by the same recursion under the R-operator.
#
# We work in float64, so "agree" below means agreement to round-off (about $10^{-16}$).

# %%
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import netcheck as nc
from netcheck import verify
from netcheck.bench.mutants import MUTANTS

# float64 throughout: exact agreements then show as ~1e-16 instead of float32's ~1e-7.
jax.config.update("jax_enable_x64", True)
np.set_printoptions(precision=5, suppress=True)

# %% [markdown]
# ## 1 · The perceptron is logistic regression
#
# ([Lecture §1](../docs/lecture.md#1-the-perceptron).)
# One node: $\hat y(x) = \sigma(w^\top x + b)$ with $\sigma(z) = 1/(1 + e^{-z})$. With the
# binary cross-entropy $\mathcal L(y, \hat y) = -y\log\hat y - (1-y)\log(1-\hat y)$ the
# gradient is the familiar
# $$\frac{\partial \mathcal L}{\partial w} = (\hat y - y)\,x, \qquad
#   \frac{\partial \mathcal L}{\partial b} = \hat y - y .$$
# In netcheck this model is a network with no hidden layer: `sizes=(2, 1)`, a sigmoid output
# and the binary cross-entropy loss.

# %%
perceptron = nc.Network(sizes=(2, 1), output_activation="sigmoid", loss="binary_cross_entropy")
w = np.array([[1.5, -0.5]])  # (n_1, n_0) = (1, 2)
b = np.array([0.25])
lr_params = [{"W": jnp.asarray(w), "b": jnp.asarray(b)}]
x_lr = np.array([[0.5, 1.0], [-1.0, 2.0], [2.0, 0.0]])  # three examples, one per row
y_lr = np.array([[1.0], [0.0], [1.0]])


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


y_hat_by_hand = sigmoid(x_lr @ w.T + b)
print("ŷ by netcheck:", np.asarray(perceptron.forward(lr_params, x_lr)).ravel())
print("ŷ by hand:    ", y_hat_by_hand.ravel())

# The batch loss is the mean over examples, so the gradient is the mean of (ŷ_i - y_i) x_i.
grad = perceptron.manual_grad(lr_params, x_lr, y_lr)
print("∂L/∂w by netcheck:", np.asarray(grad[0]["W"]).ravel(), " ∂L/∂b:", np.asarray(grad[0]["b"]))
print(
    "∂L/∂w by hand:    ",
    ((y_hat_by_hand - y_lr) * x_lr).mean(axis=0),
    " ∂L/∂b:",
    (y_hat_by_hand - y_lr).mean(axis=0),
)

# %% [markdown]
# The derivative of the sigmoid will appear in every $G(\ell)$ below. It needs only the forward
# output: $\sigma'(z) = \sigma(z)\,(1 - \sigma(z))$, which is how netcheck computes it.

# %%
z_grid = np.linspace(-6, 6, 200)
fig, ax = plt.subplots(figsize=(5, 2.6), dpi=80)
ax.plot(z_grid, sigmoid(z_grid), label=r"$\sigma(z)$")
ax.plot(z_grid, sigmoid(z_grid) * (1 - sigmoid(z_grid)), label=r"$\sigma'(z) = \sigma(1-\sigma)$")
ax.set_xlabel("z")
ax.legend()
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# ## 2 · Larger networks and how the weights are named
#
# ([Lecture §2](../docs/lecture.md#2-many-layers-and-how-the-weights-are-named).)
# $w^\ell_{j,k}$ connects node $k$ in layer $\ell-1$ to node $j$ in layer $\ell$; the input is
# layer 0. All weights of layer $\ell$ form the matrix $W_\ell$ with $W_\ell[j, k] = w^\ell_{j,k}$,
# of shape $(n_\ell, n_{\ell-1})$. netcheck keeps this layout: `params[ℓ-1]["W"]` is $W_\ell$
# (Python counts from 0, the lecture from 1).
#
# The lecture's example network has two hidden layers and three weight matrices, no biases,
# a sigmoid $g$ everywhere, and the squared error $\mathcal L(y, \theta) = \tfrac12 (y - \theta)^2$.
# `bias=False` reproduces it exactly. The weights are written out so every number below can be
# checked by hand.

# %%
net = nc.Network(
    sizes=(2, 3, 3, 1),
    activation="sigmoid",
    output_activation="sigmoid",
    loss="squared_error",
    bias=False,
)
W1 = np.array([[0.5, -1.0], [1.5, 0.25], [-0.75, 1.0]])
W2 = np.array([[1.0, -0.5, 0.25], [0.5, 1.25, -1.0], [-1.5, 0.75, 0.5]])
W3 = np.array([[1.25, -1.0, 0.75]])
params = [{"W": jnp.asarray(W)} for W in (W1, W2, W3)]

print("sizes (n_0, ..., n_L):", net.sizes, "  depth L =", net.depth)
for layer, weights in enumerate(params, start=1):
    print(f"W_{layer}: shape {weights['W'].shape}")
# The lecture's marked edge w^2_{3,2}: layer ℓ = 2, node j = 3, from node k = 2 of layer 1.
print("w^2_{3,2} = params[1]['W'][2, 1] =", params[2 - 1]["W"][3 - 1, 2 - 1])

# %% [markdown]
# Nudge the marked edge and only node 3 of layer 2 feels it directly: $z^2_3$ moves, $z^2_1$ and
# $z^2_2$ do not. Since $z^2_3 = \sum_k w^2_{3,k}\, a^1_k$, it moves by exactly
# $0.1 \cdot a^1_2$. (`net.forward_cache` returns every $z^\ell$ and $a^\ell$ of the forward
# pass, one row per example.)

# %%
x = np.array([1.0, -2.0])  # one example, the lecture's column vector x
y = np.array([1.0])
nudged = [dict(weights) for weights in params]
nudged[1] = {"W": params[1]["W"].at[2, 1].add(0.1)}
before = net.forward_cache(params, x[None, :])
after = net.forward_cache(nudged, x[None, :])
z2_change = after.pre_activations[1] - before.pre_activations[1]
print("change of z^2 when w^2_{3,2} += 0.1:", np.asarray(z2_change)[0])
print("0.1 * a^1_2 =                       ", 0.1 * float(before.activations[1][0, 1]))

# %% [markdown]
# ## 3 · The forward pass
#
# ([Lecture §3](../docs/lecture.md#3-the-forward-pass).)
# $$z^\ell = W_\ell\, a^{\ell-1}, \qquad a^\ell = g(z^\ell), \qquad a^0 = x,
#   \qquad \hat y(x) = a^3 = g(W_3\, g(W_2\, g(W_1 x))).$$
# (The original slide prints $z^\ell = W_\ell a^\ell$; the input of layer $\ell$ is
# $a^{\ell-1}$.)
# The one-liner, in numpy, against netcheck's forward pass:

# %%
y_hat_one_line = sigmoid(W3 @ sigmoid(W2 @ sigmoid(W1 @ x)))
y_hat_netcheck = net.forward(params, x[None, :])  # a batch of one example: shape (1, n_0)
print("ŷ = g(W3 g(W2 g(W1 x))) in numpy:", y_hat_one_line)
print("ŷ by net.forward:               ", np.asarray(y_hat_netcheck)[0])

# %% [markdown]
# netcheck feeds a whole batch at once, one example per **row**: $Z^\ell = A^{\ell-1} W_\ell^\top$
# is the lecture's $z^\ell = W_\ell a^{\ell-1}$ for every row at the same time.

# %%
rng = np.random.default_rng(0)
X = rng.normal(size=(5, 2))  # a batch of n = 5 examples
Y = rng.uniform(size=(5, 1))
column_by_column = np.stack([sigmoid(W3 @ sigmoid(W2 @ sigmoid(W1 @ x_i))) for x_i in X])
print("one example at a time:", column_by_column.ravel())
print("the batch at once:    ", np.asarray(net.forward(params, X)).ravel())

# %% [markdown]
# ## 4 · The learning problem
#
# ([Lecture §4](../docs/lecture.md#4-the-learning-problem).)
# Find $W_1, \dots, W_L$ that minimise the mean loss
# $$\frac1n \sum_{i=1}^n \mathcal L\bigl(y_i, \hat y(x_i)\bigr), \qquad
#   \hat y(x_i) = g(W_L\, g(W_{L-1} \cdots g(W_1 x_i))),$$
# by gradient descent, which needs $\nabla_W \mathcal L(y_i, \hat y(x_i))$.
# `net.mean_loss` is exactly this mean:

# %%
print("net.mean_loss:", float(net.mean_loss(params, X, Y)))
print("by hand:      ", np.mean(0.5 * (Y - column_by_column) ** 2))


# %% [markdown]
# ## 5 · The chain rule
#
# ([Lecture §5](../docs/lecture.md#5-the-chain-rule).)
# For $f = h_L \circ \cdots \circ h_1$: $Df = Dh_L \cdots Dh_1$ and
# $\nabla f = (Dh_1)^\top \cdots (Dh_L)^\top$. Our network is such a composition:
# $x \xrightarrow{W_1} z^1 \xrightarrow{g} a^1 \xrightarrow{W_2} z^2 \xrightarrow{g} a^2
#   \xrightarrow{W_3} z^3 \xrightarrow{g} \hat y \xrightarrow{\mathcal L} \mathcal L$.
# The Jacobian of $a \mapsto W a$ is $W$; that of $z \mapsto g(z)$ is the diagonal matrix
# $G(\ell) = \mathrm{diag}(g'(z^\ell_1), \dots, g'(z^\ell_{n_\ell}))$; that of
# $\hat y \mapsto \tfrac12(y - \hat y)^2$ is $(\hat y - y)^\top$. So
# $$\nabla_x \mathcal L = W_1^\top G(1)\, W_2^\top G(2)\, W_3^\top G(3)\, (\hat y - y).$$
# Below, that product of transposed Jacobians, against `jax.grad` with respect to the input:


# %%
def forward_by_hand(x):
    """z^ℓ and a^ℓ of the lecture's network for one example, in numpy."""
    a, z = [x], []
    for W in (W1, W2, W3):
        z.append(W @ a[-1])
        a.append(sigmoid(z[-1]))
    return z, a


z, a = forward_by_hand(x)
G = [np.diag(a_l * (1 - a_l)) for a_l in a[1:]]  # G(ℓ) = diag(g'(z^ℓ)), with g' = a(1 - a)
grad_x_chain_rule = W1.T @ G[0] @ W2.T @ G[1] @ W3.T @ G[2] @ (a[3] - y)
grad_x_jax = jax.grad(lambda x_: net.mean_loss(params, x_[None, :], y[None, :]))(jnp.asarray(x))
print("∇_x L by the chain rule:", grad_x_chain_rule)
print("∇_x L by jax.grad:      ", np.asarray(grad_x_jax))

# %% [markdown]
# ## 6 · The matrices G and the trick
#
# ([Lecture §6](../docs/lecture.md#6-local-derivatives-the-matrices-g).)
# Feed $x$ through the network, form $G(\ell) = \mathrm{diag}(g'(z^\ell))$ for
# $\ell = 1, 2, 3$, and use the trick
# $$\frac{\partial \mathcal L}{\partial w^\ell_{j,k}}
#   = \frac{\partial \mathcal L}{\partial z^\ell_j}\,\frac{\partial z^\ell_j}{\partial w^\ell_{j,k}}
#   = \delta^\ell_j\, a^{\ell-1}_k,
#   \qquad \delta^\ell := \frac{\partial \mathcal L}{\partial z^\ell}.$$
# Here are the three $G(\ell)$ of our example, as literal matrices:

# %%
for layer, G_l in enumerate(G, start=1):
    print(f"G({layer}) =\n{G_l}\n")

# %% [markdown]
# Reading the chain rule from the top down gives
# $$\delta^3 = G(3)(\hat y - y), \qquad \delta^2 = G(2)\,W_3^\top G(3)(\hat y - y), \qquad
#   \delta^1 = G(1)\,W_2^\top G(2)\,W_3^\top G(3)(\hat y - y).$$
#
# **About the sign** ([lecture §8](../docs/lecture.md#8-the-sign-on-the-slide)). The
# original slide prints $(y - \hat y)$. For $\mathcal L = \tfrac12 (y - \hat y)^2$ the
# derivative is $\partial\mathcal L / \partial \hat y = -(y - \hat y) = \hat y - y$, so the
# slide's vector is the *negative* gradient, the direction gradient descent steps in.
# netcheck computes the gradient itself, $\delta^\ell = \partial\mathcal L/\partial z^\ell$,
# so it uses $(\hat y - y)$. We come back to this at the end.
#
# Next: these literal products in numpy, beside netcheck's vectorised recursion
# `net.manual_deltas`, which never builds $G(\ell)$; it multiplies rows elementwise,
# $\Delta^\ell = g'(Z^\ell) \odot (\Delta^{\ell+1} W_{\ell+1})$.

# %%
delta3 = G[2] @ (a[3] - y)
delta2 = G[1] @ W3.T @ G[2] @ (a[3] - y)
delta1 = G[0] @ W2.T @ G[1] @ W3.T @ G[2] @ (a[3] - y)
literal_deltas = [delta1, delta2, delta3]
vectorised_deltas = net.manual_deltas(params, x[None, :], y[None, :])
for layer in (3, 2, 1):
    print(f"δ^{layer}  literal: {literal_deltas[layer - 1]}")
    print(f"     net.manual_deltas: {np.asarray(vectorised_deltas[layer - 1])[0]}")


# %% [markdown]
# ## 7 · Backpropagation
#
# ([Lecture §7](../docs/lecture.md#7-backpropagation-the-delta-recursion).)
# For a network with layers $1..L$:
#
# 1. feed $x$ through the network, computing $a^1, \dots, a^L$ and $\hat y(x)$;
# 2. $G(\ell) = \mathrm{diag}(g'(z^\ell_1), \dots, g'(z^\ell_{n_\ell}))$ for $\ell = 1, \dots, L$;
# 3. $\delta^L = G(L)(\hat y - y)$ (the original slide: $(y - \hat y)$, see above);
# 4. $\delta^\ell = G(\ell)\, W_{\ell+1}^\top \delta^{\ell+1}$ for $\ell = L-1, \dots, 1$;
# 5. $\partial \mathcal L/\partial w^\ell_{j,k} = a^{\ell-1}_k\, \delta^\ell_j$, i.e. the outer
#    product $\partial \mathcal L/\partial W_\ell = \delta^\ell\, (a^{\ell-1})^\top$.
#
# Step 4 is the recursion that makes it fast: each $\delta^\ell$ reuses $\delta^{\ell+1}$
# instead of recomputing the whole product. Steps 1-5 in numpy, for one example:


# %%
def backprop_by_hand(x, y):
    """Steps (1)-(5) for one example; returns [∂L/∂W_1, ∂L/∂W_2, ∂L/∂W_3]."""
    _, a = forward_by_hand(x)  # (1)
    G = [np.diag(a_l * (1 - a_l)) for a_l in a[1:]]  # (2)
    deltas = [G[-1] @ (a[-1] - y)]  # (3)
    for W_next, G_l in zip((W3, W2), (G[1], G[0]), strict=True):  # (4) ℓ = 2, 1
        deltas.insert(0, G_l @ W_next.T @ deltas[0])
    return [np.outer(d, a_prev) for d, a_prev in zip(deltas, a[:-1], strict=True)]  # (5)


by_hand = backprop_by_hand(x, y)
by_netcheck = net.manual_grad(params, x[None, :], y[None, :])
for layer in (1, 2, 3):
    print(f"∂L/∂W_{layer} by hand:\n{by_hand[layer - 1]}")
    print(f"net.manual_grad:\n{np.asarray(by_netcheck[layer - 1]['W'])}\n")


# %% [markdown]
# ### Three implementations and the reference, on a batch
#
# For a batch of $n$ examples the gradient of the mean loss is the mean of the per-example
# gradients. Three implementations of the recursion, and the reference:
#
# - `nc.literal_grad`: the lecture's steps as written, one example at a time with $G(\ell)$ as
#   matrices, then the mean;
# - `net.manual_grad`: the same recursion, batched and jit-compiled,
#   $\partial\mathcal L/\partial W_\ell = (\Delta^\ell)^\top A^{\ell-1}/n$;
# - `backprop_by_hand`: the numpy function above, averaged over the batch;
# - `net.autodiff_grad`: `jax.grad` of the very same `net.mean_loss`, the reference.


# %%
def max_error(grads, reference):
    return max(
        float(np.abs(np.asarray(g["W"]) - np.asarray(r["W"])).max())
        for g, r in zip(grads, reference, strict=True)
    )


reference = net.autodiff_grad(params, X, Y)
per_example = [backprop_by_hand(x_i, y_i) for x_i, y_i in zip(X, Y, strict=True)]
numpy_mean = [
    {"W": np.mean([grads[layer] for grads in per_example], axis=0)} for layer in range(net.depth)
]
batch_grad = net.manual_grad(params, X, Y)
errors = {
    "net.manual_grad": max_error(batch_grad, reference),
    "nc.literal_grad": max_error(
        nc.literal_grad(net, params, jnp.asarray(X), jnp.asarray(Y)), reference
    ),
    "backprop_by_hand": max_error(numpy_mean, reference),
}
for name, error in errors.items():
    print(f"max |{name} - jax.grad| = {error:.1e}")


# %% [markdown]
# A fourth, fully independent witness: central finite differences,
# $\partial \mathcal L/\partial w \approx (\mathcal L(w + h) - \mathcal L(w - h)) / 2h$,
# on the red edge $w^2_{3,2}$.


# %%
def loss_at(w232):
    W2_moved = W2.copy()
    W2_moved[2, 1] = w232
    y_hat = sigmoid(W3 @ sigmoid(W2_moved @ sigmoid(W1 @ X.T)))
    return np.mean(0.5 * (Y.T - y_hat) ** 2)


h = 1e-6
finite_difference = (loss_at(W2[2, 1] + h) - loss_at(W2[2, 1] - h)) / (2 * h)
print("∂L/∂w^2_{3,2} by finite differences:", finite_difference)
print("∂L/∂w^2_{3,2} by net.manual_grad:   ", float(batch_grad[1]["W"][2, 1]))

# %% [markdown]
# ## Verification against jax.grad, layer by layer
#
# `verify` judges the manual gradient the way a careful person would: the truth is
# `jax.grad` in float64; the tolerance of each quantity is a small multiple of the error
# that `jax.grad` itself makes at the working precision (its *noise floor*), not a fixed
# number; a float64 finite-difference witness (the column FD) checks the truth without
# autodiff. Each layer $\ell$ gets a row for $\delta^\ell$ and one for
# $\partial\mathcal L/\partial W_\ell$, from $L$ down to 1: a bug in $\delta^\ell$ spoils every
# layer below it, so the first bad layer from the top is where the bug sits.

# %%
verdict = verify(net, params, X, Y)
print(verdict)

# %% [markdown]
# The same judgement works at any precision. In float32 the tolerance grows with float32's
# round-off, because autodiff's own error does; here a wider network with a softmax output
# (whose $G(L) = \mathrm{diag}(s) - s s^\top$ is not diagonal) and biases:

# %%
wide = nc.Network(
    sizes=(4, 8, 8, 3),
    activation="tanh",
    output_activation="softmax",
    loss="softmax_cross_entropy",
)
wide_params = wide.init(jax.random.key(0), dtype=jnp.float32)
x_wide = rng.normal(size=(16, 4)).astype(np.float32)
y_wide = np.eye(3, dtype=np.float32)[rng.integers(0, 3, size=16)]  # one-hot targets
wide_verdict = verify(wide, wide_params, x_wide, y_wide)
print(wide_verdict)


# %% [markdown]
# ## 8 · The sign on the slide, caught
#
# ([Lecture §8](../docs/lecture.md#8-the-sign-on-the-slide).) Step (3) on the original slide
# reads $\delta^L = G(L)(y - \hat y)$. Here is that algorithm exactly as printed, batched
# over rows like netcheck's, and handed to the verifier as the gradient under test:


# %%
def slide_forward(params, x):
    a = [x]
    for weights in params:
        a.append(jax.nn.sigmoid(a[-1] @ weights["W"].T))
    return a


def slide_deltas(net, params, x, y):
    """Steps (2)-(4) as printed: δ^L = G(L)(y - ŷ), δ^ℓ = G(ℓ) W_{ℓ+1}ᵀ δ^{ℓ+1}."""
    a = slide_forward(params, x)
    deltas = [a[-1] * (1 - a[-1]) * (y - a[-1])]  # the slide's sign
    for layer in range(net.depth - 1, 0, -1):
        deltas.insert(0, a[layer] * (1 - a[layer]) * (deltas[0] @ params[layer]["W"]))
    return deltas


def slide_grad(net, params, x, y):
    """Step (5), averaged over the batch: ∂L/∂W_ℓ = (Δ^ℓ)ᵀ A^{ℓ-1} / n."""
    a = slide_forward(params, x)
    deltas = slide_deltas(net, params, x, y)
    return [{"W": d.T @ a_prev / x.shape[0]} for d, a_prev in zip(deltas, a[:-1], strict=True)]


slide_verdict = verify(net, params, X, Y, grad_fn=slide_grad, deltas_fn=slide_deltas)
print(slide_verdict)


# %% [markdown]
# **Why.** For $\mathcal L = \tfrac12 (y - \hat y)^2$, $\partial \mathcal L/\partial \hat y
# = \hat y - y$, so $G(L)(y - \hat y) = -\delta^L$ exactly. The recursion (4) and step (5)
# are linear in $\delta$, so the minus sign travels down unchanged: every row has cosine
# $-1$ and relative error 2 (the distance between $g$ and $-g$ is $2\lVert g\rVert$). The
# verifier reads from the top, finds $\delta^L$ wrong first, and names layer $L = 3$.
#
# The slide is not wrong so much as using another convention: $(y - \hat y)$ gives the
# negative gradient, the direction to *step in*, $W \leftarrow W + \eta\,\delta\,a^\top$.
# Hand it to an optimizer that subtracts the gradient (optax, or any textbook
# $W \leftarrow W - \eta \nabla$) and training climbs the loss instead of descending:


# %%
def loss_after_step(grads, learning_rate=1.0):
    stepped = [{"W": w["W"] - learning_rate * g["W"]} for w, g in zip(params, grads, strict=True)]
    return float(net.mean_loss(stepped, X, Y))


steps = {
    "no step": float(net.mean_loss(params, X, Y)),
    "step with netcheck's δ": loss_after_step(net.manual_grad(params, X, Y)),
    "step with the slide's δ": loss_after_step(slide_grad(net, params, jnp.asarray(X), Y)),
}
for name, value in steps.items():
    print(f"mean loss, {name:>24}: {value:.6f}")

# %% [markdown]
# ### The other classic mistakes
#
# netcheck keeps the slide's sign among its *planted bugs*: small variants of its own
# backprop, each a mistake people make when they code the lecture (`netcheck verify --mutants`
# runs them all on many networks). Those that apply to our little network, each judged by
# `verify` and localised to the layer where it sits:

# %%
caught = {}
for mutant in MUTANTS.values():
    if not mutant.applies(net, len(X)):
        continue  # e.g. "W not transposed" needs a square layer, softmax bugs a softmax
    mutant_verdict = verify(net, params, X, Y, grad_fn=mutant.grad, deltas_fn=mutant.deltas)
    caught[mutant.name] = {
        "caught": not mutant_verdict.ok,
        "bug in layer": mutant.expected_layer(net),
        "verdict names layer": mutant_verdict.first_bad_layer,
    }
    print(
        f"{mutant.description:<64}  caught: {not mutant_verdict.ok!s:<5}  "
        f"bug in layer {mutant.expected_layer(net)}, "
        f"named layer {mutant_verdict.first_bad_layer}"
    )

# %% [markdown]
# ## Second order: the Hessian-vector product by the same recursion
#
# Anyone who differentiates through a gradient (Newton and Gauss-Newton steps, meta-learning,
# the curvature along a direction) needs $H v$, the Hessian of the mean loss
# $E(\theta)$ times a direction $v$. $H$ itself has (number of weights)$^2$ entries; $H v$
# costs about one more forward and one more backward pass, because it is the derivative of
# what backprop already computes.
#
# Write $v$ like the parameters, $V_\ell$ beside $W_\ell$, and for anything $f$ that the
# forward pass or the $\delta$ recursion computes let
# $\mathcal R\{f\} = \frac{d}{dt} f(\theta + t v)\big|_{t=0}$ (Pearlmutter's R-operator).
# $\mathcal R\{\nabla E\} = H v$. $\mathcal R$ is a derivative, so linearity, the product rule
# and the chain rule carry it through steps 1-5 line by line. On rows (one example per row,
# $\odot$ elementwise, no biases as in this network):
#
# **Step 1**, the forward pass, starting from $\mathcal R\{a^0\} = \mathcal R\{x\} = 0$ (the
# data do not move with $\theta$):
#
# $$z^\ell = a^{\ell-1} W_\ell^\top \;\Rightarrow\;
#   \mathcal R\{z^\ell\} = \mathcal R\{a^{\ell-1}\}\, W_\ell^\top + a^{\ell-1} V_\ell^\top,$$
#
# $$a^\ell = g(z^\ell) \;\Rightarrow\;
#   \mathcal R\{a^\ell\} = g'(z^\ell) \odot \mathcal R\{z^\ell\}.$$
#
# **Step 3**, the output, $\delta^L = g'(z^L) \odot \partial\mathcal L/\partial\hat y$. Both
# factors move: $g'(z^L)$ through $z^L$, which brings in the **second derivative** $g''$, and
# $\partial\mathcal L/\partial\hat y$ through $\hat y = a^L$, which brings in the loss's
# curvature ($\partial^2\mathcal L/\partial\hat y^2 = 1$ for $\tfrac12(y-\hat y)^2$):
#
# $$\mathcal R\{\delta^L\} = g''(z^L) \odot \mathcal R\{z^L\}
#   \odot \frac{\partial\mathcal L}{\partial\hat y}
#   + g'(z^L) \odot \frac{\partial^2\mathcal L}{\partial\hat y^2}\,\mathcal R\{a^L\}.$$
#
# **Step 4**, the recursion $\delta^\ell = g'(z^\ell) \odot e^\ell$ with
# $e^\ell = \delta^{\ell+1} W_{\ell+1}$. Three things move: $g'(z^\ell)$, $\delta^{\ell+1}$ and
# $W_{\ell+1}$:
#
# $$\mathcal R\{\delta^\ell\} = g''(z^\ell) \odot \mathcal R\{z^\ell\} \odot e^\ell
#   + g'(z^\ell) \odot \big(\mathcal R\{\delta^{\ell+1}\}\, W_{\ell+1}
#   + \delta^{\ell+1} V_{\ell+1}\big).$$
#
# **Step 5**, the gradient of the batch mean,
# $\partial E/\partial W_\ell = (\Delta^\ell)^\top A^{\ell-1}/n$, by the product rule:
#
# $$\mathcal R\{\partial E/\partial W_\ell\} = \big(\mathcal R\{\Delta^\ell\}^\top A^{\ell-1}
#   + (\Delta^\ell)^\top \mathcal R\{A^{\ell-1}\}\big)/n.$$
#
# Each activation therefore needs $g''$ beside $g'$. For the sigmoid, $g' = a(1-a)$ and
# $g'' = g'\,(1 - 2a)$; netcheck keeps both, hand-written, on each activation
# (`nc.ACTIVATIONS["sigmoid"].derivative` and `.second_derivative`), and the loss keeps its
# curvature. In `netcheck/nn/hvp.py`, which calls no `jax.grad`, `jvp`, `vjp` or `hessian`:
#
# - step 1 under $\mathcal R$: `forward_tangents` ($\mathcal R\{z^\ell\}$, and
#   $\mathcal R\{a^\ell\}$ by `activation_tangent`);
# - step 3 under $\mathcal R$: `output_delta_tangent`, the sum of `output_jacobian_tangent`
#   (the $g''$ term) and `loss_curvature_tangent` (the loss's curvature);
# - step 4 under $\mathcal R$: `delta_tangent_step`, run from $L-1$ down to 1 by
#   `backpropagate_tangents`;
# - step 5 under $\mathcal R$: `layer_gradient_tangents`, which gives $H v$;
# - all of it, jit-compiled: `net.manual_hvp(params, x, y, v)`.
#
# The derivation in numpy, on the batch of section 4, beside `net.manual_hvp`:


# %%
def hvp_by_hand(weights, directions, x, y):
    """Steps 1-5 under R on rows; returns [R{∂E/∂W_1}, R{∂E/∂W_2}, R{∂E/∂W_3}] = H v."""
    n = x.shape[0]
    a, r_z, r_a = [x], [], [np.zeros_like(x)]  # R{a^0} = 0
    for W, V in zip(weights, directions, strict=True):  # step 1 and its R
        r_z.append(r_a[-1] @ W.T + a[-1] @ V.T)
        a.append(sigmoid(a[-1] @ W.T))
        r_a.append(a[-1] * (1 - a[-1]) * r_z[-1])
    g1 = [a_l * (1 - a_l) for a_l in a[1:]]  # g'(z^ℓ)
    g2 = [g * (1 - 2 * a_l) for g, a_l in zip(g1, a[1:], strict=True)]  # g''(z^ℓ)
    residual = (a[-1] - y) / n  # ∂E/∂ŷ of the batch mean
    deltas = [g1[-1] * residual]  # step 3
    r_deltas = [g2[-1] * r_z[-1] * residual + g1[-1] * r_a[-1] / n]  # ... and its R
    for layer in range(len(weights) - 1, 0, -1):  # step 4 and its R, ℓ = L-1, ..., 1
        W_next, V_next = weights[layer], directions[layer]
        e = deltas[0] @ W_next
        r_deltas.insert(
            0,
            g2[layer - 1] * r_z[layer - 1] * e
            + g1[layer - 1] * (r_deltas[0] @ W_next + deltas[0] @ V_next),
        )
        deltas.insert(0, g1[layer - 1] * e)
    return [  # step 5 under R
        r_d.T @ a_prev + d.T @ r_a_prev
        for d, r_d, a_prev, r_a_prev in zip(deltas, r_deltas, a[:-1], r_a[:-1], strict=True)
    ]


direction = [rng.normal(size=W.shape) for W in (W1, W2, W3)]
v = [{"W": jnp.asarray(V)} for V in direction]
hvp_numpy = [{"W": h} for h in hvp_by_hand([W1, W2, W3], direction, X, Y)]
hvp_netcheck = net.manual_hvp(params, X, Y, v)
# The reference: forward-over-reverse autodiff of the same mean loss.
_, hvp_autodiff = jax.jvp(jax.grad(lambda p: net.mean_loss(p, X, Y)), (params,), (v,))
# And a witness without autodiff: central differences of the gradient along v.
fd_step = 1e-5
up, down = (
    net.manual_grad(jax.tree.map(lambda w, d, s=sign: w + s * fd_step * d, params, v), X, Y)
    for sign in (1, -1)
)
hvp_differences = jax.tree.map(lambda u, d: (u - d) / (2 * fd_step), up, down)
hvp_errors = {
    "hvp_by_hand": max_error(hvp_numpy, hvp_autodiff),
    "net.manual_hvp": max_error(hvp_netcheck, hvp_autodiff),
    "finite differences": max_error(hvp_differences, hvp_autodiff),
}
for layer in (1, 2, 3):
    print(f"(H v) for W_{layer}, net.manual_hvp:\n{np.asarray(hvp_netcheck[layer - 1]['W'])}\n")
for name, error in hvp_errors.items():
    print(f"max |{name} - jax.jvp(jax.grad)| = {error:.1e}")

# %% [markdown]
# `verify(..., order=2)` judges `net.manual_hvp` the way it judges the gradient: against
# `jax.jvp(jax.grad(...))` in float64 along random directions, with a tolerance calibrated
# on autodiff's own round-off, layer by layer. Here in float32, on the network of this
# section:

# %%
params32 = [{"W": jnp.asarray(W, jnp.float32)} for W in (W1, W2, W3)]
hvp_verdict = verify(net, params32, X.astype(np.float32), Y.astype(np.float32), order=2)
print(hvp_verdict)

# %% [markdown]
# ## Summary
#
# The test suite (`tests/test_notebooks.py`) runs this notebook again and checks its numbers
# against finite differences and numpy computations of its own.

# %%
print(f"largest |net.manual_grad - jax.grad|: {errors['net.manual_grad']:.1e} (float64)")
print(f"verify, float64 and float32: {verdict.ok}, {wide_verdict.ok}")
print(f"the slide's sign: caught at layer {slide_verdict.first_bad_layer}")
named = sum(
    row["caught"] and row["verdict names layer"] == row["bug in layer"] for row in caught.values()
)
print(f"planted bugs caught at their own layer: {named} of {len(caught)}")
print(f"largest |net.manual_hvp - jax.jvp(jax.grad)|: {hvp_errors['net.manual_hvp']:.1e}")
print(f"verify(order=2), float32: {hvp_verdict.ok}")
