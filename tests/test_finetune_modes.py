"""Fine-tuning modes: which parameters move, by how much, and that each mode trains."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from algorithms import distill
from models.text import build as text_build
from research import finetune, optim
from research.configs import sentiment_domains, sentiment_finetune
from research.data import sentiment


def _config(mode: str, **changes):
    config = sentiment_domains.get_config("runlocal")
    config.update(finetune=mode, **changes)
    return config


def _params(config, length: int = 8):
    model = text_build.build(config, 3)
    x = jnp.zeros((1, 3, length), jnp.int32)
    return model, model.init(jax.random.PRNGKey(0), x)["params"]


@pytest.mark.parametrize("mode", ["prompt", "lora"])
def test_peft_modes_train_under_two_percent_of_minilm(mode):
    config = _config(mode, encoder_layers=0)
    model = text_build.build(config, 3)
    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 3, 8), jnp.int32))
    fraction = finetune.trainable_fraction(shapes["params"], config)
    assert 0 < fraction < 0.02
    assert finetune.trainable_fraction(shapes["params"], _config("full", encoder_layers=0)) == 1


def test_pretrained_prompt_is_sampled_vocabulary_the_same_alone_or_vmapped():
    # The engine's path: params of 3 vmapped runs, then the pretrained weights put in.
    config = _config("prompt", num_prompt_tokens=4, prompt_init="vocab")
    model = text_build.build(config, 3)
    x = jnp.zeros((1, 3, 8), jnp.int32)
    keys = jnp.stack([jax.random.PRNGKey(s) for s in range(3)])
    initial = jax.vmap(lambda k: model.init(k, x)["params"])(keys)
    kept = text_build.pretrained_params(_config("prompt", num_prompt_tokens=4), initial)
    np.testing.assert_array_equal(kept["encoder"]["prompt"], initial["encoder"]["prompt"])
    runs = text_build.pretrained_params(config, initial)
    table = runs["encoder"]["embeddings"]["word_embeddings"]["embedding"][0]
    prompts = np.asarray(runs["encoder"]["prompt"])
    for prompt in prompts:
        assert all(np.any((table == row).all(axis=1)) for row in prompt)
    assert len({p.tobytes() for p in prompts}) == 3  # one draw per seed
    alone = text_build.pretrained_params(config, model.init(keys[1], x)["params"])
    np.testing.assert_array_equal(alone["encoder"]["prompt"], prompts[1])


def test_depth_orders_embeddings_layers_and_head():
    path = lambda *keys: tuple(jax.tree_util.DictKey(k) for k in keys)
    assert finetune.depth(path("encoder", "embeddings", "word_embeddings"), 6) == 0
    assert finetune.depth(path("encoder", "prompt"), 6) == 0
    assert finetune.depth(path("encoder", "layer_3", "output", "kernel"), 6) == 4
    assert finetune.depth(path("encoder", "pooler", "kernel"), 6) == 7
    assert finetune.depth(path("head", "out", "kernel"), 6) == 7


def test_discriminative_rates_decay_with_depth():
    config = _config("discriminative", optimizer="sgd", learning_rate=1.0, layer_decay=0.5)
    params = {"encoder": {"embeddings": {"w": jnp.ones(2)}, "layer_0": {"w": jnp.ones(2)},
                          "layer_1": {"w": jnp.ones(2)}},
              "head": {"w": jnp.ones(2)}}
    opt = optim.from_config(config)  # the 2-layer truncation: depths 0..3
    updates, _ = opt.update(jax.tree_util.tree_map(jnp.ones_like, params), opt.init(params))
    got = {k: float(-v["w"][0]) for k, v in updates["encoder"].items()}
    assert got == {"embeddings": 0.125, "layer_0": 0.25, "layer_1": 0.5}
    assert float(-updates["head"]["w"][0]) == 1.0


@pytest.mark.parametrize("mode,want", [
    # Every leaf trains: one global norm over all 8 gradient values, not one per depth.
    ("discriminative", {"embeddings": 8 ** -0.5, "layer_0": 8 ** -0.5, "layer_1": 8 ** -0.5,
                        "head": 8 ** -0.5}),
    # Frozen leaves (embeddings, layer_0) do not count towards the norm.
    ("freeze_bottom", {"embeddings": 0.0, "layer_0": 0.0, "layer_1": 0.5, "head": 0.5}),
])
def test_clip_norm_is_one_global_norm_over_the_trained_leaves(mode, want):
    config = _config(mode, optimizer="sgd", learning_rate=1.0, layer_decay=1.0,
                     freeze_layers=1, clip_norm=1.0)
    params = {"encoder": {"embeddings": {"w": jnp.ones(2)}, "layer_0": {"w": jnp.ones(2)},
                          "layer_1": {"w": jnp.ones(2)}},
              "head": {"w": jnp.ones(2)}}
    opt = optim.from_config(config)
    updates, _ = opt.update(jax.tree_util.tree_map(jnp.ones_like, params), opt.init(params))
    got = {**{k: -v["w"] for k, v in updates["encoder"].items()}, "head": -updates["head"]["w"]}
    for name, value in want.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-6, err_msg=name)


def test_unknown_mode_is_named():
    with pytest.raises(ValueError, match="choices: full, linear_probe"):
        optim.from_config(_config("adapters"))


@pytest.mark.parametrize("mode", ["lora", "prompt", "freeze_bottom", "linear_probe"])
def test_frozen_params_stay_bit_identical(mode):
    config = _config(mode, weight_decay=0.1, learning_rate=1e-2, freeze_layers=1)
    model, params = _params(config)
    opt = optim.from_config(config)
    rng = np.random.default_rng(0)
    x = jnp.asarray(np.stack([rng.integers(1000, 2000, (4, 8)), np.ones((4, 8)),
                              np.zeros((4, 8))], 1), jnp.int32)
    y = jnp.array([0, 1, 2, 1])

    @jax.jit
    def step(p, state):
        loss = lambda q: optax.softmax_cross_entropy_with_integer_labels(
            model.apply({"params": q}, x), y).mean()
        updates, state = opt.update(jax.grad(loss)(p), state, p)
        return optax.apply_updates(p, updates), state

    new, state = params, opt.init(params)
    for _ in range(2):
        new, state = step(new, state)
    labels = finetune.labels_fn(config, 2)(params)
    moved = jax.tree_util.tree_map(lambda a, b: not np.array_equal(a, b), params, new)
    pairs = list(zip(jax.tree_util.tree_leaves(labels), jax.tree_util.tree_leaves(moved),
                     strict=True))
    assert any(label == finetune.FREEZE for label, _ in pairs)
    assert not any(m for label, m in pairs if label == finetune.FREEZE)
    assert any(m for label, m in pairs if label == finetune.TRAIN)
    assert all(jax.tree_util.tree_leaves(moved["head"]))  # unused leaves (pooler) may rest


def test_distillation_kl_directions():
    s = jnp.array([[2.0, 0.0, -1.0]])
    t = jnp.array([[0.0, 1.0, 0.0]])
    w = jnp.ones(1)
    same = distill.kl_divergence(s, s, w, 2.0, "student_teacher")
    assert float(same) == pytest.approx(0, abs=1e-6)
    forward = distill.kl_divergence(s, t, w, 1.0, "teacher_student")
    reverse = distill.kl_divergence(s, t, w, 1.0, "student_teacher")
    p_s, p_t = jax.nn.softmax(s), jax.nn.softmax(t)
    assert float(reverse) == pytest.approx(float(jnp.sum(p_s * jnp.log(p_s / p_t))), rel=1e-5)
    assert float(forward) == pytest.approx(float(jnp.sum(p_t * jnp.log(p_t / p_s))), rel=1e-5)
    with pytest.raises(ValueError, match="distill_direction"):
        distill.make({**distill.HPARAMS, "distill_direction": "sideways"})


# -- One epoch of each mode through the engine (train_and_evaluate) ----------------------
needs_corpus = pytest.mark.skipif(not sentiment.is_cached(), reason="needs the corpus")


def _one_epoch(config, workdir) -> dict:
    from scripts import finetune as finetune_cli
    config.update(domains="tweets", max_examples_per_domain=24, max_length=16)
    return finetune_cli.run(config, str(workdir), overwrite=True)


@pytest.mark.slow
@needs_corpus
@pytest.mark.parametrize("mode", finetune.MODES)
def test_each_mode_runs_one_epoch(mode, tmp_path):
    config = sentiment_finetune.get_config("runlocal")
    config.update(finetune=mode, freeze_layers=1)
    out = _one_epoch(config, tmp_path)
    assert 0 <= out["test_accuracy"][0] <= 1
    assert (out["trainable_fraction"] < 0.02) == (mode in ("prompt", "lora", "linear_probe"))


@pytest.mark.slow
@needs_corpus
def test_cached_features_probe_and_distillation(tmp_path):
    config = sentiment_finetune.get_config("runlocal")
    config.update(finetune="linear_probe", cached_features=True, num_epochs=3)
    probe = _one_epoch(config, tmp_path / "probe")
    assert probe["trainable_fraction"] == 1.0  # the run's model is the linear head alone
    teacher = sentiment_finetune.get_config("runlocal")
    _one_epoch(teacher, tmp_path / "teacher")
    student = sentiment_finetune.get_config("runlocal")
    student.update(algorithm="distill", head="scratch_textcnn",
                   teacher_workdir=str(tmp_path / "teacher"))
    out = _one_epoch(student, tmp_path / "student")
    assert 0 <= out["test_accuracy"][0] <= 1


def test_encode_features_is_memoised_on_the_tokens():
    config = _config("linear_probe", encoder_layers=1)
    packed = np.stack([np.array([[101, 2204, 102, 0], [1, 1, 1, 0], [0, 0, 0, 0]], np.int32)] * 2)
    first = finetune.encode_features(config, packed)
    assert first.shape == (2, 384) and np.all(np.isfinite(first))
    assert finetune.encode_features(config, packed.copy()) is first  # same tokens: no re-encoding
    other = packed.copy()
    other[1, 0, 1] = 2919
    second = finetune.encode_features(config, other)
    assert second is not first and not np.allclose(second[1], first[1])
    np.testing.assert_allclose(second[0], first[0], atol=1e-5)


def test_freeze_bottom_never_freezes_the_head():
    # The local config cuts MiniLM to 2 layers: freezing 2 leaves the pooler and head training.
    params = {"encoder": {"layer_1": {"w": jnp.ones(2)}, "pooler": {"w": jnp.ones(2)}},
              "head": {"w": jnp.ones(2)}}
    labels = finetune.labels_fn(_config("freeze_bottom", freeze_layers=2), 2)(params)
    assert labels == {"encoder": {"layer_1": {"w": finetune.FREEZE},
                                  "pooler": {"w": finetune.TRAIN}},
                      "head": {"w": finetune.TRAIN}}
    with pytest.raises(ValueError, match="freeze_layers=3 is more than the encoder's 2"):
        optim.from_config(_config("freeze_bottom", freeze_layers=3))
