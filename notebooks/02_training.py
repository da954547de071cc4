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
# # 02 · Training with the hand-written gradient
#
# [The lecture's learning problem](../docs/lecture.md#4-the-learning-problem): find
# $W_1, \dots, W_L$ (and biases) minimising $\frac1n \sum_i \mathcal L(y_i, \hat y(x_i))$ by
# gradient descent. netcheck's trainer takes minibatches $B$ and steps
# $$W \leftarrow W - \eta\, \nabla_W
#   \frac{1}{|B|} \sum_{i \in B} \mathcal L\bigl(y_i, \hat y(x_i)\bigr)$$
# with the gradient from the hand-written $\delta$ recursion (any optax optimizer works; plain
# `optax.sgd` is the lecture's rule). A whole epoch (shuffle, every minibatch, every update)
# is one compiled program.
#
# This notebook trains on two moons and on a real dataset (breast cancer, bundled with
# scikit-learn), draws the decision boundary and the learning curves, puts manual and
# autodiff training on one plot, and times the trainer beside a typical JAX training loop.

# %%
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

import netcheck as nc
from netcheck import datasets, init_state, make_epoch_fn, train

# %% [markdown]
# ## Two moons
#
# Two interleaving half-circles, 1000 points; a quarter is held out for testing. The features
# are standardised with the training part's mean and standard deviation. The network:
# two hidden tanh layers of 16, a sigmoid output, binary cross-entropy.

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
print(
    f"after {history['epoch'][-1]} epochs: train loss {history['train_loss'][-1]:.4f}, "
    f"held-out accuracy {history['validation_accuracy'][-1]:.3f}"
)


# %% [markdown]
# The decision boundary $\hat y(x) = 0.5$ and the learning curves (the mean loss on the whole
# training and held-out sets after each epoch):


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

# %% [markdown]
# ## Manual and autodiff training, on one plot
#
# The same run again, from the same initial parameters and the same shuffles, with the
# gradient from `jax.grad` (`grad="autodiff"`). The two gradients agree to float32
# round-off at every step, so the two trajectories lie on top of each other; the right panel
# shows how far apart they are.

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
print(
    f"largest relative gap between the curves: "
    f"{np.max(np.abs(manual_curve - autodiff_curve) / autodiff_curve):.1e}"
)

# %% [markdown]
# ## A real dataset: breast cancer
#
# 569 tumours, 30 features on very different scales (hence the standardisation), label 1 for
# benign. One hidden tanh layer of 16.

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
print(
    f"held-out accuracy: {cancer_history['validation_accuracy'][-1]:.3f} "
    f"on {cancer_test.n_samples} tumours"
)

# %% [markdown]
# ## Speed: the trainer beside a typical JAX loop
#
# What people write instead: a jitted step (`jax.value_and_grad` plus an optax update)
# called from a Python `for` loop over minibatches sliced on the host. netcheck's epoch is one
# compiled program instead: the data stay on the device and `jax.lax.scan` runs every
# minibatch, so there is one dispatch per epoch rather than one per step.
#
# Both run the same network, optimizer and batch size on the moons data; both are warmed up
# (compiled) first, then timed over 20 epochs, five rounds, alternating. Timings on a shared
# machine are noisy; the ratio within a round is what to read.

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
initial_loss = float(net.mean_loss(params0, x_host, y_host))
print(
    f"train loss: {initial_loss:.4f} at the start; after 5 epochs:",
    {k: round(v, 4) for k, v in final_losses.items()},
)

# %% [markdown]
# ## Summary
#
# The test suite (`tests/test_notebooks.py`) runs this notebook again, recomputes both
# held-out accuracies in numpy from the trained parameters, and compares the two loss curves.

# %%
print(
    f"held-out accuracy: two moons {history['validation_accuracy'][-1]:.3f}, "
    f"breast cancer {cancer_history['validation_accuracy'][-1]:.3f}"
)
print(
    f"manual vs autodiff training, largest relative gap: "
    f"{np.max(np.abs(manual_curve - autodiff_curve) / autodiff_curve):.1e}"
)
print(f"netcheck trainer / typical JAX loop: {ratio:.1f}x the examples per second")
