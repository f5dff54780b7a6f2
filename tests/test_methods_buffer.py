"""The on-device replay buffers: reservoir sampling is uniform, the balanced one stays balanced."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from algorithms import base, replay_buffer


def _stream(labels: np.ndarray, batch: int, pad: int = 3) -> dict:
    """Batches whose x holds each example's id; the last ``pad`` rows of each are padding."""
    ids = np.arange(len(labels))
    per = batch - pad
    out = []
    for start in range(0, len(ids), per):
        chunk = ids[start:start + per]
        x = np.full((batch, 1), -1.0, np.float32)
        x[: len(chunk), 0] = chunk
        y = np.zeros(batch, np.int32)
        y[: len(chunk)] = labels[chunk]
        weight = (np.arange(batch) < len(chunk)).astype(np.float32)
        out.append({"x": jnp.asarray(x), "y": jnp.asarray(y), "weight": jnp.asarray(weight),
                    "logit_mask": jnp.ones((batch, 4), bool), "task": jnp.zeros(batch, jnp.int32)})
    return jax.tree_util.tree_map(lambda *a: jnp.stack(a), *out)  # [num_batches, batch, ...]


@functools.partial(jax.jit, static_argnums=(2, 3))
def _fill(rng, batches, size, balanced):
    add = replay_buffer.balanced_add if balanced else replay_buffer.reservoir_add
    keys = jax.random.split(rng, batches["y"].shape[0])
    step = lambda buf, item: (add(buf, *item), None)
    return jax.lax.scan(step, replay_buffer.empty(size, 1, 4), (batches, keys))[0]


def test_reservoir_keeps_every_example_with_equal_probability():
    n, size, trials = 40, 10, 3000
    batches = _stream(np.zeros(n, np.int32), batch=8)
    keys = jax.random.split(jax.random.PRNGKey(0), trials)
    bufs = jax.vmap(lambda k: _fill(k, batches, size, False))(keys)
    held = np.asarray(bufs.x[..., 0])
    assert np.all(np.asarray(bufs.valid)) and np.all(held >= 0)  # full, never a padding row
    assert all(len(set(row)) == size for row in held)  # no example stored twice
    counts = np.bincount(held.astype(int).ravel(), minlength=n)
    assert np.asarray(bufs.num_seen)[0] == n
    result = stats.chisquare(counts)  # expected trials * size / n each
    assert result.pvalue > 1e-3, counts


def test_reservoir_fills_in_order_before_full():
    batches = _stream(np.zeros(6, np.int32), batch=8)
    buf = _fill(jax.random.PRNGKey(0), batches, 10, False)
    assert np.asarray(buf.valid).sum() == 6
    assert list(np.asarray(buf.x[:6, 0])) == [0, 1, 2, 3, 4, 5]


def test_reservoir_over_a_whole_task_is_uniform_and_matches_its_chunking():
    n, size, trials = 40, 10, 3000
    batches = _stream(np.zeros(n, np.int32), batch=8)
    task = jax.tree_util.tree_map(lambda a: a.reshape((-1,) + a.shape[2:]), batches)
    add_all = jax.jit(lambda k, chunk: replay_buffer.reservoir_add_all(
        replay_buffer.empty(size, 1, 4), task, k, chunk), static_argnums=1)
    bufs = jax.vmap(lambda k: add_all(k, 16))(jax.random.split(jax.random.PRNGKey(0), trials))
    held = np.asarray(bufs.x[..., 0])
    assert np.all(np.asarray(bufs.valid)) and np.all(held >= 0)  # full, never a padding row
    assert all(len(set(row)) == size for row in held)
    assert np.asarray(bufs.num_seen)[0] == n
    assert stats.chisquare(np.bincount(held.astype(int).ravel(), minlength=n)).pvalue > 1e-3
    one = add_all(jax.random.PRNGKey(1), task["y"].shape[0])  # one chunk: no padding added
    assert np.asarray(one.num_seen) == n and np.all(np.asarray(one.x[:, 0]) >= 0)


def test_balanced_buffer_stays_balanced_on_an_imbalanced_stream():
    rng = np.random.default_rng(0)
    labels = rng.permutation(np.array([0] * 300 + [1] * 30 + [2] * 30 + [3] * 30, np.int32))
    buf = _fill(jax.random.PRNGKey(0), _stream(labels, batch=16), 40, True)
    counts = np.bincount(np.asarray(buf.y)[np.asarray(buf.valid)], minlength=4)
    assert counts.sum() == 40 and counts.max() - counts.min() <= 1, counts
    kept = np.asarray(buf.x[:, 0]).astype(int)
    assert np.all(labels[kept] == np.asarray(buf.y))  # rows stay consistent
    plain = _fill(jax.random.PRNGKey(0), _stream(labels, batch=16), 40, False)
    assert np.bincount(np.asarray(plain.y), minlength=4)[0] > 20  # reservoir follows the stream


def test_balanced_buffer_never_grows_a_class_that_has_been_the_largest():
    # Size 3: 0, 0, 1 fill it; class 0 is the largest, so full. A 1 evicts a 0 (1 is not
    # full): counts 1 / 2, and now 1 is full too. The last 0 belongs to a full class: it
    # may only replace a 0, so class 0 stays at 1, though it is now the smaller class.
    batches = _stream(np.array([0, 0, 1, 1, 0], np.int32), batch=8)
    for seed in range(20):
        buf = _fill(jax.random.PRNGKey(seed), batches, 3, True)
        assert list(np.bincount(np.asarray(buf.y), minlength=4)[:2]) == [1, 2]
        assert list(np.asarray(buf.class_full)) == [True, True, False, False]


def test_sample_draws_distinct_real_rows_shaped_like_the_batch():
    batches = _stream(np.arange(5, dtype=np.int32) % 4, batch=8)
    buf = _fill(jax.random.PRNGKey(0), batches, 10, False)
    got = replay_buffer.sample(buf, jax.random.PRNGKey(1), 8, jnp.zeros((3, 1)))
    assert got["x"].shape == (8, 1)
    real = np.asarray(got["weight"]) > 0
    assert real.sum() == 5 and len(set(np.asarray(got["x"][real, 0]))) == 5


def test_random_rows_are_the_smallest_keys_as_a_full_sort_orders_them():
    """top_k of the negated keys picks argsort's first rows in argsort's order, ties (the
    ineligible rows) by index, so switching from the sort changed no run's draws."""
    for seed, share in [(0, 0.9), (1, 0.1), (2, 0.0)]:
        rng = jax.random.PRNGKey(seed)
        eligible = jax.random.uniform(jax.random.PRNGKey(seed + 10), (200,)) < share
        keys = jnp.where(eligible, jax.random.uniform(rng, (200,)), 2.0)
        np.testing.assert_array_equal(base.random_rows(eligible, rng, 32),
                                      jnp.argsort(keys)[:32])
    assert base.random_rows(eligible, rng, 256).shape == (200,)  # at most all rows
