"""Progressive networks: columns, lateral adapters, exact freezing, scenario refusal, growth."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import algorithms
import models
from models import progressive
from research import config_check, optim
from research import engine as engine_lib
from research.data import load as data_load
from research.data import stream as stream_lib
from research.train import RunData


def small_config():
    """3 tasks of Split-Digits (4, 3, 3 classes), 2x8 columns, 1 epoch: seconds to train."""
    from research.configs import progressive_split_digits

    config = progressive_split_digits.get_config()
    config.num_tasks = 3
    config.hidden = (8, 8)
    config.num_epochs = 1
    config.batch_size = 64
    config.progress = False
    config.plots = False
    return config


@pytest.fixture
def prog_config():
    return small_config()


def init_params(config, num_classes: int = 10):
    model = models.load(config.model).build(config, num_classes)
    return model, model.init(jax.random.PRNGKey(0), jnp.zeros((1, 64)))["params"]


@pytest.fixture(scope="module")
def built():
    """(model, params) of the small config, built once for the structural tests."""
    return init_params(small_config())


def train_tasks(config, seed: int = 0) -> list:
    """Params after init and after each task, trained by the engine WITHOUT optimizer resets.

    Keeping the optimizer state across tasks is the hard case for freezing:
    Adam's moments of a finished column are non-zero when the next task starts.
    """
    method = algorithms.load(config.algorithm)
    data = RunData([data_load.make_stream(config, seed)], config.scenario,
                   method.make(config.hp.to_dict()).train_on, config.eval_batch_size)
    model = models.load(config.model).build(config, data.num_classes)
    eng = engine_lib.Engine(model, method, config.hp.to_dict(), optim.from_config(config),
                            config.batch_size, data.steps_per_epoch(config.batch_size))
    traced = engine_lib.split_hparams(config.hp.to_dict())[0]
    hp = {k: jnp.asarray([v], jnp.float32) for k, v in traced.items()}
    sample = jnp.asarray(data.train_x[0, 0, :1])
    state = eng.init(jax.random.PRNGKey(seed)[None], hp, sample)
    snapshots = [jax.device_get(state.params)]
    for task in data.stages:
        pool = jax.tree_util.tree_map(jnp.asarray, data.train_pool(task))
        for _ in range(config.num_epochs):
            state, _ = eng.epochs(state, pool, hp)
        state = eng.end_task(state, pool, hp)
        snapshots.append(jax.device_get(state.params))
    return [jax.tree_util.tree_map(lambda a: a[0], s) for s in snapshots]


def assert_same(a, b) -> None:
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


def changed(a, b) -> bool:
    return any(not np.array_equal(x, y) for x, y in
               zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True))


def test_class_groups_match_the_stream_split():
    order = [3, 1, 4, 0, 5, 9, 2, 6, 8, 7]
    for tasks in (2, 3, 5):
        x = np.zeros((10, 1))
        y = np.arange(10)
        split = stream_lib.split_by_classes(x, y, x, y, order, tasks)
        ours = progressive.class_groups(",".join(map(str, order)), 10, tasks)
        assert [tuple(np.unique(t[1]).tolist()) for t in split] == [tuple(sorted(g))
                                                                    for g in ours]
    assert progressive.class_groups("", 10, 5)[0] == (0, 1)
    with pytest.raises(ValueError, match="permutation"):
        progressive.class_groups("0,1,1", 3, 1)


def test_lateral_adapters_from_every_earlier_column(built):
    _, params = built
    assert sorted(params) == ["column_0", "column_1", "column_2"]
    for k in range(3):
        laterals = {n for n in params[f"column_{k}"] if n.startswith("lateral_")}
        # Into hidden layer 1 and into the head (layer 2), none into the first layer.
        assert laterals == ({"lateral_1", "lateral_2"} if k else set())
        for name in laterals:
            alpha = params[f"column_{k}"][name]["alpha"]
            assert alpha.shape == (k,)  # one scale per earlier column
            assert np.all((alpha > 0.0) & (alpha < 0.1))


def test_adapter_projects_the_earlier_columns_onto_one_column_width(built):
    """Rusu et al. (2016) eq. 2: V maps the concatenated activations of all k earlier
    columns' layer i-1 (k * n_{i-1} values) onto n_{i-1} units, so the adapter does not
    widen as columns accumulate."""
    _, params = built
    for k in (1, 2):
        for i, outputs in ((1, 8), (2, 3)):  # hidden layer 1 (8 units), the head (3 classes)
            adapter = params[f"column_{k}"][f"lateral_{i}"]
            assert adapter["V"]["kernel"].shape == (8 * k, 8)
            assert adapter["U"]["kernel"].shape == (8, outputs)


def test_logits_of_a_task_come_from_its_own_and_earlier_columns(built):
    model, params = built
    groups = progressive.class_groups("", 10, 3)  # (0..3), (4..6), (7..9)
    x = jax.random.normal(jax.random.PRNGKey(1), (5, 64))
    apply = jax.jit(lambda p: model.apply({"params": p}, x))
    base = apply(params)
    for k in range(3):
        bumped = {**params, f"column_{k}": jax.tree_util.tree_map(
            lambda a: a + 0.5, params[f"column_{k}"])}
        out = apply(bumped)
        for t, classes in enumerate(groups):
            same = np.array_equal(out[:, list(classes)], base[:, list(classes)])
            assert same == (t < k), (k, t)


def test_earlier_columns_bit_identical_after_later_tasks(prog_config):
    prog_config.reset_optimizer = False
    snaps = train_tasks(prog_config)
    for k in range(3):
        name = f"column_{k}"
        assert changed(snaps[k][name], snaps[k + 1][name]), f"{name} did not train in task {k}"
        for later in range(k + 1, 4):
            assert_same(snaps[k + 1][name], snaps[later][name])  # frozen once its task is done
        for before in range(k):
            assert_same(snaps[0][name], snaps[before + 1][name])  # untouched before its task


def test_class_il_is_refused(prog_config):
    prog_config.scenario = "class"
    with pytest.raises(config_check.ConfigError, match="'progressive' does not support "
                                                       "scenario 'class'; it supports: task"):
        config_check.validate(prog_config)


def test_a_model_without_columns_is_refused():
    alg = algorithms.load("progressive").make({})
    params = {"Dense_0": {"kernel": jnp.zeros((2, 2))}, "head": {"kernel": jnp.zeros((2, 2))}}
    with pytest.raises(ValueError, match="config.model='progressive'"):
        alg.init(params, jax.random.PRNGKey(0))


def test_parameter_growth(built):
    _, params = built
    # A column: dense_0 64*8+8 = 520, dense_1 8*8+8 = 72, head 8*n+n (n = 4, 3, 3 classes).
    # Column k >= 1: an adapter into dense_1 (alpha k + V 8k*8+8 + U 8*8 = 65k + 72) and one
    # into the head (k + V 8k*8+8 + U 8*3 = 65k + 32).
    col = [520 + 72 + 36, 520 + 72 + 27 + 137 + 97, 520 + 72 + 27 + 202 + 162]
    assert progressive.parameter_growth(params) == np.cumsum(col).tolist() == [628, 1481, 2464]
