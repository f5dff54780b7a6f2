"""Generative replay: the generator learns, the replay term switches on, shapes stay fixed."""

import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.datasets import load_digits

from algorithms import generative_replay as gr
from models.mlp import MLP
from research import train

HP = {**gr.HPARAMS, "gr_latent": 8, "gr_hidden": 64, "gr_replay_batch_size": 16}
NUM_CLASSES = 10


def _setup(rows: int = 64):
    digits = load_digits()
    x = jnp.asarray(digits.images[:rows] / 16.0, jnp.float32)
    y = jnp.asarray(digits.target[:rows], jnp.int32)
    batch = {"x": x, "y": y, "weight": jnp.ones(rows), "task": jnp.zeros(rows, jnp.int32),
             "logit_mask": jnp.ones((rows, NUM_CLASSES), bool)}
    model = MLP(num_classes=NUM_CLASSES, hidden=(32,))
    params = model.init(jax.random.PRNGKey(0), x)["params"]
    apply_fn = lambda p, inputs: model.apply({"params": p}, inputs)
    alg = gr.make(HP)
    return alg, params, jax.jit(alg.init)(params, jax.random.PRNGKey(1)), batch, apply_fn


def _after_step(alg, params, batch, apply_fn):
    """The generator's update alone, jitted (the classifier's parameters stay put)."""
    return jax.jit(lambda s, key: alg.after_step(s, params, params, params, batch, apply_fn, key))


def test_generator_elbo_goes_down_on_a_fixed_batch():
    alg, params, state, batch, apply_fn = _setup()
    step = lambda s, key: (alg.after_step(s, params, params, params, batch, apply_fn, key), None)
    train = jax.jit(lambda s, keys: jax.lax.scan(step, s, keys)[0])
    elbo = jax.jit(lambda s, key: gr.generator_elbo(HP, s, batch, key))
    key = jax.random.PRNGKey(2)
    before = float(elbo(state, key))
    state = train(state, jax.random.split(key, 100))
    after = float(elbo(state, key))
    assert np.isfinite(after)
    assert after < 0.8 * before, (before, after)


def test_replay_term_is_zero_until_a_task_ends():
    alg, params, state, batch, apply_fn = _setup()
    rng = jax.random.PRNGKey(3)
    loss = jax.jit(lambda p, s: alg.loss(p, s, batch, apply_fn, rng))
    total, aux = loss(params, state)
    assert float(aux["replay"]) == 0.0
    np.testing.assert_allclose(total, aux["task_loss"], rtol=1e-6)

    old_task = {**batch, "weight": (batch["y"] < 5).astype(jnp.float32)}
    ended = jax.jit(lambda s: alg.end_task(params, s, old_task, apply_fn, rng))(state)
    assert list(np.asarray(ended.seen)) == [True] * 5 + [False] * 5
    assert int(ended.tasks_done) == 1
    moved = jax.tree_util.tree_map(lambda a: a + 0.1, params)
    total, aux = loss(moved, ended)
    assert float(aux["replay"]) > 1e-4
    np.testing.assert_allclose(total, 0.5 * aux["task_loss"] + 0.5 * aux["replay"], rtol=1e-5)


def test_soft_targets_push_new_classes_down_on_replayed_inputs():
    teacher = jnp.asarray([[2.0, 0.0, 0.0, 0.0]])
    old = jnp.asarray([True, True, False, False])
    active = jnp.ones(4, bool)
    one_head = jnp.zeros(4, jnp.int32)
    same = gr.soft_target_loss(teacher.at[0, 2:].set(-30.0), teacher, old, active, one_head, 2.0)
    new_high = gr.soft_target_loss(teacher.at[0, 2].set(5.0), teacher, old, active, one_head,
                                   2.0)
    assert abs(float(same)) < 1e-5
    assert float(new_high) > 0.5


def test_task_il_replay_distils_each_old_head_apart():
    """Task-IL scores each head on its own: a shift of one old head's logits, or high
    logits of the current task's head on a replayed input, changes no prediction the
    evaluation makes, so it costs nothing (van de Ven et al.'s per-context distillation)."""
    teacher = jnp.asarray([[2.0, 0.0, -1.0, 1.0, 0.0, 0.0]])
    old = jnp.asarray([True, True, True, True, False, False])  # heads {0, 1} and {2, 3}
    head = jnp.asarray([0, 0, 1, 1, 0, 0])
    active = jnp.asarray([False, False, False, False, True, True])  # the current task's head
    loss = lambda student: float(gr.soft_target_loss(student, teacher, old, active, head, 2.0))
    assert abs(loss(teacher.at[0, :2].add(3.0))) < 1e-5
    assert abs(loss(teacher.at[0, 4:].set(5.0))) < 1e-5
    # Within a head the distillation still bites, averaged over the two heads.
    flipped = teacher.at[0, 0].set(-2.0)
    one_head_only = gr.soft_target_loss(flipped[:, :2], teacher[:, :2], old[:2],
                                        jnp.zeros(2, bool), head[:2], 2.0)
    np.testing.assert_allclose(loss(flipped), float(one_head_only) / 2, rtol=1e-5)


def test_heads_are_counted_by_their_classes():
    classes = jnp.asarray([True, True, True, False])
    assert int(gr.count_heads(classes, jnp.asarray([3, 3, 3, 0]))) == 1  # one head, index 3
    assert int(gr.count_heads(classes, jnp.asarray([0, 0, 1, 2]))) == 2


def test_state_structure_and_shapes_survive_end_task():
    alg, params, state, batch, apply_fn = _setup()
    state = _after_step(alg, params, batch, apply_fn)(state, jax.random.PRNGKey(4))
    ended = jax.jit(lambda s: alg.end_task(params, s, batch, apply_fn, jax.random.PRNGKey(5)))(
        state)
    assert jax.tree_util.tree_structure(ended) == jax.tree_util.tree_structure(state)
    chex.assert_trees_all_equal_shapes_and_dtypes(ended, state)
    chex.assert_trees_all_equal(ended.old_generator, state.generator)


def test_short_split_digits_run_finishes(digits_config, tmp_path):
    config = digits_config
    config.algorithm = "generative_replay"
    config.num_tasks = 2
    config.hp.gr_latent, config.hp.gr_hidden, config.hp.gr_replay_batch_size = 8, 32, 16
    results = train.train_and_evaluate(config, str(tmp_path))
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert 0.0 <= on_disk["class_il"]["ACC"] <= 1.0
    assert results["num_compiles"] == 6
    assert np.isfinite(results["final_loss"]["loss"])


def test_a_stream_not_scaled_to_the_unit_range_is_refused(digits_config):
    """MNIST-1D's signals run from about -4 to 4: a Bernoulli ELBO on them has no lower
    bound, and the generator diverged instead of failing."""
    from research import config_check

    digits_config.algorithm = "generative_replay"
    config_check.validate(digits_config)
    digits_config.dataset = "split_mnist1d"
    with pytest.raises(config_check.ConfigError,
                       match="'generative_replay' models inputs in \\[0, 1\\] and dataset "
                             "'split_mnist1d' is not"):
        config_check.validate(digits_config)
