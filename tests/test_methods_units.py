"""Exact checks of single hooks: SI's omega, A-GEM's projection, LwF's term, freezing, herding."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from algorithms import agem, base, freeze, icarl, lwf, si


def test_si_omega_matches_hand_computation_on_a_quadratic():
    a, lr, steps, xi = np.array([1.0, 3.0, 0.5]), 0.1, 7, 0.1
    theta0 = np.array([1.0, -2.0, 0.5])
    alg = si.make({"si_c": 1.0, "si_xi": xi})
    params = {"w": jnp.asarray(theta0, jnp.float32)}
    state = alg.init(params, jax.random.PRNGKey(0))
    theta, path = theta0.copy(), np.zeros(3)
    for _ in range(steps):  # SGD on L = 1/2 sum a theta^2
        grad = a * theta
        new = theta - lr * grad
        path += -grad * (new - theta)
        state = alg.after_step(state, {"w": jnp.asarray(theta, jnp.float32)},
                               {"w": jnp.asarray(new, jnp.float32)},
                               {"w": jnp.asarray(grad, jnp.float32)}, {}, None, None)
        theta = new
    end = {"w": jnp.asarray(theta, jnp.float32)}
    state = alg.end_task(end, state, {}, None, None)
    expected = path / ((theta - theta0) ** 2 + xi)
    np.testing.assert_allclose(state.importance["w"], expected, rtol=1e-5)
    np.testing.assert_allclose(state.anchor["w"], theta, rtol=1e-6)
    assert float(jnp.abs(state.path["w"]).sum()) == 0.0


def test_agem_projection_never_points_against_the_reference():
    keys = jax.random.split(jax.random.PRNGKey(0), 200)
    shapes = {"a": (3, 4), "b": (5,)}

    def one(key):
        k1, k2 = jax.random.split(key)
        g = {n: jax.random.normal(jax.random.fold_in(k1, i), s) for i, (n, s) in
             enumerate(shapes.items())}
        r = {n: jax.random.normal(jax.random.fold_in(k2, i), s) for i, (n, s) in
             enumerate(shapes.items())}
        dot = lambda x, y: sum(jnp.vdot(x[n], y[n]) for n in shapes)
        out = agem.project(g, r)
        return dot(g, r), dot(out, r), jax.tree_util.tree_map(lambda x, y: jnp.max(
            jnp.abs(x - y)), out, g)

    before, after, change = jax.vmap(one)(keys)
    assert np.all(np.asarray(after) >= -1e-4)
    assert np.any(np.asarray(before) < 0)  # the test does exercise the projection
    unchanged = np.asarray(before) >= 0
    for leaf in jax.tree_util.tree_leaves(change):
        assert np.all(np.asarray(leaf)[unchanged] == 0.0)


def _linear(params, x):
    return x @ params["head"]["kernel"]


def test_agem_constrains_by_earlier_tasks_only():
    rng = np.random.default_rng(0)
    params = {"head": {"kernel": jnp.asarray(rng.normal(size=(3, 4)), jnp.float32)}}

    def task(label, t):
        return {"x": jnp.asarray(rng.normal(size=(6, 3)), jnp.float32),
                "y": jnp.full((6,), label), "weight": jnp.ones(6),
                "logit_mask": jnp.ones((6, 4), bool), "task": jnp.full((6,), t)}

    hp = {"buffer_size": 8, "replay_batch_size": 4, "buffer_input_size": 0, "agem_ref_size": 8}
    alg = agem.make(hp)
    buf = alg.init(params, None)
    first, second = task(0, 0), task(1, 1)
    key = jax.random.PRNGKey(0)
    grads = jax.grad(base.task_loss)(params, first, _linear)
    chex.assert_trees_all_equal(alg.grads(grads, params, buf, first, _linear, key), grads)
    buf = alg.after_step(buf, params, params, grads, first, _linear, key)
    assert int(buf.valid.sum()) == 0  # a task's own rows do not enter the memory as it trains
    buf = alg.end_task(params, buf, first, _linear, key)
    assert int(buf.valid.sum()) == 6 and set(np.asarray(buf.task)[np.asarray(buf.valid)]) == {0}
    reference = jax.grad(base.task_loss)(params, first, _linear)
    projected = alg.grads(reference, params, buf, second, _linear, key)
    chex.assert_trees_all_equal(projected, reference)  # along g_ref: nothing to remove
    opposed = jax.tree_util.tree_map(jnp.negative, reference)
    out = alg.grads(opposed, params, buf, second, _linear, key)
    chex.assert_trees_all_close(out, jax.tree_util.tree_map(jnp.zeros_like, out), atol=1e-6)


def test_lwf_term_is_zero_when_student_equals_teacher():
    rng = np.random.default_rng(0)
    params = {"head": {"kernel": jnp.asarray(rng.normal(size=(3, 4)), jnp.float32)}}
    batch = {"x": jnp.asarray(rng.normal(size=(6, 3)), jnp.float32),
             "y": jnp.asarray([2, 3, 2, 3, 2, 3]), "weight": jnp.ones(6),
             "logit_mask": jnp.ones((6, 4), bool)}
    alg = lwf.make({"lwf_alpha": 1.0, "lwf_temperature": 2.0})
    old_task = {**batch, "y": jnp.asarray([0, 1, 0, 1, 0, 1])}
    state = alg.end_task(params, alg.init(params, None), old_task, _linear, None)
    assert list(np.asarray(state.seen)) == [True, True, False, False]
    _, aux = alg.loss(params, state, batch, _linear, None)
    assert abs(float(aux["distillation"])) < 1e-6
    moved = {"head": {"kernel": params["head"]["kernel"].at[:, 0].add(1.0)}}
    _, aux = alg.loss(moved, state, batch, _linear, None)
    assert float(aux["distillation"]) > 1e-3


def test_lwf_distils_each_old_head_apart_in_task_il():
    rng = np.random.default_rng(0)
    params = {"head": {"kernel": jnp.asarray(rng.normal(size=(3, 6)), jnp.float32)}}
    alg = lwf.make({"lwf_alpha": 1.0, "lwf_temperature": 2.0})
    state = alg.init(params, None)
    x = jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)
    for classes in ([0, 1], [2, 3]):  # two finished tasks, a head each
        mask = jnp.zeros((4, 6), bool).at[:, classes].set(True)
        task = {"x": x, "y": jnp.full((4,), classes[0]), "weight": jnp.ones(4), "logit_mask": mask}
        state = alg.end_task(params, state, task, _linear, None)
    assert list(np.asarray(state.head)[:4]) == [0, 0, 1, 1]
    new = {"x": x, "y": jnp.full((4,), 4), "weight": jnp.ones(4),
           "logit_mask": jnp.zeros((4, 6), bool).at[:, 4:].set(True)}
    shifted = lambda p, x: _linear(p, x).at[:, 2:4].add(3.0)  # one head's logits moved together
    _, aux = alg.loss(params, state, new, shifted, None)
    assert abs(float(aux["distillation"])) < 1e-5  # each head's softmax is unchanged
    joint = lwf.distillation(shifted(params, x), _linear(params, x), state.seen, jnp.ones(4), 2.0)
    assert float(joint) > 1e-2  # one softmax over both heads would count the shift


def test_freeze_keeps_lower_layers_fixed_after_the_first_task():
    params = {"body": {"kernel": jnp.ones((2, 2))}, "head": {"kernel": jnp.ones((2, 1))}}
    alg = freeze.make({"freeze_trainable": "head", "freeze_after_tasks": 1})
    opt = alg.optimizer(optax.adamw(0.1, weight_decay=0.1))
    grads = jax.tree_util.tree_map(jnp.ones_like, params)
    opt_state = opt.init(params)
    for tasks_done, body_moves in ((0, True), (1, False)):
        g = alg.grads(grads, params, jnp.asarray(tasks_done), {}, None, None)
        updates, opt_state = opt.update(g, opt_state, params)
        new = optax.apply_updates(params, updates)
        assert bool(jnp.any(new["body"]["kernel"] != params["body"]["kernel"])) == body_moves
        assert bool(jnp.any(new["head"]["kernel"] != params["head"]["kernel"]))
        params = new


def test_freeze_clips_the_whole_gradient_at_once_before_freezing():
    """A global-norm clip in the base optimizer sees every module's gradient, as it
    would without the method: one norm over 4 + 2 ones, not one per group."""
    params = {"body": {"kernel": jnp.ones((2, 2))}, "head": {"kernel": jnp.ones((2, 1))}}
    alg = freeze.make({"freeze_trainable": "head", "freeze_after_tasks": 1})
    opt = alg.optimizer(optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(1.0)))
    grads = alg.grads(jax.tree_util.tree_map(jnp.ones_like, params), params, jnp.asarray(0),
                      {}, None, None)
    updates, _ = opt.update(grads, opt.init(params), params)
    for leaf in jax.tree_util.tree_leaves(updates):
        np.testing.assert_allclose(leaf, -1.0 / np.sqrt(6.0), rtol=1e-6)


def test_freeze_names_a_module_the_model_lacks():
    alg = freeze.make({"freeze_trainable": "Dense_1,head", "freeze_after_tasks": 1})
    with pytest.raises(ValueError, match=r"freeze_trainable names \['Dense_1'\].*Dense_0, head"):
        alg.optimizer(optax.adam(0.1)).init({"Dense_0": jnp.ones(2), "head": jnp.ones(2)})


def test_herding_ranks_each_class_and_starts_closest_to_the_mean():
    rng = np.random.default_rng(0)
    feats = jnp.asarray(rng.normal(size=(9, 3)), jnp.float32)
    labels = jnp.asarray([0, 1, 0, 1, 0, 1, 0, 2, 2])
    eligible = jnp.asarray([True] * 8 + [False])
    ranks = np.asarray(icarl.herding_ranks(feats, labels, eligible, 3, steps=4))
    assert sorted(ranks[[0, 2, 4, 6]]) == [0, 1, 2, 3]
    assert sorted(ranks[[1, 3, 5]]) == [0, 1, 2] and ranks[8] == icarl.UNRANKED
    members = np.asarray(feats)[[0, 2, 4, 6]]
    first = np.argmin(((members - members.mean(0)) ** 2).sum(1))
    assert ranks[[0, 2, 4, 6]][first] == 0


def test_icarl_loss_leaves_the_classes_of_later_tasks_alone():
    rng = np.random.default_rng(0)
    params = {"head": {"kernel": jnp.asarray(rng.normal(size=(3, 4)), jnp.float32)}}
    alg = icarl.make({"buffer_size": 8, "replay_batch_size": 4, "buffer_input_size": 0,
                      "icarl_selection": "random"})
    state = alg.init(params, jax.random.PRNGKey(0))
    batch = {"x": jnp.asarray(rng.normal(size=(6, 3)), jnp.float32),
             "y": jnp.asarray([0, 1, 0, 1, 0, 1]), "weight": jnp.ones(6),
             "logit_mask": jnp.ones((6, 4), bool), "task": jnp.zeros(6, jnp.int32)}
    loss = lambda p, s, b: alg.loss(p, s, b, _linear, jax.random.PRNGKey(1))[0]
    grad = np.asarray(jax.grad(loss)(params, state, batch)["head"]["kernel"])
    assert np.all(grad[:, 2:] == 0.0) and np.all(np.abs(grad[:, :2]).sum(0) > 0)
    only_zeros = {**batch, "y": jnp.zeros(6, jnp.int32)}  # class 1 met earlier in the task
    state = alg.after_step(state, params, params, None, batch, _linear, None)
    grad = np.asarray(jax.grad(loss)(params, state, only_zeros)["head"]["kernel"])
    assert np.all(np.abs(grad[:, 1]) > 0) and np.all(grad[:, 2:] == 0.0)


def test_lwf_distillation_ignores_classes_outside_the_mask():
    student = jnp.asarray([[1.0, 2.0, 50.0]])
    teacher = jnp.asarray([[1.0, 2.0, -50.0]])
    got = lwf.distillation(student, teacher, jnp.asarray([True, True, False]), jnp.ones(1), 2.0)
    chex.assert_trees_all_close(got, 0.0, atol=1e-6)


def test_ewc_penalty_from_moments_equals_the_sum_of_per_task_quadratics():
    from algorithms import ewc

    rng = np.random.default_rng(0)
    fisher = {"w": jnp.asarray(rng.random((3, 4, 2)), jnp.float32)}
    anchor = {"w": jnp.asarray(rng.normal(size=(3, 4, 2)), jnp.float32)}
    fisher["w"] = fisher["w"].at[2].set(0.0)  # an empty slot adds nothing
    state = ewc.EWCState(fisher, anchor, jnp.asarray(2), ewc._moments(fisher, anchor))
    params = {"w": jnp.asarray(rng.normal(size=(4, 2)), jnp.float32)}
    expected = sum(float(jnp.sum(fisher["w"][k] * (params["w"] - anchor["w"][k]) ** 2))
                   for k in range(3))
    np.testing.assert_allclose(float(ewc.penalty(params, state)), expected, rtol=1e-5)
    grad = jax.grad(ewc.penalty)(params, state)["w"]
    expected_grad = sum(2 * fisher["w"][k] * (params["w"] - anchor["w"][k]) for k in range(3))
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-5, atol=1e-6)
