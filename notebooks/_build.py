"""Build netcheck's notebooks from plain text and execute them, so they carry their outputs.

Each notebook's source is one string below, in cells separated by marker lines:

    # %% [markdown]          a markdown cell (plain markdown, LaTeX between $...$)
    # %%                     a code cell
    # %% tags=results        a code cell tagged "results": it prints, as JSON, the
                             notebook's key numbers, which tests/test_notebooks.py reads

Usage (from the repository root)::

    python notebooks/_build.py              # rebuild and execute all notebooks
    python notebooks/_build.py 02           # only notebooks whose name starts with 02
    python notebooks/_build.py --no-execute # write them without outputs

The notebooks import only netcheck's public API, numpy, matplotlib, jax and optax.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from netcheck._io import write_bytes_atomic

HERE = Path(__file__).resolve().parent
KERNEL_NAME = "python3"
TIMEOUT_S = 300
"""Per-cell limit; each notebook as a whole runs in well under a minute on a CPU."""

_MARKER = re.compile(r"^# %%(?: \[(?P<kind>markdown)\])?(?: tags=(?P<tags>[\w,]+))?\s*$")


def parse_cells(source: str) -> list[nbformat.NotebookNode]:
    """Split ``source`` at its ``# %%`` marker lines into notebook cells.

    Args:
        source: text whose first non-blank line is a marker.

    Returns:
        The cells, in order, with surrounding blank lines stripped.

    Raises:
        ValueError: text before the first marker, or an empty cell.
    """
    cells: list[nbformat.NotebookNode] = []
    kind: str | None = None
    tags: list[str] = []
    lines: list[str] = []

    def flush() -> None:
        if kind is None:
            if "".join(lines).strip():
                raise ValueError(f"text before the first '# %%' marker: {lines[:2]!r}")
            return
        text = "\n".join(lines).strip("\n")
        if not text.strip():
            raise ValueError(f"empty {kind} cell after cell {len(cells)}")
        if kind == "markdown":
            cells.append(nbformat.v4.new_markdown_cell(text))
        else:
            cell = nbformat.v4.new_code_cell(text)
            if tags:
                cell.metadata["tags"] = tags
            cells.append(cell)

    for line in source.splitlines():
        match = _MARKER.match(line)
        if match is None:
            lines.append(line)
            continue
        flush()
        kind = "markdown" if match["kind"] else "code"
        tags = match["tags"].split(",") if match["tags"] else []
        lines = []
    flush()
    return cells


def build(source: str) -> nbformat.NotebookNode:
    """A version-4 notebook with the cells of ``source`` and a python3 kernel."""
    notebook = nbformat.v4.new_notebook(cells=parse_cells(source))
    notebook.metadata["kernelspec"] = {
        "name": KERNEL_NAME,
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    notebook.metadata["language_info"] = {"name": "python"}
    return notebook


def execute(notebook: nbformat.NotebookNode, cwd: Path = HERE) -> nbformat.NotebookNode:
    """Run every cell of ``notebook`` top to bottom in a fresh kernel, in place.

    jupyter_client starts a kernel spec whose command is ``python`` with ``sys.executable``,
    so the kernel runs in this very environment (the one where netcheck is installed).

    Raises:
        nbclient.exceptions.CellExecutionError: a cell raised.
    """
    client = NotebookClient(
        notebook,
        timeout=TIMEOUT_S,
        kernel_name=KERNEL_NAME,
        resources={"metadata": {"path": str(cwd)}},
        record_timing=False,  # no timestamps in the committed files: rebuilds diff cleanly
    )
    client.execute()
    return notebook


def write(notebook: nbformat.NotebookNode, path: Path) -> None:
    """Validate ``notebook`` and write it to ``path`` atomically."""
    nbformat.validate(notebook)
    write_bytes_atomic(path, (nbformat.writes(notebook) + "\n").encode())
    path.chmod(0o644)  # the temporary file behind the atomic write is private (0600)


# ---------------------------------------------------------------------------------------
# 01: backpropagation by hand, slide by slide
# ---------------------------------------------------------------------------------------

NB01 = r'''
# %% [markdown]
# 01 · Backpropagation by hand, slide by slide

*Intro Neural Networks* (Matt Olson, 2017) answers "what is a deep neural network?" with
**"a bunch of logistic regressions jammed together"**, and then derives backpropagation in
seven slides. This notebook walks those slides (3 to 9) in code, with numbers you can check
by hand:

1. the perceptron as logistic regression;
2. the notation $w^\ell_{j,k}$ and the vectorised forward pass $\hat y = g(W_3\,g(W_2\,g(W_1 x)))$;
3. the learning problem and the chain rule;
4. the literal $G(\ell)$ matrices and the $\delta$ recursion, next to netcheck's vectorised form;
5. verification against `jax.grad`, layer by layer;
6. the sign printed on the slide, $(y - \hat y)$, caught by the verifier, and why.

We work in float64, so "agree" below means agreement to round-off (about $10^{-16}$).

# %%
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import netcheck as nc

# float64 throughout: exact agreements then show as ~1e-16 instead of float32's ~1e-7.
jax.config.update("jax_enable_x64", True)
np.set_printoptions(precision=5, suppress=True)
results = {}  # the key numbers, printed at the end and checked by the test suite

# %% [markdown]
## Slide 3 · The perceptron is logistic regression

One node: $\hat y(x) = \sigma(w^\top x + b)$ with $\sigma(z) = 1/(1 + e^{-z})$. With the
binary cross-entropy $\mathcal L(y, \hat y) = -y\log\hat y - (1-y)\log(1-\hat y)$ the
gradient is the familiar
$$\frac{\partial \mathcal L}{\partial w} = (\hat y - y)\,x, \qquad
  \frac{\partial \mathcal L}{\partial b} = \hat y - y .$$
In netcheck this model is a network with no hidden layer: `sizes=(2, 1)`, a sigmoid output
and the binary cross-entropy loss.

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
print("∂L/∂w by hand:    ", ((y_hat_by_hand - y_lr) * x_lr).mean(axis=0),
      " ∂L/∂b:", (y_hat_by_hand - y_lr).mean(axis=0))
results["perceptron_grad_error"] = float(
    np.abs(np.asarray(grad[0]["W"]) - ((y_hat_by_hand - y_lr) * x_lr).mean(axis=0)).max()
)

# %% [markdown]
The derivative of the sigmoid will appear in every $G(\ell)$ below. It needs only the forward
output: $\sigma'(z) = \sigma(z)\,(1 - \sigma(z))$, which is how netcheck computes it.

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
## Slide 4 · Larger networks and the notation $w^\ell_{j,k}$

$w^\ell_{j,k}$ connects node $k$ in layer $\ell-1$ to node $j$ in layer $\ell$; the input is
layer 0. All weights of layer $\ell$ form the matrix $W_\ell$ with $W_\ell[j, k] = w^\ell_{j,k}$,
of shape $(n_\ell, n_{\ell-1})$. netcheck keeps this layout: `params[ℓ-1]["W"]` is $W_\ell$
(Python counts from 0, the lecture from 1).

The slides' network has two hidden layers and three weight matrices, no biases, a sigmoid
$g$ everywhere, and the squared error $\mathcal L(y, \theta) = \tfrac12 (y - \theta)^2$.
`bias=False` reproduces it exactly. The weights are written out so every number below can be
checked by hand.

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
# The slide's red edge w^2_{3,2}: layer ℓ = 2, node j = 3, from node k = 2 of layer 1.
print("w^2_{3,2} = params[1]['W'][2, 1] =", params[2 - 1]["W"][3 - 1, 2 - 1])

# %% [markdown]
Nudge the red edge and only node 3 of layer 2 feels it directly: $z^2_3$ moves, $z^2_1$ and
$z^2_2$ do not. Since $z^2_3 = \sum_k w^2_{3,k}\, a^1_k$, it moves by exactly
$0.1 \cdot a^1_2$. (`net.forward_cache` returns every $z^\ell$ and $a^\ell$ of the forward
pass, one row per example.)

# %%
x = np.array([1.0, -2.0])  # one example, the slides' column vector x
y = np.array([1.0])
nudged = [dict(weights) for weights in params]
nudged[1] = {"W": params[1]["W"].at[2, 1].add(0.1)}
before = net.forward_cache(params, x[None, :])
after = net.forward_cache(nudged, x[None, :])
z2_change = after.pre_activations[1] - before.pre_activations[1]
print("change of z^2 when w^2_{3,2} += 0.1:", np.asarray(z2_change)[0])
print("0.1 * a^1_2 =                       ", 0.1 * float(before.activations[1][0, 1]))

# %% [markdown]
## Slide 5 · The vectorised forward pass

$$z^\ell = W_\ell\, a^{\ell-1}, \qquad a^\ell = g(z^\ell), \qquad a^0 = x,
  \qquad \hat y(x) = a^3 = g(W_3\, g(W_2\, g(W_1 x))).$$
(The slide prints $z^\ell = W_\ell a^\ell$; the input of layer $\ell$ is $a^{\ell-1}$.)
The one-liner, in numpy, against netcheck's forward pass:

# %%
y_hat_one_line = sigmoid(W3 @ sigmoid(W2 @ sigmoid(W1 @ x)))
y_hat_netcheck = net.forward(params, x[None, :])  # a batch of one example: shape (1, n_0)
print("ŷ = g(W3 g(W2 g(W1 x))) in numpy:", y_hat_one_line)
print("ŷ by net.forward:               ", np.asarray(y_hat_netcheck)[0])

# %% [markdown]
netcheck feeds a whole batch at once, one example per **row**: $Z^\ell = A^{\ell-1} W_\ell^\top$
is the slide's $z^\ell = W_\ell a^{\ell-1}$ for every row at the same time.

# %%
rng = np.random.default_rng(0)
X = rng.normal(size=(5, 2))  # a batch of n = 5 examples
Y = rng.uniform(size=(5, 1))
column_by_column = np.stack([sigmoid(W3 @ sigmoid(W2 @ sigmoid(W1 @ x_i))) for x_i in X])
print("one example at a time:", column_by_column.ravel())
print("the batch at once:    ", np.asarray(net.forward(params, X)).ravel())

# %% [markdown]
## Slide 6 · The learning problem

Find $W_1, \dots, W_L$ that minimise the mean loss
$$\frac1n \sum_{i=1}^n \mathcal L\bigl(y_i, \hat y(x_i)\bigr), \qquad
  \hat y(x_i) = g(W_L\, g(W_{L-1} \cdots g(W_1 x_i))),$$
by gradient descent, which needs $\nabla_W \mathcal L(y_i, \hat y(x_i))$.
`net.mean_loss` is exactly this mean:

# %%
print("net.mean_loss:", float(net.mean_loss(params, X, Y)))
print("by hand:      ", np.mean(0.5 * (Y - column_by_column) ** 2))

# %% [markdown]
## Slide 7 · The chain rule

For $f = h_L \circ \cdots \circ h_1$: $Df = Dh_L \cdots Dh_1$ and
$\nabla f = (Dh_1)^\top \cdots (Dh_L)^\top$. Our network is such a composition:
$x \xrightarrow{W_1} z^1 \xrightarrow{g} a^1 \xrightarrow{W_2} z^2 \xrightarrow{g} a^2
  \xrightarrow{W_3} z^3 \xrightarrow{g} \hat y \xrightarrow{\mathcal L} \mathcal L$.
The Jacobian of $a \mapsto W a$ is $W$; that of $z \mapsto g(z)$ is the diagonal matrix
$G(\ell) = \mathrm{diag}(g'(z^\ell_1), \dots, g'(z^\ell_{n_\ell}))$; that of
$\hat y \mapsto \tfrac12(y - \hat y)^2$ is $(\hat y - y)^\top$. So
$$\nabla_x \mathcal L = W_1^\top G(1)\, W_2^\top G(2)\, W_3^\top G(3)\, (\hat y - y).$$
Below, that product of transposed Jacobians, against `jax.grad` with respect to the input:

# %%
def forward_by_hand(x):
    """z^ℓ and a^ℓ of the slides' network for one example, in numpy."""
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
## Slide 8 · Gradient calculations: $G(\ell)$ and the trick

