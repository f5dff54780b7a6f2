"""The bfloat16 Dense matmul: float32 untouched, bfloat16 forward and gradients right."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from models.mixed_precision import Dense, dense_bf16, dot_general
from models.text.bert import EncoderConfig
from models.text.heads import TextClassifier, init_classifier
from research import distributed

F32, BF16 = jnp.float32, jnp.bfloat16


def _operands(shape=(3, 5, 24), features=40, dtype=BF16):
    x = jax.random.normal(jax.random.key(0), shape).astype(dtype)
    w = (0.2 * jax.random.normal(jax.random.key(1), (shape[-1], features))).astype(dtype)
    return x, w


def _reference_loss(x, w, target):
    """The same product in float32 (on bfloat16-valued operands)."""
    return jnp.sum((x @ w) * target)


def test_float32_is_lax_dot_general_bit_for_bit():
    x = jax.random.normal(jax.random.key(0), (4, 7))
    plain, ours = nn.Dense(3), Dense(3)
    params = plain.init(jax.random.key(1), x)
    np.testing.assert_array_equal(ours.apply(params, x), plain.apply(params, x))
    grads = [jax.grad(lambda p, m=m: jnp.sum(m.apply(p, x) ** 2))(params) for m in (plain, ours)]
    chex.assert_trees_all_equal(*grads)


def test_bfloat16_forward_accumulates_in_float32():
    x, w = _operands(features=200)
    out = dense_bf16(x, w)
    assert out.dtype == BF16
    exact = x.astype(F32) @ w.astype(F32)
    # One rounding of the float32 sum: within half a bfloat16 ulp (2^-8 relative).
    np.testing.assert_allclose(np.asarray(out, np.float32), exact, rtol=2 ** -8, atol=1e-6)
    dense = lambda x, w: dot_general(x, w, (((2,), (0,)), ((), ())))
    assert "custom_vjp_call" in str(jax.make_jaxpr(dense)(x, w))  # Dense's product goes there
    assert "custom_vjp_call" not in str(jax.make_jaxpr(dense)(x.astype(F32), w.astype(F32)))


def test_bfloat16_gradients_match_float32_autodiff():
    x, w = _operands()
    target = jax.random.normal(jax.random.key(2), x.shape[:-1] + (w.shape[-1],)).astype(BF16)
    loss = lambda x, w: jnp.sum(dense_bf16(x, w).astype(F32) * target.astype(F32))
    dx, dw = jax.grad(loss, argnums=(0, 1))(x, w)
    assert dx.dtype == BF16 and dw.dtype == BF16
    ref_dx, ref_dw = jax.grad(_reference_loss, argnums=(0, 1))(x.astype(F32), w.astype(F32),
                                                               target.astype(F32))
    np.testing.assert_allclose(np.asarray(dx, np.float32), ref_dx, rtol=2 ** -7, atol=1e-2)
    np.testing.assert_allclose(np.asarray(dw, np.float32), ref_dw, rtol=2 ** -7, atol=1e-2)


def test_bfloat16_gradients_under_vmap_match_each_run():
    """The engine vmaps the step over runs; the custom gradient must batch."""
    x, w = _operands(shape=(2, 6, 24))
    ws = jnp.stack([w, (w * 2).astype(BF16)])
    grad = jax.grad(lambda x, w: jnp.sum(dense_bf16(x, w).astype(F32) ** 2), argnums=(0, 1))
    batched = jax.vmap(grad)(x, ws)
    for run in range(2):
        chex.assert_trees_all_close(jax.tree_util.tree_map(lambda a, r=run: a[r], batched),
                                    grad(x[run], ws[run]))


def test_text_classifier_bfloat16_step_tracks_float32():
    cfg = EncoderConfig(vocab_size=60, hidden_size=32, num_layers=2, num_heads=4,
                        intermediate_size=64, max_position_embeddings=16)
    model = TextClassifier(cfg, num_classes=3, head="cls")
    params = init_classifier(model, jax.random.key(0), max_length=12)
    ids = jax.random.randint(jax.random.key(1), (8, 12), 1, cfg.vocab_size)
    tokens = {"input_ids": ids, "attention_mask": jnp.ones_like(ids),
              "token_type_ids": jnp.zeros_like(ids)}
    labels = jnp.arange(8) % 3

    def loss(p, dtype):
        logits = distributed.apply_in(dtype, lambda q, x: model.apply({"params": q}, x),
                                      p, tokens)
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(8), labels])

    full, half = (jax.grad(loss)(params, dtype) for dtype in (F32, BF16))
    chex.assert_trees_all_equal_dtypes(half, params)  # float32 master gradients
    flat = lambda t: jnp.concatenate([a.ravel() for a in jax.tree_util.tree_leaves(t)])
    a, b = flat(full), flat(half)
    cosine = jnp.dot(a, b) / (jnp.linalg.norm(a) * jnp.linalg.norm(b))
    assert cosine > 0.99, cosine
    assert not np.allclose(a, b, atol=1e-7)  # it computed in bfloat16
