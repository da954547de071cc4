"""Data-parallel training over 4 (simulated) devices matches the one-device run.

``XLA_FLAGS=--xla_force_host_platform_device_count=4`` only works if it is set before JAX
starts, so the sharded run happens in a fresh Python process that prints its results as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np

SCRIPT = textwrap.dedent(
    """
    import json

    import jax
    import numpy as np
    import optax
    from jax.sharding import Mesh

    from netcheck.nn import Network
    from netcheck.training.trainer import init_state, make_epoch_fn, train

    jax.config.update("jax_numpy_dtype_promotion", "strict")
    jax.config.update("jax_numpy_rank_promotion", "raise")

    net = Network((3, 8, 8, 2), "tanh", "softmax", "softmax_cross_entropy")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 3)).astype(np.float32)
    y = np.eye(2, dtype=np.float32)[(x[:, 0] * x[:, 1] > 0).astype(int)]
    params = net.init(jax.random.key(1))
    mesh = Mesh(np.array(jax.devices()), ("batch",))
    # 50 = 4 * 12 + 2: the full batches split 3 per device, the last one unevenly.
    kwargs = dict(optimizer=optax.sgd(0.5), epochs=3, batch_size=12, key=jax.random.key(2),
                  validation=(x[:10], y[:10]))
    single, single_history = train(net, params, (x, y), **kwargs)
    sharded, sharded_history = train(net, params, (x, y), mesh=mesh, **kwargs)

    epoch = make_epoch_fn(net, optax.sgd(0.5), n_examples=50, batch_size=12, mesh=mesh)
    state = init_state(params, optax.sgd(0.5), jax.random.key(2))
    hlo = epoch.lower(state, x, y).compile().as_text()
    print(json.dumps({
        "devices": len(jax.devices()),
        "result_devices": len(sharded[0]["W"].sharding.device_set),
        "all_reduce": "all-reduce" in hlo,
        "single": [np.asarray(layer["W"]).tolist() for layer in single],
        "sharded": [np.asarray(layer["W"]).tolist() for layer in sharded],
        "initial": [np.asarray(layer["W"]).tolist() for layer in params],
        "single_loss": single_history["train_loss"],
        "sharded_loss": sharded_history["train_loss"],
    }))
    """
)


def test_sharded_training_matches_one_device():
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
        "JAX_PLATFORMS": "cpu",
    }
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["devices"] == 4
    assert result["result_devices"] == 4  # the parameters live, replicated, on all four
    assert result["all_reduce"]  # XLA really split the batch and summed the gradients
    for single, sharded, initial in zip(
        result["single"], result["sharded"], result["initial"], strict=True
    ):
        # Within float32 round-off: only the order of the batch sums differs.
        np.testing.assert_allclose(sharded, single, rtol=1e-5, atol=1e-6)
        assert not np.allclose(single, initial)
    np.testing.assert_allclose(result["sharded_loss"], result["single_loss"], rtol=1e-5)
