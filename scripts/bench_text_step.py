"""Time one jitted full fine-tuning step of TextClassifier (forward, backward, AdamW).

    python -m scripts.bench_text_step [--batch_size=32 --length=64 --steps=20 --head=cls]

Prints the compile time and the median step time over ``--steps`` runs of
random token batches (the numbers do not depend on the values). Not a test:
a figure to compare against the PyTorch reference on the same machine.
"""

from __future__ import annotations

import json
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags

from models.text.heads import HEADS, TextClassifier, init_classifier
from models.text.load import MINILM, load_encoder

_MODEL = flags.DEFINE_string("model", MINILM, "Encoder to fine-tune.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Examples per step.")
_LENGTH = flags.DEFINE_integer("length", 64, "Tokens per example.")
_STEPS = flags.DEFINE_integer("steps", 20, "Timed steps after the compile.")
_HEAD = flags.DEFINE_enum("head", "cls", HEADS, "Classifier head.")
_NUM_LAYERS = flags.DEFINE_integer("num_layers", None, "Keep only the first N layers.")
NUM_CLASSES = 3


def _cpu_seconds() -> float:
    """User+system CPU time of this process: steadier than wall time on a shared machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def make_step(model: TextClassifier, optimizer: optax.GradientTransformation):
    """The jitted train step: cross-entropy, its gradient, one optimizer update."""

    def loss_fn(params, batch):
        logits = model.apply({"params": params}, batch["x"])
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()

    @jax.jit
    def step(params, opt_state, batch):
        loss, grads = jax.value_and_grad(loss_fn)(params, batch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step


def main(argv: list[str]) -> None:
    del argv
    overrides = {} if _NUM_LAYERS.value is None else {"num_layers": _NUM_LAYERS.value}
    cfg, pretrained, _ = load_encoder(_MODEL.value, **overrides)
    model = TextClassifier(cfg, NUM_CLASSES, _HEAD.value)
    params = jax.device_put(init_classifier(model, jax.random.key(0), _LENGTH.value, pretrained))
    optimizer = optax.adamw(2e-5, weight_decay=0.01)
    opt_state = optimizer.init(params)
    shape = (_BATCH_SIZE.value, _LENGTH.value)
    rng = np.random.default_rng(0)
    batch = {"x": {"input_ids": jnp.asarray(rng.integers(1000, cfg.vocab_size, shape), jnp.int32),
                   "attention_mask": jnp.ones(shape, jnp.int32),
                   "token_type_ids": jnp.zeros(shape, jnp.int32)},
             "y": jnp.asarray(rng.integers(0, NUM_CLASSES, shape[0]), jnp.int32)}
    step = make_step(model, optimizer)
    start = time.perf_counter()
    compiled = step.lower(params, opt_state, batch).compile()
    compile_s = time.perf_counter() - start
    params, opt_state, loss = compiled(params, opt_state, batch)  # warm-up
    jax.block_until_ready(loss)
    times, cpu_times = [], []
    for _ in range(_STEPS.value):
        start, cpu_start = time.perf_counter(), _cpu_seconds()
        params, opt_state, loss = compiled(params, opt_state, batch)
        jax.block_until_ready(loss)
        times.append(time.perf_counter() - start)
        cpu_times.append(_cpu_seconds() - cpu_start)
    print(f"TextClassifier({_MODEL.value}, {cfg.num_layers} layers, head={_HEAD.value}) "
          f"batch={shape[0]} length={shape[1]} on {jax.devices()[0].platform}: "
          f"compile {compile_s:.1f} s, step median {1000 * np.median(times):.0f} ms "
          f"(min {1000 * np.min(times):.0f}, max {1000 * np.max(times):.0f}), "
          f"CPU time per step {1000 * np.median(cpu_times):.0f} ms, "
          f"final loss {float(loss):.3f}")
    print(json.dumps({"compile_seconds": compile_s, "step_seconds_median": float(np.median(times)),
                      "step_seconds_min": float(np.min(times)),
                      "cpu_seconds_median": float(np.median(cpu_times))}))


if __name__ == "__main__":
    app.run(main)
