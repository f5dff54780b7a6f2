"""Multi-task architectures: cross-stitch exactness and init, distinct MTAN modules, task BN."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models import multitask as mt

TASKS = (4, 3, 1)
HIDDEN = (8, 6)


def _x(n: int = 5) -> jax.Array:
    return jax.random.normal(jax.random.key(1), (n, 2, 3))


def _init(model):
    return model.init(jax.random.key(0), _x(), train=False)


@pytest.mark.parametrize("arch", mt.ARCHS)
def test_every_arch_returns_one_output_per_task(arch):
    model = mt.build(arch, TASKS, HIDDEN)
    outs = model.apply(_init(model), _x(), train=False)
    assert isinstance(outs, tuple)
    chex.assert_shape(list(outs), [(5, 4), (5, 3), (5, 1)])


def test_unknown_arch_names_the_choices():
    with pytest.raises(ValueError, match="'nope'.*cross_stitch"):
        mt.build("nope", TASKS, HIDDEN)


def test_cross_stitch_init_is_09_self_01_spread():
    params = _init(mt.CrossStitch(TASKS, HIDDEN))["params"]
    for layer, width in enumerate(HIDDEN):
        alpha = np.asarray(params[f"stitch_{layer}"])
        assert alpha.shape == (3, 3, width)
        np.testing.assert_allclose(np.diagonal(alpha, axis1=0, axis2=1), 0.9)
        off = alpha[~np.eye(3, dtype=bool)]
        np.testing.assert_allclose(off, 0.05, rtol=1e-6)
        np.testing.assert_allclose(alpha.sum(axis=1), 1.0, rtol=1e-6)
    two = np.asarray(mt.cross_stitch_init(2, 4))
    np.testing.assert_allclose(two[0, 1], 0.1)
    np.testing.assert_allclose(two[1, 1], 0.9)


def test_cross_stitch_identity_equals_independent_networks():
    model = mt.CrossStitch(TASKS, HIDDEN)
    params = dict(_init(model)["params"])
    for layer, width in enumerate(HIDDEN):
        params[f"stitch_{layer}"] = jnp.broadcast_to(jnp.eye(3)[:, :, None], (3, 3, width))
    outs = model.apply({"params": params}, _x())
    for t, width in enumerate(TASKS):
        single = mt.HardSharing((width,), HIDDEN)
        column = {f"dense_{layer}": params[f"column_{t}_dense_{layer}"] for layer in range(2)}
        column["head_0"] = params[f"head_{t}"]
        (expected,) = single.apply({"params": column}, _x())
        np.testing.assert_array_equal(np.asarray(outs[t]), np.asarray(expected))


def test_cross_stitch_default_mixing_couples_columns():
    model = mt.CrossStitch(TASKS, HIDDEN)
    params = dict(_init(model)["params"])
    base = model.apply({"params": params}, _x())
    params["column_1_dense_0"] = jax.tree_util.tree_map(lambda a: a + 1.0,
                                                         params["column_1_dense_0"])
    moved = model.apply({"params": params}, _x())
    assert not np.allclose(base[0], moved[0])  # task 0 reads column 1 through alpha


def test_mtan_each_task_owns_distinct_attention_params():
    model = mt.MTAN(TASKS, HIDDEN)
    params = dict(_init(model)["params"])
    att = [params[f"attention_{t}"] for t in range(3)]
    leaves = [jax.tree_util.tree_leaves(a) for a in att]
    for s in range(3):
        for t in range(s + 1, 3):
            for a, b in zip(leaves[s], leaves[t], strict=True):
                assert a is not b
                if a.ndim == 2:  # kernels from different init keys
                    assert not np.allclose(a, b)
    base = model.apply({"params": params}, _x())
    params["attention_1"] = jax.tree_util.tree_map(lambda a: a + 0.5, params["attention_1"])
    moved = model.apply({"params": params}, _x())
    np.testing.assert_array_equal(base[0], moved[0])
    np.testing.assert_array_equal(base[2], moved[2])
    assert not np.allclose(base[1], moved[1])


def test_task_bn_shares_weights_and_keeps_per_task_stats():
    model = mt.TaskBatchNorm(TASKS, HIDDEN)
    variables = _init(model)
    assert set(variables["params"]) >= {"dense_0", "dense_1", "bn_0_0", "bn_2_1"}
    assert "column_0_dense_0" not in variables["params"]
    x = _x(16) * 3.0 + 2.0
    outs, updates = model.apply(variables, x, train=True, mutable=["batch_stats"])
    stats = updates["batch_stats"]
    assert not np.allclose(stats["bn_0_0"]["mean"], variables["batch_stats"]["bn_0_0"]["mean"])
    # eval uses running averages (initial ones here) and mutates nothing
    evals = model.apply(variables, x, train=False)
    assert not np.allclose(outs[0], evals[0])
    # a task's own scale/shift touch only its output
    params = dict(variables["params"])
    params["bn_1_1"] = {"scale": params["bn_1_1"]["scale"] * 2.0, "bias": params["bn_1_1"]["bias"]}
    moved = model.apply({**variables, "params": params}, x, train=False)
    np.testing.assert_array_equal(evals[0], moved[0])
    assert not np.allclose(evals[1], moved[1])


def test_soft_sharing_penalty_is_zero_for_equal_columns_and_pulls_them_together():
    model = mt.SoftSharing(TASKS, HIDDEN)
    params = dict(_init(model)["params"])
    assert float(mt.soft_sharing_penalty(params, 3, 2)) > 0
    same = dict(params)
    for t in (1, 2):
        for layer in range(2):
            same[f"column_{t}_dense_{layer}"] = params[f"column_0_dense_{layer}"]
    assert float(mt.soft_sharing_penalty(same, 3, 2)) == 0.0
    grads = jax.grad(mt.soft_sharing_penalty)(params, 3, 2)
    stepped = jax.tree_util.tree_map(lambda p, g: p - 0.01 * g, params, grads)
    assert mt.soft_sharing_penalty(stepped, 3, 2) < mt.soft_sharing_penalty(params, 3, 2)


@pytest.mark.parametrize("arch", mt.ARCHS)
def test_task_specific_params_are_exactly_those_one_task_depends_on(arch):
    # what PCGrad and MGDA leave out of the combination must be owned by one task,
    # and everything they combine must feed at least two tasks
    model = mt.build(arch, TASKS, HIDDEN)
    variables = _init(model)

    def outputs(params):
        outs = model.apply({**variables, "params": params}, _x(), train=False)
        return jnp.stack([jnp.sum(jnp.sin(o)) for o in outs])

    jac = jax.jacrev(outputs)(variables["params"])
    own = jax.tree_util.tree_map_with_path(lambda p, _: mt.is_task_specific(p, arch), jac)
    for j, is_own in zip(jax.tree_util.tree_leaves(jac), jax.tree_util.tree_leaves(own),
                         strict=True):
        tasks_using = int(np.sum(np.any(np.asarray(j).reshape(len(TASKS), -1) != 0, axis=1)))
        assert tasks_using == 1 if is_own else tasks_using >= 2


def test_param_roles():
    params = _init(mt.MTAN(TASKS, HIDDEN))["params"]
    own = jax.tree_util.tree_map_with_path(lambda p, _: mt.is_task_specific(p, "mtan"), params)
    assert own["head_0"]["kernel"] and not own["dense_0"]["kernel"]
    assert own["attention_1"]["gate_0_in"]["kernel"]
    for arch, cls in (("cross_stitch", mt.CrossStitch), ("soft", mt.SoftSharing)):
        columns = _init(cls(TASKS, HIDDEN))["params"]
        roles = jax.tree_util.tree_map_with_path(lambda p, _, a=arch: mt.is_task_specific(p, a),
                                                 columns)
        # the same column names: mixed into every task by the stitches, or one task's own
        assert roles["column_1_dense_0"]["kernel"] == (arch == "soft")
    last = jax.tree_util.tree_map_with_path(lambda p, _: mt.last_shared_kernels(p, 2), params)
    assert last["dense_1"]["kernel"] and not last["dense_1"]["bias"]
    assert not last["dense_0"]["kernel"] and not last["attention_0"]["gate_1_out"]["kernel"]


def test_mtan_attention_reads_the_layer_below_through_one_shared_block():
    # Liu et al. 2019, eq. 1: a_t^(j) = g_t^(j)([u^(j); f^(j)(a_t^(j-1))]) * p^(j), with f^(j)
    # a feature extractor shared by every task (lorenmt/mtan's encoder_block_att)
    model = mt.MTAN(TASKS, HIDDEN)
    params = dict(_init(model)["params"])
    assert params["att_block_0"]["kernel"].shape == (HIDDEN[0], HIDDEN[1])
    assert "att_block_1" not in params  # the last attended features go to the heads
    for t in range(len(TASKS)):
        assert params[f"attention_{t}"]["gate_1_in"]["kernel"].shape == (2 * HIDDEN[1], HIDDEN[1])
    base = model.apply({"params": params}, _x())
    params["att_block_0"] = jax.tree_util.tree_map(lambda a: a + 0.5, params["att_block_0"])
    moved = model.apply({"params": params}, _x())
    for t in range(len(TASKS)):
        assert not np.allclose(base[t], moved[t])
