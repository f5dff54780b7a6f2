"""S-Prompts: K-means, domain identification, routing through the right prompt and head,
a frozen encoder and untouched earlier slots after a run, and the runlocal CLI run."""

import json
import os
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algorithms import s_prompts
from models.text import build as text_build
from research import train
from research.configs import sentiment_sprompts

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HP = {"sprompts_max_tasks": 3, "sprompts_clusters": 2, "sprompts_kmeans_iters": 10}


def _blobs(centres: np.ndarray, per: int, seed: int = 0, scale: float = 0.05) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([c + scale * rng.standard_normal((per, c.shape[0])) for c in centres])


# -- Pure pieces ---------------------------------------------------------------------------
def test_kmeans_finds_separated_blobs_and_ignores_padding():
    centres = np.array([[5.0, 0.0], [0.0, 5.0], [-5.0, -5.0]])
    feats = _blobs(centres, 20)
    padding = np.full((10, 2), 100.0)  # far away: would pull a centroid if not masked
    x = jnp.asarray(np.concatenate([feats, padding]), jnp.float32)
    valid = jnp.arange(70) < 60
    cent = np.asarray(s_prompts.kmeans(x, valid, 3, 10, jax.random.PRNGKey(1)))
    order = np.argsort(cent[:, 0] + 10 * cent[:, 1])
    np.testing.assert_allclose(cent[order], centres[np.argsort(centres[:, 0]
                                                               + 10 * centres[:, 1])], atol=0.05)


def test_kmeans_with_fewer_rows_than_clusters_repeats_rows():
    x = jnp.array([[1.0, 0.0], [0.0, 1.0], [9.0, 9.0]])
    cent = s_prompts.kmeans(x, jnp.array([True, True, False]), 4, 5, jax.random.PRNGKey(0))
    assert np.isfinite(np.asarray(cent)).all()
    rows = {tuple(r) for r in np.asarray(cent).round(6)}
    assert rows == {(1.0, 0.0), (0.0, 1.0)}


def test_domain_identification_picks_the_slot_of_the_nearest_centroid():
    # Three domains on separated directions of the unit sphere, two centroids each.
    directions = np.eye(4)[:3]
    centroids = np.stack([np.stack([d, d]) for d in directions])  # [3, 2, 4]
    feats = _blobs(directions, 10, scale=0.1)
    feats /= np.linalg.norm(feats, axis=-1, keepdims=True)
    truth = np.repeat(np.arange(3), 10)
    got = s_prompts.pick_slots(jnp.asarray(feats, jnp.float32),
                               jnp.asarray(centroids, jnp.float32), jnp.ones(3, bool))
    np.testing.assert_array_equal(got, truth)
    # An empty slot is never picked, even when its (zero) centroids are nearest.
    only_two = s_prompts.pick_slots(jnp.asarray(feats, jnp.float32),
                                    jnp.asarray(centroids, jnp.float32),
                                    jnp.array([True, True, False]))
    assert set(np.asarray(only_two).tolist()) <= {0, 1}
    np.testing.assert_array_equal(only_two[:20], truth[:20])


def test_bad_hyper_parameters_are_named():
    with pytest.raises(ValueError, match="sprompts_clusters must be >= 1"):
        s_prompts.make({**HP, "sprompts_clusters": 0})


# -- Hooks on the 2-layer runlocal encoder ---------------------------------------------------
def _tiny(finetune: str = "prompt"):
    config = sentiment_sprompts.get_config("runlocal")
    config.finetune = finetune
    model = text_build.build(config, 3)
    x = jnp.zeros((1, 3, 8), jnp.int32)
    return model, jax.jit(model.init)(jax.random.PRNGKey(0), x)["params"]


def _tokens(seed: int, n: int) -> jax.Array:
    ids = np.random.default_rng(seed).integers(1000, 5000, (n, 8))
    return jnp.asarray(np.stack([ids, np.ones_like(ids), np.zeros_like(ids)], 1), jnp.int32)


def test_a_model_without_prompt_is_refused_with_the_fix():
    config = sentiment_sprompts.get_config("runlocal")
    config.finetune = "full"
    model = text_build.build(config, 3)
    params = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 3, 8), jnp.int32))
    with pytest.raises(ValueError, match="--config.finetune=prompt"):
        s_prompts.make(HP).init(params["params"], jax.random.PRNGKey(0))


