"""Dynamic expansion: blocks of units per task, silent future blocks, exact freezing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models import expansion, progressive
from research import config_check
from tests.test_progressive import assert_same, changed, init_params, train_tasks


def small_config(scenario: str = "class"):
    """3 tasks of Split-Digits, base width 8 and 4 units per later task, 1 epoch."""
    from research.configs import split_digits

    config = split_digits.get_config()
    config.model = config.algorithm = "expansion"
    config.scenario = scenario
    config.num_tasks = 3
    config.hidden = (8, 8)
    config.hp.expansion_units = 4
    config.num_epochs = 1
    config.batch_size = 64
    config.progress = False
    config.plots = False
    return config


@pytest.fixture(scope="module")
def built():
    return init_params(small_config())


def test_blocks_grow_and_read_only_older_units(built):
    _, params = built
    assert sorted(params) == ["block_0", "block_1", "block_2"]
    # Block 0: the base width 8; later blocks 4 units per layer, reading all older units.
    assert params["block_0"]["dense_0"]["kernel"].shape == (64, 8)
    assert params["block_0"]["dense_1"]["kernel"].shape == (8, 8)
    assert params["block_1"]["dense_1"]["kernel"].shape == (8 + 4, 4)
    assert params["block_2"]["dense_1"]["kernel"].shape == (8 + 4 + 4, 4)
    assert params["block_2"]["head"]["kernel"].shape == (16, 3)  # task 2's 3 classes
    for b in (1, 2):  # silent until trained: a zero output layer
        assert not np.any(params[f"block_{b}"]["head"]["kernel"])


def test_future_blocks_are_masked_out_of_the_forward_pass(built):
    model, params = built
    x = jax.random.normal(jax.random.PRNGKey(1), (5, 64))
    apply = jax.jit(lambda p: model.apply({"params": p}, x))
    base = apply(params)
    np.testing.assert_array_equal(base[:, 4:], 0.0)  # tasks 1 and 2 not trained yet
    for b in (1, 2):  # any value of a silent block's hidden units changes nothing
        block = params[f"block_{b}"]
        bumped = {**params, f"block_{b}": {
            **block, "dense_0": jax.tree_util.tree_map(lambda a: a + 1.0, block["dense_0"])}}
        np.testing.assert_array_equal(apply(bumped), base)


def test_old_units_bit_identical_after_later_tasks():
    config = small_config("class")  # the loss sees every class, old logits included
    config.reset_optimizer = False
    snaps = train_tasks(config)
    for b in range(3):
        name = f"block_{b}"
        assert changed(snaps[b][name], snaps[b + 1][name]), f"{name} did not train in task {b}"
        for later in range(b + 1, 4):
            assert_same(snaps[b + 1][name], snaps[later][name])


def test_parameter_growth_and_width_from_config():
    config = small_config()
    config.hp.expansion_units = 2
    _, params = init_params(config)
    # Block 0: 64*8+8 + 8*8+8 + head 8*4+4 = 628. Block 1: 64*2+2 + (8+2)*2+2 + (8+2)*3+3 = 185.
    # Block 2: 130 + (8+2+2)*2+2 + (12)*3+3 = 195.
    assert progressive.parameter_growth(params, "block_") == [628, 813, 1008]
    assert expansion.parameter_growth(params) == [628, 813, 1008]
    config.hp.expansion_units = 0
    with pytest.raises(ValueError, match="expansion_units must be positive"):
        init_params(config)


def test_domain_il_is_refused():
    config = small_config()
    config.dataset, config.scenario = "permuted_digits", "domain"
    with pytest.raises(config_check.ConfigError, match="'expansion' does not support"):
        config_check.validate(config)


def test_every_leaf_is_in_a_block(built):
    leaves = jax.tree_util.tree_flatten_with_path(built[1])[0]
    assert all(str(path[0].key).startswith("block_") for path, _ in leaves)
    assert jnp.all(jnp.isfinite(jnp.concatenate([v.ravel() for _, v in leaves])))


@pytest.mark.parametrize("name, model", [
    ("progressive", progressive.ProgressiveNet(((0, 1), (2, 3)), hidden=())),
    ("expansion", expansion.ExpandingMLP(((0, 1), (2, 3)), hidden=()))])
def test_columns_without_hidden_layers_are_refused_by_name(name, model):
    with pytest.raises(ValueError, match=f"model '{name}' needs at least one hidden layer"):
        model.init(jax.random.PRNGKey(0), jnp.ones((2, 64)))
