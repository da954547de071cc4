"""``check_gradient`` on the models JAX engineers write: an ``equinox.Module`` (functions and
integers among its leaves, ``eqx.filter_grad`` putting ``None`` there) and a ``flax.nnx``
model's state (integer and key leaves in its random number state, ``float0`` cotangents
there). Skipped cleanly when the optional packages (the ``models`` extra) are absent.

A planted scale of ``1 + 1e-4`` on one leaf is the independent fact each verdict must show
on that leaf alone.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from netcheck import check_gradient

EPSILON = 1e-4


def _data():
    rng = np.random.default_rng(0)
    return (
        jnp.asarray(rng.normal(size=(16, 3)), jnp.float32),
        jnp.asarray(rng.normal(size=(16, 2)), jnp.float32),
    )


def test_check_gradient_on_an_equinox_module():
    eqx = pytest.importorskip("equinox")

    class Counted(eqx.Module):
        mlp: eqx.nn.MLP  # weights and biases, and its activations (functions) as leaves
        steps: jax.Array  # an integer counter
        label: str = eqx.field(static=True)

    model = Counted(
        eqx.nn.MLP(3, 2, 8, 2, activation=jnp.tanh, key=jax.random.key(0)),
        jnp.asarray(3, jnp.int32),
        "mlp",
    )
    x, y = _data()

    def loss(model, x, y):
        return jnp.mean((jax.vmap(model.mlp)(x) - y) ** 2)

    grad_fn = eqx.filter_grad(loss)  # None at every non-array leaf
    verdict = check_gradient(loss, grad_fn, model, x, y)
    assert verdict.ok, str(verdict)
    assert [row.name for row in verdict.rows] == [
        f".mlp.layers[{i}].{kind}" for i in range(3) for kind in ("weight", "bias")
    ]
    assert verdict.skipped == (".mlp.activation", ".mlp.final_activation", ".steps")

    def slipped(model, x, y):
        grads = grad_fn(model, x, y)
        return eqx.tree_at(
            lambda g: g.mlp.layers[1].weight, grads, replace_fn=lambda w: w * (1 + EPSILON)
        )

    wrong = check_gradient(loss, slipped, model, x, y)
    assert [(row.name, row.status) for row in wrong.rows if not row.ok] == [
        (".mlp.layers[1].weight", "wrong_formula")
    ]
    row = wrong.rows[2]
    assert row.relative_error == pytest.approx(EPSILON, rel=1e-2)


def test_check_gradient_on_a_flax_nnx_models_state():
    nnx = pytest.importorskip("flax.nnx")

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.l1 = nnx.Linear(3, 8, rngs=rngs)
            self.norm = nnx.BatchNorm(8, rngs=rngs)
            self.drop = nnx.Dropout(0.1, rngs=rngs)  # holds a key and an integer count
            self.l2 = nnx.Linear(8, 2, rngs=rngs)

        def __call__(self, x):
            return self.l2(jnp.tanh(self.drop(self.norm(self.l1(x)))))

    net = Net(nnx.Rngs(0))
    net.eval()
    x, y = _data()

    # The whole state: integer and key leaves get float0 cotangents, and are not judged.
    graphdef, state = nnx.split(net)

    def loss(state, x, y):
        return jnp.mean((nnx.merge(graphdef, state)(x) - y) ** 2)

    whole = check_gradient(loss, jax.grad(loss, allow_int=True), state, x, y)
    assert whole.ok, str(whole)
    assert len(whole.skipped) == 2 and all("['drop']" in name for name in whole.skipped)
    names = [row.name for row in whole.rows]
    assert len(names) == 8  # weights, biases, and the batch norm's scale, bias and statistics
    assert any(name.startswith("['norm']['mean']") for name in names)

    # The usual split: parameters judged, everything else passed along as an argument.
    graphdef, params, rest = nnx.split(net, nnx.Param, ...)

    def param_loss(params, rest, x, y):
        return jnp.mean((nnx.merge(graphdef, params, rest)(x) - y) ** 2)

    grad_fn = jax.grad(param_loss)
    right = check_gradient(param_loss, grad_fn, params, rest, x, y)
    assert right.ok, str(right)
    assert len(right.rows) == 6 and right.skipped == ()

    def slipped(params, rest, x, y):
        def scale_l2_kernel(path, g):
            return (
                g * (1 + EPSILON)
                if jax.tree_util.keystr(path).startswith("['l2']['kernel']")
                else g
            )

        return jax.tree_util.tree_map_with_path(scale_l2_kernel, grad_fn(params, rest, x, y))

    wrong = check_gradient(param_loss, slipped, params, rest, x, y)
    failing = [row for row in wrong.rows if not row.ok]
    assert len(failing) == 1 and failing[0].name.startswith("['l2']['kernel']")
    assert failing[0].relative_error == pytest.approx(EPSILON, rel=1e-2)
