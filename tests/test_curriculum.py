"""Tests for curriculum scores, pacing, sampling, stages and self-paced weights."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from research.curriculum import difficulty, pacing, self_paced, stages

TEXTS = ["Good movie.", "the the the", "An utterly xylophonic, quixotic film!", ""]


def test_token_lengths_and_tokenizer():
    assert difficulty.simple_tokenize("Good movie.") == ["good", "movie", "."]
    np.testing.assert_array_equal(difficulty.token_lengths(TEXTS), [3, 3, 7, 0])


def test_rare_word_rate_and_rarity():
    counts = difficulty.word_counts(TEXTS[:3] + ["the good movie"] * 5)
    assert counts["the"] == 8 and counts["movie"] == 6
    rates = difficulty.rare_word_rate(TEXTS, counts, min_count=5)
    np.testing.assert_allclose(rates, [1 / 3, 0.0, 1.0, 0.0])  # '.' seen once
    rarity = difficulty.word_rarity(TEXTS, counts)
    assert rarity[2] > rarity[0] > 0 and rarity[3] == 0
    # an unseen word is rarer than any seen one
    assert difficulty.word_rarity(["zzz"], counts)[0] > difficulty.word_rarity(["the"], counts)[0]


def test_teacher_loss_score_checks_input():
    np.testing.assert_allclose(difficulty.teacher_loss_score([0.1, 2.0]), [0.1, 2.0], rtol=1e-6)
    with pytest.raises(ValueError, match="finite 1-D"):
        difficulty.teacher_loss_score([0.1, np.nan])
    with pytest.raises(ValueError, match="finite 1-D"):
        difficulty.teacher_loss_score(np.zeros((2, 2)))


def test_difficulty_order_and_cdf():
    scores = np.array([3.0, 1.0, 2.0, 1.0])
    np.testing.assert_array_equal(difficulty.difficulty_order(scores), [1, 3, 2, 0])
    np.testing.assert_allclose(difficulty.difficulty_cdf(scores), [1.0, 0.5, 0.75, 0.5])


@pytest.mark.parametrize("name", sorted(pacing.PACING))
@pytest.mark.parametrize("c0", [0.01, 0.1, 0.5, 1.0])
def test_pacing_bounds_monotone_and_endpoints(name, c0):
    total = 100
    c = pacing.pacing_function(name, total, c0)
    values = np.asarray(jax.vmap(c)(jnp.arange(-5, 130)))
    assert np.all(values >= c0 - 1e-6) and np.all(values <= 1.0)
    assert np.all(np.diff(values) >= -1e-6)
    np.testing.assert_allclose(float(c(0)), c0, rtol=1e-5)
    np.testing.assert_allclose(float(c(total)), 1.0)
    np.testing.assert_allclose(float(c(10 * total)), 1.0)


def test_pacing_formulas():
    c0, total = 0.1, 100
    np.testing.assert_allclose(float(pacing.linear_competence(50, total, c0)), 0.55, rtol=1e-6)
    root = np.sqrt(50 * (1 - c0**2) / total + c0**2)
    np.testing.assert_allclose(float(pacing.root_competence(50, total, c0)), root, rtol=1e-6)
    cube = (50 * (1 - c0**3) / total + c0**3) ** (1 / 3)
    np.testing.assert_allclose(float(pacing.root_competence(50, total, c0, p=3)), cube, rtol=1e-6)
    np.testing.assert_allclose(float(pacing.exponential_competence(50, total, c0)), np.sqrt(c0))
    steps = [float(pacing.step_competence(t, total, c0, num_stages=4)) for t in (0, 24, 25, 74, 75)]
    np.testing.assert_allclose(steps, [0.1, 0.1, 0.325, 0.55, 0.775], rtol=1e-6)


@pytest.mark.parametrize("total,num_stages", [(25, 5), (41, 4), (100, 5), (10, 4)])
def test_step_pacing_jumps_exactly_at_multiples_under_jit(total, num_stages):
    """The staircase (Hacohen & Weinshall 2019) changes at k T / K, traced or over an array,
    and is 1 from T on; float division used to put some jumps a step late."""
    t = np.arange(total + 3)
    want = np.minimum(1.0, 0.1 + 0.9 * np.minimum(t * num_stages // total, num_stages) / num_stages)
    traced = jax.jit(jax.vmap(lambda s: pacing.step_competence(s, total, 0.1, num_stages)))
    np.testing.assert_allclose(np.asarray(traced(jnp.asarray(t))), want, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(pacing.step_competence(t, total, 0.1, num_stages)), want,
                               rtol=1e-6)
    assert float(jax.jit(pacing.pacing_function("step", total, 0.1))(total)) == 1.0


def test_pacing_jits_with_traced_step():
    c = jax.jit(pacing.pacing_function("root", 1000, 0.05))
    assert float(c(jnp.int32(1000))) == 1.0


def test_pacing_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown pacing 'cosine'"):
        pacing.pacing_function("cosine", 10)
    with pytest.raises(ValueError, match=r"c0 must be in \(0, 1\]"):
        pacing.pacing_function("linear", 10, c0=0.0)
    with pytest.raises(ValueError, match="total_steps must be positive"):
        pacing.pacing_function("root", 0)
    with pytest.raises(ValueError, match="num_stages"):
        pacing.pacing_function("step", 10, num_stages=0)


def test_easiest_subset_grows_with_competence():
    order = difficulty.difficulty_order(np.array([5.0, 1.0, 4.0, 2.0, 3.0]))
    np.testing.assert_array_equal(pacing.easiest_subset(order, 0.01), [1])
    np.testing.assert_array_equal(pacing.easiest_subset(order, 0.4), [1, 3])
    np.testing.assert_array_equal(pacing.easiest_subset(order, 0.41), [1, 3, 4])
    np.testing.assert_array_equal(pacing.easiest_subset(order, 1.0), order)


def test_sample_easiest_stays_in_the_easy_part_under_jit():
    hardest_first = np.arange(100.0)[::-1]
    order = jnp.asarray(difficulty.difficulty_order(hardest_first))
    sample = jax.jit(pacing.sample_easiest, static_argnums=3)
    key = jax.random.key(0)
    for competence in (0.05, 0.3, 1.0):
        idx = np.asarray(sample(key, order, jnp.float32(competence), 2048))
        chex.assert_shape(idx, (2048,))
        allowed = set(np.asarray(order)[: int(np.ceil(competence * 100))].tolist())
        assert set(idx.tolist()) <= allowed
        assert len(set(idx.tolist())) == len(allowed)  # 2048 draws cover every allowed index


def test_advance_stage():
    thresholds = jnp.array([0.5, 0.7, 0.9])
    assert int(stages.advance_stage(0, 0.49, thresholds, 3)) == 0
    assert int(stages.advance_stage(0, 0.5, thresholds, 3)) == 1
    assert int(stages.advance_stage(1, 0.6, thresholds, 3)) == 1
    assert int(stages.advance_stage(2, 1.0, thresholds, 3)) == 2  # last stage is final
    assert int(jax.jit(stages.advance_stage, static_argnums=3)(1, 0.8, 0.75, 3)) == 2


def test_self_paced_linear_weights():
    losses = jnp.array([0.1, 0.5, 1.0, 2.0])
    np.testing.assert_allclose(self_paced.linear_weights(losses, 1.0), [0.9, 0.5, 0, 0])


def test_admitted_weights_fall_to_the_cut_and_are_one_at_full_competence():
    losses = jnp.array([0.2, 0.4, 0.8, 2.0, 0.1])
    rows = jnp.array([True, True, True, True, False])  # the last row is padding
    admitted = jnp.array([True, True, False, False, False])
    # lambda = 0.8, the lowest loss left out; the padding's lower loss does not count.
    np.testing.assert_allclose(self_paced.admitted_weights(losses, rows, admitted),
                               [0.75, 0.5, 0, 0, 0])
    every = self_paced.admitted_weights(losses, rows, rows)
    np.testing.assert_array_equal(every, [1, 1, 1, 1, 0])


def test_balanced_admitted_weights_cut_each_class_apart():
    losses = jnp.array([0.2, 0.4, 1.0, 0.5, 0.9])
    labels = jnp.array([0, 0, 1, 1, 1])
    rows = jnp.ones(5, bool)
    admitted = jnp.array([True, False, False, True, False])  # one row of each class
    weights = self_paced.balanced_admitted_weights(losses, rows, admitted, labels, 2)
    np.testing.assert_allclose(weights, [0.5, 0, 0, 1 - 0.5 / 0.9, 0], rtol=1e-6)


def test_next_stage_follows_a_fake_accuracy_sequence():
    thresholds = np.array([0.5, 0.6, 0.7], np.float32)
    accuracies = [0.40, 0.55, 0.58, 0.65, 0.69, 0.70, 0.99, 0.10]
    want = [0, 1, 1, 2, 2, 3, 3, 3]  # leaves stage k exactly when accuracy >= thresholds[k]
    stage, in_stage, got = 0, 0, []
    for accuracy in accuracies:
        stage, in_stage = stages.next_stage(stage, in_stage, accuracy, thresholds)
        got.append(int(stage))
    assert got == want


def test_next_stage_is_per_run_and_the_limit_forces_a_stage():
    thresholds = jnp.array([0.5, 0.5])
    stage, in_stage = jnp.zeros(3, jnp.int32), jnp.zeros(3, jnp.int32)
    step = jax.jit(stages.next_stage, static_argnums=4)
    history = []
    for accuracy in ([0.6, 0.1, 0.1], [0.6, 0.1, 0.1], [0.0, 0.1, 0.9]):
        stage, in_stage = step(stage, in_stage, jnp.asarray(accuracy), thresholds, 2)
        history.append(np.asarray(stage).tolist())
    # run 0 passes twice; run 1 never passes but the 2-epoch limit moves it; run 2 passes late
    assert history == [[1, 0, 0], [2, 1, 1], [2, 1, 2]]
    chex.assert_trees_all_equal(in_stage, jnp.array([1, 1, 0], jnp.int32))


def test_parse_thresholds_and_stage_competence():
    np.testing.assert_allclose(stages.parse_thresholds("0.5, 0.6,0.65"), [0.5, 0.6, 0.65])
    np.testing.assert_allclose(stages.parse_thresholds(0.7, num_stages=3), [0.7] * 3)
    np.testing.assert_allclose(stages.parse_thresholds((0.5, 0.6)), [0.5, 0.6])
    with pytest.raises(ValueError, match="has 2 values for config.num_stages=3"):
        stages.parse_thresholds("0.5,0.6", num_stages=3)
    with pytest.raises(ValueError, match=r"accuracies in \[0, 1\].*'0.5,high'"):
        stages.parse_thresholds("0.5,high")
    with pytest.raises(ValueError, match=r"accuracies in \[0, 1\]"):
        stages.parse_thresholds("65")
    levels = stages.stage_competence(jnp.arange(4), 3, 0.1)
    np.testing.assert_allclose(levels, [0.1, 0.4, 0.7, 1.0], rtol=1e-6)


def test_held_out_rows_take_a_fraction_of_each_task_from_the_key():
    task = jnp.asarray([0] * 30 + [1] * 30 + [2] * 30)
    valid = jnp.asarray(([True] * 25 + [False] * 5) * 2 + [False] * 30)  # task 2 is not in it
    held_out = jax.jit(stages.held_out_rows, static_argnums=3)
    held = np.asarray(held_out(jax.random.key(0), task, valid, 0.1))
    assert held[:30].sum() == 3 and held[30:60].sum() == 3 and not held[60:].any()
    assert not (held & ~np.asarray(valid)).any()
    again = np.asarray(held_out(jax.random.key(0), task, valid, 0.1))
    other = np.asarray(held_out(jax.random.key(1), task, valid, 0.1))
    np.testing.assert_array_equal(held, again)
    assert not np.array_equal(held, other)
    # a task's rows are held out the same way when a later task joins the pool
    first_only = np.asarray(held_out(jax.random.key(0), task, valid & (task == 0), 0.1))
    np.testing.assert_array_equal(first_only[:30], held[:30])
    # a task keeps a row to train on
    assert int(held_out(jax.random.key(0), task[:2], valid[:2], 0.9).sum()) == 1