Feed $x$ through the network, form $G(\ell) = \mathrm{diag}(g'(z^\ell))$ for
$\ell = 1, 2, 3$, and use the trick
$$\frac{\partial \mathcal L}{\partial w^\ell_{j,k}}
  = \frac{\partial \mathcal L}{\partial z^\ell_j}\,\frac{\partial z^\ell_j}{\partial w^\ell_{j,k}}
  = \delta^\ell_j\, a^{\ell-1}_k,
  \qquad \delta^\ell := \frac{\partial \mathcal L}{\partial z^\ell}.$$
Here are the three $G(\ell)$ of our example, as the literal matrices of the slide:

# %%
for layer, G_l in enumerate(G, start=1):
    print(f"G({layer}) =\n{G_l}\n")

# %% [markdown]
The slide then reads off
$$\delta^3 = G(3)(\hat y - y), \qquad \delta^2 = G(2)\,W_3^\top G(3)(\hat y - y), \qquad
  \delta^1 = G(1)\,W_2^\top G(2)\,W_3^\top G(3)(\hat y - y).$$

**About the sign.** The slide prints $(y - \hat y)$. For
$\mathcal L = \tfrac12 (y - \hat y)^2$ the derivative is
$\partial\mathcal L / \partial \hat y = -(y - \hat y) = \hat y - y$, so the slide's vector
is the *negative* gradient, the direction gradient descent steps in. netcheck computes the
gradient itself, $\delta^\ell = \partial\mathcal L/\partial z^\ell$, so it uses
$(\hat y - y)$. We come back to this at the end.

Next: the literal products of the slide in numpy, beside netcheck's vectorised recursion
`net.manual_deltas`, which never builds $G(\ell)$; it multiplies rows elementwise,
$\Delta^\ell = g'(Z^\ell) \odot (\Delta^{\ell+1} W_{\ell+1})$.

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
## Slide 9 · Backpropagation

For a network with layers $1..L$:

1. feed $x$ through the network, computing $a^1, \dots, a^L$ and $\hat y(x)$;
2. $G(\ell) = \mathrm{diag}(g'(z^\ell_1), \dots, g'(z^\ell_{n_\ell}))$ for $\ell = 1, \dots, L$;
3. $\delta^L = G(L)(\hat y - y)$ (the slide: $(y - \hat y)$, see above);
4. $\delta^\ell = G(\ell)\, W_{\ell+1}^\top \delta^{\ell+1}$ for $\ell = L-1, \dots, 1$;
5. $\partial \mathcal L/\partial w^\ell_{j,k} = a^{\ell-1}_k\, \delta^\ell_j$, i.e. the outer
   product $\partial \mathcal L/\partial W_\ell = \delta^\ell\, (a^{\ell-1})^\top$.

Step 4 is the recursion that makes it fast: each $\delta^\ell$ reuses $\delta^{\ell+1}$
instead of recomputing the whole product. Steps 1-5 in numpy, for one example:

# %%
def backprop_by_hand(x, y):
    """The slide's steps (1)-(5) for one example; returns [∂L/∂W_1, ∂L/∂W_2, ∂L/∂W_3]."""
    _, a = forward_by_hand(x)                                      # (1)
    G = [np.diag(a_l * (1 - a_l)) for a_l in a[1:]]                # (2)
    deltas = [G[-1] @ (a[-1] - y)]                                 # (3)
    for W_next, G_l in zip((W3, W2), (G[1], G[0]), strict=True):   # (4) ℓ = 2, 1
        deltas.insert(0, G_l @ W_next.T @ deltas[0])
    return [np.outer(d, a_prev) for d, a_prev in zip(deltas, a[:-1], strict=True)]  # (5)

by_hand = backprop_by_hand(x, y)
by_netcheck = net.manual_grad(params, x[None, :], y[None, :])
for layer in (1, 2, 3):
    print(f"∂L/∂W_{layer} by hand:\n{by_hand[layer - 1]}")
    print(f"net.manual_grad:\n{np.asarray(by_netcheck[layer - 1]['W'])}\n")

# %% [markdown]
### Three implementations and the reference, on a batch

For a batch of $n$ examples the gradient of the mean loss is the mean of the per-example
gradients. Three implementations of the recursion, and the reference:

- `nc.literal_grad`: the slides as printed, one example at a time with $G(\ell)$ as
  matrices, then the mean;
- `net.manual_grad`: the same recursion, batched and jit-compiled,
  $\partial\mathcal L/\partial W_\ell = (\Delta^\ell)^\top A^{\ell-1}/n$;
- `backprop_by_hand`: the numpy function above, averaged over the batch;
- `net.autodiff_grad`: `jax.grad` of the very same `net.mean_loss`, the reference.

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
results["manual_vs_autodiff_max_error"] = errors["net.manual_grad"]
results["literal_vs_autodiff_max_error"] = errors["nc.literal_grad"]

# %% [markdown]
A fourth, fully independent witness: central finite differences,
$\partial \mathcal L/\partial w \approx (\mathcal L(w + h) - \mathcal L(w - h)) / 2h$,
on the red edge $w^2_{3,2}$.

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
## Verification against `jax.grad`, layer by layer

`verify` judges the manual gradient the way a careful person would: the truth is
`jax.grad` in float64; the tolerance of each quantity is a small multiple of the error
that `jax.grad` itself makes at the working precision (its *noise floor*), not a fixed
number; a float64 finite-difference witness (the column FD) checks the truth without
autodiff. Each layer $\ell$ gets a row for $\delta^\ell$ and one for
$\partial\mathcal L/\partial W_\ell$, from $L$ down to 1: a bug in $\delta^\ell$ spoils every
layer below it, so the first bad layer from the top is where the bug sits.

# %%
from netcheck import verify

verdict = verify(net, params, X, Y)
print(verdict)
results["verify_ok"] = verdict.ok

# %% [markdown]
The same judgement works at any precision. In float32 the tolerance grows with float32's
round-off, because autodiff's own error does; here a wider network with a softmax output
(whose $G(L) = \mathrm{diag}(s) - s s^\top$ is not diagonal) and biases:

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
results["verify_float32_ok"] = wide_verdict.ok

# %% [markdown]
## The sign on the slide, caught

Step (3) on the slide reads $\delta^L = G(L)(y - \hat y)$. Here is that algorithm exactly as
printed, batched over rows like netcheck's, and handed to the verifier as the gradient
under test:

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
**Why.** For $\mathcal L = \tfrac12 (y - \hat y)^2$, $\partial \mathcal L/\partial \hat y
= \hat y - y$, so $G(L)(y - \hat y) = -\delta^L$ exactly. The recursion (4) and step (5)
are linear in $\delta$, so the minus sign travels down unchanged: every row has cosine
$-1$ and relative error 2 (the distance between $g$ and $-g$ is $2\lVert g\rVert$). The
verifier reads from the top, finds $\delta^L$ wrong first, and names layer $L = 3$.

The slide is not wrong so much as using another convention: $(y - \hat y)$ gives the
negative gradient, the direction to *step in*, $W \leftarrow W + \eta\,\delta\,a^\top$.
Hand it to an optimizer that subtracts the gradient (optax, or any textbook
$W \leftarrow W - \eta \nabla$) and training climbs the loss instead of descending:

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
results["loss_after_one_step"] = steps
results["sign_bug"] = {
    "ok": slide_verdict.ok,
    "first_bad_layer": slide_verdict.first_bad_layer,
    "cosines": {row.name: row.cosine for row in slide_verdict.rows},
}

# %% [markdown]
### The other classic mistakes

netcheck keeps the slide's sign among its *planted bugs*: small variants of its own
backprop, each a mistake people make when they code the slides (`netcheck verify --mutants`
runs them all on many networks). Those that apply to our little network, each judged by
`verify` and localised to the layer where it sits:

# %%
from netcheck.mutants import MUTANTS

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
    print(f"{mutant.description:<64}  caught: {not mutant_verdict.ok!s:<5}  "
          f"bug in layer {mutant.expected_layer(net)}, "
          f"named layer {mutant_verdict.first_bad_layer}")
results["mutants"] = caught

# %% [markdown]
## Summary

The key numbers of this notebook, with the example they come from. The test suite
(`tests/test_notebooks.py`) runs the notebook again and checks them against its own
finite differences and numpy computations.

# %% tags=results
import json

results.update(
    sizes=net.sizes,
    weights=[W.tolist() for W in (W1, W2, W3)],
    X=X.tolist(),
    Y=Y.tolist(),
    manual_grad=[np.asarray(g["W"]).tolist() for g in batch_grad],
)
print(json.dumps(results, ensure_ascii=False))
'''

# ---------------------------------------------------------------------------------------
# 02: training with the hand-written gradient
# ---------------------------------------------------------------------------------------

NB02 = r"""
# %% [markdown]
# 02 · Training with the hand-written gradient

The lecture's learning problem: find $W_1, \dots, W_L$ (and biases) minimising
$\frac1n \sum_i \mathcal L(y_i, \hat y(x_i))$ by gradient descent. netcheck's trainer takes
minibatches $B$ and steps
$$W \leftarrow W - \eta\, \nabla_W
  \frac{1}{|B|} \sum_{i \in B} \mathcal L\bigl(y_i, \hat y(x_i)\bigr)$$
with the gradient from the hand-written $\delta$ recursion (any optax optimizer works; plain
`optax.sgd` is the lecture's rule). A whole epoch (shuffle, every minibatch, every update)
is one compiled program.

This notebook trains on two moons and on a real dataset (breast cancer, bundled with
scikit-learn), draws the decision boundary and the learning curves, puts manual and
autodiff training on one plot, and times the trainer beside a typical JAX training loop.

# %%
import json
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

import netcheck as nc
from netcheck import datasets
from netcheck import init_state, make_epoch_fn, train

results = {}  # the key numbers, printed at the end and checked by the test suite

# %% [markdown]
## Two moons

Two interleaving half-circles, 1000 points; a quarter is held out for testing. The features
are standardised with the training part's mean and standard deviation. The network:
two hidden tanh layers of 16, a sigmoid output, binary cross-entropy.

# %%
moons_options = {"n_samples": 1000, "noise": 0.15, "seed": 0}
moons = datasets.load("moons", **moons_options)
moons_train, moons_test = datasets.standardize(
    *datasets.train_test_split(moons, test_fraction=0.25, seed=0)
)
print(f"train {moons_train.x.shape}, test {moons_test.x.shape}")

net = nc.Network(
    sizes=(2, 16, 16, 1),
    activation="tanh",
    output_activation="sigmoid",
    loss="binary_cross_entropy",
)
params0 = net.init(jax.random.key(0))
options = {
    "optimizer": optax.sgd(0.2),  # the lecture's plain gradient descent, η = 0.2
    "epochs": 30,
    "batch_size": 16,
    "key": jax.random.key(1),  # the shuffles
    "validation": (moons_test.x, moons_test.y),
    "eval_every": 1,  # also the whole training set's loss and accuracy, after every epoch
}
params, history = train(net, params0, (moons_train.x, moons_train.y), **options)  # grad="manual"
print(f"after {history['epoch'][-1]} epochs: train loss {history['train_loss'][-1]:.4f}, "
      f"held-out accuracy {history['validation_accuracy'][-1]:.3f}")

# %% [markdown]
The decision boundary $\hat y(x) = 0.5$ and the learning curves (the mean loss on the whole
training and held-out sets after each epoch):

# %%
def plot_boundary(ax, net, params, data):
    span = np.linspace(data.x.min() - 0.5, data.x.max() + 0.5, 100)
    grid_x, grid_y = np.meshgrid(span, span)
    grid = np.stack([grid_x.ravel(), grid_y.ravel()], axis=1).astype(np.float32)
    y_hat = np.asarray(net.forward(params, grid)).reshape(grid_x.shape)
    ax.contourf(grid_x, grid_y, y_hat, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.6)
    ax.contour(grid_x, grid_y, y_hat, levels=[0.5], colors="k", linewidths=1.5)
    ax.scatter(*data.x.T, c=data.labels, cmap="RdBu_r", s=8, edgecolors="k", linewidths=0.3)
    ax.set_title("held-out points and the boundary ŷ = 0.5")

fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5), dpi=80)
plot_boundary(left, net, params, moons_test)
right.plot(history["epoch"], history["train_loss"], label="train loss")
right.plot(history["epoch"], history["validation_loss"], label="held-out loss")
right.set_xlabel("epoch")
right.set_yscale("log")
right.legend()
right.set_title("learning curves")
plt.tight_layout()
plt.show()

results["moons"] = {
    "options": moons_options,
    "test_accuracy": history["validation_accuracy"][-1],
    "params": [{name: np.asarray(v).tolist() for name, v in layer.items()} for layer in params],
}

# %% [markdown]
## Manual and autodiff training, on one plot

The same run again, from the same initial parameters and the same shuffles, with the
gradient from `jax.grad` (`grad="autodiff"`). The two gradients agree to float32
round-off at every step, so the two trajectories lie on top of each other; the right panel
shows how far apart they are.

# %%
params_ad, history_ad = train(
    net, params0, (moons_train.x, moons_train.y), grad="autodiff", **options
)
manual_curve = np.array(history["train_loss"])
autodiff_curve = np.array(history_ad["train_loss"])

fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3), dpi=80)
left.plot(history["epoch"], manual_curve, label="manual δ recursion", lw=3, alpha=0.5)
left.plot(history_ad["epoch"], autodiff_curve, "k--", label="jax.grad", lw=1)
left.set_yscale("log")
left.set_xlabel("epoch")
left.set_title("train loss")
left.legend()
right.plot(history["epoch"], np.abs(manual_curve - autodiff_curve) / autodiff_curve, "o-", ms=3)
right.axhline(np.finfo(np.float32).eps, color="gray", ls=":", label="float32 ε")
right.set_xlabel("epoch")
right.set_title("|manual - autodiff| / autodiff")
right.legend()
plt.tight_layout()
plt.show()
results["manual_train_loss"] = manual_curve.tolist()
results["autodiff_train_loss"] = autodiff_curve.tolist()
print(f"largest relative gap between the curves: "
      f"{np.max(np.abs(manual_curve - autodiff_curve) / autodiff_curve):.1e}")

# %% [markdown]
## A real dataset: breast cancer

569 tumours, 30 features on very different scales (hence the standardisation), label 1 for
benign. One hidden tanh layer of 16.

# %%
cancer_options = {"test_fraction": 0.25, "seed": 0}
cancer_train, cancer_test = datasets.standardize(
    *datasets.train_test_split(datasets.load("breast_cancer"), **cancer_options)
)
cancer_net = nc.Network(
    sizes=(30, 16, 1), activation="tanh", output_activation="sigmoid", loss="binary_cross_entropy"
)
cancer_params, cancer_history = train(
    cancer_net,
    cancer_net.init(jax.random.key(0)),
    (cancer_train.x, cancer_train.y),
    optimizer=optax.sgd(0.1),
    epochs=30,
    batch_size=16,
    key=jax.random.key(1),
    validation=(cancer_test.x, cancer_test.y),
    eval_every=1,
)
fig, ax = plt.subplots(figsize=(5, 3), dpi=80)
ax.plot(cancer_history["epoch"], cancer_history["train_accuracy"], label="train")
ax.plot(cancer_history["epoch"], cancer_history["validation_accuracy"], label="held out")
ax.set_xlabel("epoch")
ax.set_ylabel("accuracy")
ax.legend()
plt.show()
print(f"held-out accuracy: {cancer_history['validation_accuracy'][-1]:.3f} "
      f"on {cancer_test.n_samples} tumours")
results["breast_cancer"] = {
    "options": cancer_options,
    "test_accuracy": cancer_history["validation_accuracy"][-1],
    "params": [
        {name: np.asarray(v).tolist() for name, v in layer.items()} for layer in cancer_params
    ],
}

# %% [markdown]
## Speed: the trainer beside a typical JAX loop

What people write instead: a jitted step (`jax.value_and_grad` plus an optax update)
called from a Python `for` loop over minibatches sliced on the host. netcheck's epoch is one
compiled program instead: the data stay on the device and `jax.lax.scan` runs every
minibatch, so there is one dispatch per epoch rather than one per step.

Both run the same network, optimizer and batch size on the moons data; both are warmed up
(compiled) first, then timed over 20 epochs, five rounds, alternating. Timings on a shared
machine are noisy; the ratio within a round is what to read.

# %%
optimizer, batch_size, n = optax.sgd(0.2), 16, moons_train.n_samples
x_host, y_host = moons_train.x, moons_train.y
x_device, y_device = jnp.asarray(x_host), jnp.asarray(y_host)
epoch_fn = make_epoch_fn(net, optimizer, n_examples=n, batch_size=batch_size)

def run_trainer(epochs):
    # The epoch donates its state; copy params0 so the caller's arrays stay alive.
    state = init_state(jax.tree.map(jnp.copy, params0), optimizer, jax.random.key(2))
    for _ in range(epochs):
        state, _, _ = epoch_fn(state, x_device, y_device)  # (state, running loss, finite)
    return jax.block_until_ready(state.params)

@jax.jit
def typical_step(params, opt_state, x, y):
    loss, grads = jax.value_and_grad(net.mean_loss)(params, x, y)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

def run_typical(epochs):
    params, opt_state = params0, optimizer.init(params0)
    rng = np.random.default_rng(2)
    for _ in range(epochs):
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            batch = order[start : start + batch_size]
            params, opt_state, _ = typical_step(params, opt_state, x_host[batch], y_host[batch])
    return jax.block_until_ready(params)

def seconds(run, epochs=20):
    start = time.perf_counter()
    run(epochs)
    return time.perf_counter() - start

runs = {"netcheck trainer": run_trainer, "typical JAX loop": run_typical}
for run in runs.values():
    run(1)  # warm-up: compile
# Rounds alternate the two, so a burst of load on the machine hits both alike; the ratio is
# taken within each round, then the median over rounds.
rounds = [{name: seconds(run) for name, run in runs.items()} for _ in range(5)]
speed = {name: 20 * n / float(np.median([r[name] for r in rounds])) for name in runs}
ratio = float(np.median([r["typical JAX loop"] / r["netcheck trainer"] for r in rounds]))
for name, rate in speed.items():
    print(f"{name:>17}: {rate:12,.0f} examples/s (median of 5 rounds of 20 epochs)")
print(f"trainer / typical loop: {ratio:.1f}x (median of the per-round ratios)")

final_losses = {
    "netcheck trainer": float(net.mean_loss(run_trainer(5), x_host, y_host)),
    "typical JAX loop": float(net.mean_loss(run_typical(5), x_host, y_host)),
}
print("train loss after 5 epochs:", {k: round(v, 4) for k, v in final_losses.items()})
results["speed_examples_per_s"] = speed
results["speed_ratio"] = ratio
results["speed_final_loss"] = final_losses
results["initial_loss"] = float(net.mean_loss(params0, x_host, y_host))

# %% [markdown]
## Summary

The key numbers; the test suite runs this notebook again and checks them (it recomputes
both held-out accuracies from the parameters printed here, with numpy).

# %% tags=results
print(json.dumps(results, ensure_ascii=False))
"""

# ---------------------------------------------------------------------------------------
# 03: checking your own backward pass
# ---------------------------------------------------------------------------------------

NB03 = r"""
# %% [markdown]
# 03 · Checking your own backward pass with `check_gradient`

You wrote a backward pass by hand: a `jax.custom_vjp` for speed or numerical stability,
or a whole manual gradient as in the lecture. Is it right? `check_gradient` answers the
way `verify` does for netcheck's own backprop:
```python
verdict = check_gradient(loss_fn, grad_fn, params, *args)
```
judges `grad_fn(params, *args)` against `jax.grad(loss_fn)(params, *args)` **leaf by
leaf** of any pytree: the truth is `jax.grad` in float64 on the same (upcast) numbers; each
leaf's tolerance is a small multiple of the error `jax.grad` itself makes at the working
precision (its noise floor), plus a few ulps; a float64 finite-difference witness checks
the truth without autodiff. To check a custom VJP, pass the plain function as `loss_fn`
and `jax.grad` of the one that uses your VJP as `grad_fn`.

# %%
import json

import jax
import jax.numpy as jnp
import numpy as np
from jax.test_util import check_grads

from netcheck import check_gradient

results = {}  # the key numbers, printed at the end and checked by the test suite

# %% [markdown]
## A model with a hand-written layer norm

A small classifier: dense layer, layer normalisation, tanh, dense layer, softmax
cross-entropy. Layer norm of a row $h \in \mathbb R^m$:
$$\mu = \tfrac1m \textstyle\sum_k h_k, \quad \sigma^2 = \tfrac1m \sum_k (h_k - \mu)^2, \quad
  \hat x = \frac{h - \mu}{\sqrt{\sigma^2 + \varepsilon}}, \quad
  \mathrm{LN}(h) = \gamma \odot \hat x + \beta .$$
Its backward pass, for an incoming cotangent $g$ and $\bar g = g \odot \gamma$:
$$\frac{\partial}{\partial h} = \frac{1}{\sqrt{\sigma^2 + \varepsilon}}
  \Bigl(\bar g - \operatorname{mean}(\bar g)
  - \hat x \operatorname{mean}(\bar g \odot \hat x)\Bigr),
  \qquad \frac{\partial}{\partial \gamma} = \sum_{\text{batch}} g \odot \hat x, \qquad
  \frac{\partial}{\partial \beta} = \sum_{\text{batch}} g .$$
First the plain version, which `jax.grad` differentiates by itself:

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
Now the hand-written backward pass as a custom VJP. `make_layer_norm(forget_eps)` builds
two versions: the right one, and one with a slip that is easy to make and hard to see: the
backward pass divides by $\sqrt{\sigma^2}$ instead of $\sqrt{\sigma^2 + \varepsilon}$.

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
## The right backward pass

# %%
right_verdict = check_gradient(plain_loss, right_grad, params, x, y)
print(right_verdict)

# %% [markdown]
## The subtly wrong one, and where the verdict points

# %%
slipped_verdict = check_gradient(plain_loss, slipped_grad, params, x, y)
print(slipped_verdict)

# %% [markdown]
Reading the verdict:

- the error is tiny (a relative error around $10^{-4}$, cosine 1.000000 to six places), yet
  it is many times the tolerance, because `jax.grad` in float32 lands within a few
  $10^{-7}$ of the truth here, and the finite differences (FD: ok) confirm that truth;
- `dense2`, `norm.gain` and `norm.bias` pass: their gradients do not go through
  $\partial/\partial h$ of the layer norm;
- only `dense1`'s leaves fail, and the only way from the loss to `dense1` runs through the
  layer norm's input cotangent `dh`. So the bug is in `dh`.

To confirm, check the operation alone, with a fixed random cotangent $v$: the loss
$\sum v \odot \mathrm{LN}(h)$ has leaves $h$, $\gamma$ and $\beta$:

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
Only `['h']` fails: the input cotangent of the custom VJP. The size fits the slip: dropping
$\varepsilon$ scales row $i$'s `dh` by $\sqrt{(\sigma_i^2 + \varepsilon)/\sigma_i^2}$, a
relative change of about $\varepsilon / 2\sigma_i^2$:

# %%
row_variance = np.var(np.asarray(h, np.float64), axis=-1)
scale_error = np.sqrt((row_variance + EPS) / row_variance) - 1
print(f"row variances of h: {row_variance.min():.3f} .. {row_variance.max():.3f}")
print(f"relative change of dh per row: {scale_error.min():.1e} .. {scale_error.max():.1e}")

# %% [markdown]
## What a fixed tolerance says

`jax.test_util.check_grads` compares reverse mode with finite differences at a fixed
float32 tolerance. It passes both versions: the slip is far below its tolerance.

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
## Summary

The key numbers, with the point they were measured at; the test suite runs this notebook
again and recomputes the relative errors from a float64 `jax.grad` of its own.

# %% tags=results
def leaf_record(verdict):
    return {row.name: {"ok": row.ok, "relative_error": row.relative_error} for row in verdict.rows}

results.update(
    right=leaf_record(right_verdict),
    right_ok=right_verdict.ok,
    slipped=leaf_record(slipped_verdict),
    slipped_ok=slipped_verdict.ok,
    op=leaf_record(op_verdict),
    check_grads_passes=fixed_tolerance,
    point={
        "params": jax.tree.map(lambda leaf: np.asarray(leaf).tolist(), params),
        "x": np.asarray(x).tolist(),
        "y": np.asarray(y).tolist(),
    },
    slipped_grad=jax.tree.map(lambda leaf: np.asarray(leaf).tolist(), slipped_grad(params, x, y)),
)
print(json.dumps(results, ensure_ascii=False))
"""

NOTEBOOKS = {
    "01_backprop_by_hand": NB01,
    "02_training": NB02,
    "03_your_own_backward_pass": NB03,
}


def main(argv: list[str] | None = None) -> int:
    """Rebuild (and by default execute) the notebooks named on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="prefixes of notebook names (default: all)")
    parser.add_argument("--no-execute", action="store_true", help="write without outputs")
    args = parser.parse_args(argv)
    chosen = [
        name
        for name in NOTEBOOKS
        if not args.names or any(name.startswith(prefix) for prefix in args.names)
    ]
    if not chosen:
        parser.error(f"no notebook matches {args.names}; known: {', '.join(NOTEBOOKS)}")
    for name in chosen:
        notebook = build(NOTEBOOKS[name])
        if not args.no_execute:
            execute(notebook)
        path = HERE / f"{name}.ipynb"
        write(notebook, path)
        print(f"wrote {path.relative_to(HERE.parent)} ({path.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