def test_predict_routes_each_row_through_its_domain_prompt_and_head():
    model, params = _tiny()
    apply_fn = lambda p, x: model.apply({"params": p}, x)
    alg = s_prompts.make(HP)
    state = alg.init(params, jax.random.PRNGKey(0))
    end_task = jax.jit(lambda p, s, d, r: alg.end_task(p, s, d, apply_fn, r))
    identify = jax.jit(lambda p, s, x: s_prompts.identify(p, s, x, apply_fn))
    predict = jax.jit(lambda p, s, x: alg.predict(p, s, x, apply_fn))
    chex.assert_shape(state.prompts, (3,) + params["encoder"]["prompt"].shape)
    a, b = _tokens(1, 6), _tokens(2, 6)
    # Domain 0 trains on `a` with one prompt/head, domain 1 on `b` with another.
    rngs = jax.random.split(jax.random.PRNGKey(3), 4)
    domain = []
    for i, rows in enumerate((a, b)):
        prompt = 0.5 * jax.random.normal(rngs[2 * i], params["encoder"]["prompt"].shape)
        head = jax.tree_util.tree_map(
            lambda leaf, k=rngs[2 * i + 1]: jax.random.normal(k, leaf.shape), params["head"])
        trained = s_prompts.with_prompt_and_head(params, prompt, head)
        data = {"x": rows, "weight": jnp.ones(6)}
        state = end_task(trained, state, data, jax.random.PRNGKey(i))
        domain.append(trained)
    assert int(state.count) == 2
    # Identification uses the zeroed prompt, so it ignores which prompt is being trained.
    slots = identify(params, state, jnp.concatenate([a, b]))
    np.testing.assert_array_equal(slots, [0] * 6 + [1] * 6)
    np.testing.assert_array_equal(
        identify(domain[1], state, jnp.concatenate([a, b])), slots)
    scores = predict(params, state, jnp.concatenate([a, b]))
    forward = jax.jit(apply_fn)
    expected = jnp.concatenate([forward(domain[0], a), forward(domain[1], b)])
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-5)
    # Slots handed in (evaluation passes route's) are used as given, not chosen again.
    given = jax.jit(lambda p, s, x, k: alg.predict(p, s, x, apply_fn, slots=k))
    # Two compiled programs: equal up to float reassociation, not bit for bit.
    np.testing.assert_allclose(given(params, state, jnp.concatenate([a, b]), slots), scores,
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(given(params, state, a, jnp.ones(6, jnp.int32)),
                               forward(domain[1], a), rtol=1e-4, atol=1e-5)


# -- Through the engine: two domains of the runlocal stream -----------------------------------
def _leaves(tree) -> dict:
    return {jax.tree_util.keystr(p): np.asarray(v)
            for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def test_two_domains_keep_the_encoder_and_the_first_slot_bit_identical():
    config = sentiment_sprompts.get_config("runlocal")
    config.update(domains="tweets,movies", num_tasks=2, max_examples_per_domain=24,
                  learning_rate=3e-2)
    config.hp.sprompts_max_tasks = 2
    run = train.build_run(config)
    eng, state, hp = run.eng, run.state, run.hp
    start = _leaves(state.params)
    after = []
    for task in range(2):
        pool = eng.placement.place_rows(jax.tree_util.tree_map(jnp.asarray,
                                                               run.data.train_pool(task)))
        state = eng.reset_optimizer(state, hp)
        state, _ = eng.epochs(state, pool, hp)
        state = eng.end_task(state, pool, hp)
        after.append(jax.device_get(state))
    end = _leaves(state.params)
    moved = {k for k in start if not np.array_equal(start[k], end[k])}
    assert moved and all("'prompt'" in k or "'head'" in k for k in moved), sorted(moved)
    first, second = after
    assert not np.array_equal(first.alg_state.prompts[0, 0], first.alg_state.prompts[0, 1])
    # Slot 0 holds domain 0's prompt and head, and domain 1 never wrote it again.
    np.testing.assert_array_equal(first.alg_state.prompts[0, 0],
                                  first.params["encoder"]["prompt"][0])
    for name in ("prompts", "centroids"):
        np.testing.assert_array_equal(getattr(first.alg_state, name)[0, 0],
                                      getattr(second.alg_state, name)[0, 0])
    chex.assert_trees_all_equal(jax.tree_util.tree_map(lambda h: h[0, 0], first.alg_state.heads),
                                jax.tree_util.tree_map(lambda h: h[0, 0], second.alg_state.heads))
    np.testing.assert_array_equal(second.alg_state.prompts[0, 1],
                                  second.params["encoder"]["prompt"][0])
    assert int(second.alg_state.count[0]) == 2
    result = jax.device_get(eng.evaluate(state, run.test, run.task_classes, hp))
    assert np.all((0 <= result["class_il"]) & (result["class_il"] <= 1))
    # Every valid test row of each domain is counted once, in the slot identify() picks.
    routing = result["routing"][0]
    np.testing.assert_array_equal(routing.sum(1), np.asarray(run.test["valid"][0]).sum(1))
    params, alg = jax.tree_util.tree_map(lambda a: a[0], (state.params, state.alg_state))
    for task in range(2):
        rows = np.asarray(run.test["valid"][0, task])
        x = jax.tree_util.tree_map(lambda a, task=task, rows=rows: a[0, task][rows],
                                   run.test["x"])
        slots = np.asarray(s_prompts.identify(params, alg, x, eng.apply_fn))
        np.testing.assert_array_equal(routing[task], np.bincount(slots, minlength=2))


@pytest.mark.slow
def test_runlocal_cli_run_writes_domain_il_results(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "scripts.run",
         "--config=research/configs/sentiment_sprompts.py:runlocal", f"--workdir={tmp_path}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "domain_il: ACC" in out.stdout
    results = json.loads((tmp_path / "results.json").read_text())
    assert 0.0 <= results["domain_il"]["ACC"] <= 1.0
    assert results["num_compiles"] == 6  # nothing recompiles at a later domain
    routing = results["routing"]["runs"][0]
    assert np.trace(routing["confusion"]) / np.sum(routing["confusion"]) == pytest.approx(
        results["routing"]["routed_right"]["mean"])
    assert "routing of the test rows" in (tmp_path / "results.md").read_text()
