"""Time full fine-tuning steps of TextClassifier (forward, backward, AdamW), two ways.

    python -m scripts.bench_text_step [--batch_size=32 --length=64 --steps_per_call=8]
                                      [--compute_dtype=bfloat16]

* **scanned**, as the engine trains: ``--steps_per_call`` steps in one compiled
  ``lax.scan`` over different batches, timed per step (``--calls`` calls);
* **one step per call**, a jitted step called from Python (``--steps`` calls).

They differ by the executable's scratch memory: XLA on CPU maps one block
for all of a call's temporaries (about 660 MiB for MiniLM at batch 32, length
64) and the kernel zero-fills its pages again on every call, so a call per
step pays that every step while a scan pays it once. Random token batches
(the time does not depend on the values), compiled with the engine's XLA
options. ``--compute_dtype=bfloat16`` computes in bfloat16 with float32 master
weights and AdamW state, as ``config.compute_dtype`` does in training. Not a
test: a figure to compare against the PyTorch reference on the same machine.
"""

from __future__ import annotations

import json
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import flags

from models.text.heads import HEADS, TextClassifier, init_classifier
from models.text.load import MINILM, load_encoder
from research import adam, distributed
from research.compiled import compiler_options
from scripts import cli

_MODEL = flags.DEFINE_string("model", MINILM, "Encoder to fine-tune.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Examples per step.", lower_bound=1)
_LENGTH = flags.DEFINE_integer("length", 64, "Tokens per example.", lower_bound=1)
_STEPS_PER_CALL = flags.DEFINE_integer("steps_per_call", 8, "Steps scanned in one call.",
                                       lower_bound=1)
_CALLS = flags.DEFINE_integer("calls", 4, "Timed scanned calls after the warm-up.", lower_bound=1)
_STEPS = flags.DEFINE_integer("steps", 12, "Timed one-step calls after the warm-up.", lower_bound=1)
_HEAD = flags.DEFINE_enum("head", "cls", HEADS, "Classifier head.")
_NUM_LAYERS = flags.DEFINE_integer("num_layers", None, "Keep only the first N layers.",
                                   lower_bound=1)
_COMPUTE_DTYPE = flags.DEFINE_enum("compute_dtype", "float32", list(distributed.COMPUTE_DTYPES),
                                   "The forward and backward's dtype (parameters stay float32).")
NUM_CLASSES = 3


def _usage() -> tuple[float, int]:
    """User+system CPU seconds (steadier than wall time on a shared machine), minor faults."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, usage.ru_minflt


def make_step(model: TextClassifier, optimizer: optax.GradientTransformation,
              compute_dtype=jnp.float32):
    """One train step: cross-entropy, its gradient, one optimizer update."""

    def loss_fn(params, batch):
        logits = distributed.apply_in(compute_dtype, lambda p, x: model.apply({"params": p}, x),
                                      params, batch["x"])
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()

    def step(params, opt_state, batch):
        loss, grads = jax.value_and_grad(loss_fn)(params, batch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step


def make_scanned(step):
    """``step`` over a leading axis of batches in one compiled loop: the engine's shape."""

    def scanned(params, opt_state, batches):
        def body(carry, batch):
            params, opt_state, loss = step(*carry, batch)
            return (params, opt_state), loss

        (params, opt_state), losses = jax.lax.scan(body, (params, opt_state), batches)
        return params, opt_state, losses

    return scanned


def _random_batches(vocab_size: int, count: int, rng: np.random.Generator) -> dict:
    shape = (count, _BATCH_SIZE.value, _LENGTH.value)
    return {"x": {"input_ids": jnp.asarray(rng.integers(1000, vocab_size, shape), jnp.int32),
                  "attention_mask": jnp.ones(shape, jnp.int32),
                  "token_type_ids": jnp.zeros(shape, jnp.int32)},
            "y": jnp.asarray(rng.integers(0, NUM_CLASSES, shape[:2]), jnp.int32)}


def _time(fn, args, calls: int, steps_per_call: int) -> tuple[dict, tuple]:
    """Median and min wall seconds, CPU seconds and minor page faults per step."""
    walls, cpus, faults = [], [], []
    for _ in range(calls):
        start, (cpu, flt) = time.perf_counter(), _usage()
        params, opt_state, loss = fn(*args)
        jax.block_until_ready(loss)
        wall = time.perf_counter() - start
        cpu_end, flt_end = _usage()
        walls.append(wall / steps_per_call)
        cpus.append((cpu_end - cpu) / steps_per_call)
        faults.append((flt_end - flt) / steps_per_call)
        args = (params, opt_state, *args[2:])
    figures = {"step_seconds_median": float(np.median(walls)),
               "step_seconds_min": float(np.min(walls)),
               "cpu_seconds_median": float(np.median(cpus)),
               "page_faults_per_step": float(np.median(faults))}
    return figures, args


def main(argv: list[str]) -> None:
    cli.no_arguments(argv)
    overrides = {} if _NUM_LAYERS.value is None else {"num_layers": _NUM_LAYERS.value}
    cfg, pretrained, _ = load_encoder(_MODEL.value, **overrides)
    model = TextClassifier(cfg, NUM_CLASSES, _HEAD.value)
    params = jax.device_put(init_classifier(model, jax.random.key(0), _LENGTH.value, pretrained))
    optimizer = adam.adamw(2e-5, 0.01)
    opt_state = optimizer.init(params)
    rng = np.random.default_rng(0)
    k = _STEPS_PER_CALL.value
    batches = _random_batches(cfg.vocab_size, k, rng)
    one_batch = jax.tree_util.tree_map(lambda a: a[0], batches)
    step = make_step(model, optimizer, distributed.COMPUTE_DTYPES[_COMPUTE_DTYPE.value])

    start = time.perf_counter()
    scanned = jax.jit(make_scanned(step), donate_argnums=(0, 1))
    scanned = scanned.lower(params, opt_state, batches).compile(compiler_options())
    compile_s = time.perf_counter() - start
    single = jax.jit(step, donate_argnums=(0, 1)).lower(params, opt_state, one_batch).compile(
        compiler_options())

    args = (params, opt_state, batches)
    _, args = _time(scanned, args, 1, k)  # warm-up
    scan_figures, args = _time(scanned, args, _CALLS.value, k)
    args = (args[0], args[1], one_batch)
    _, args = _time(single, args, 1, 1)  # warm-up
    single_figures, _ = _time(single, args, _STEPS.value, 1)
    ms = lambda s: f"{1000 * s:.0f} ms"
    print(f"TextClassifier({_MODEL.value}, {cfg.num_layers} layers, head={_HEAD.value}) "
          f"batch={_BATCH_SIZE.value} length={_LENGTH.value} {_COMPUTE_DTYPE.value} on "
          f"{jax.devices()[0].platform}, "
          f"compile {compile_s:.1f} s: {k} steps per call: step median "
          f"{ms(scan_figures['step_seconds_median'])} (min "
          f"{ms(scan_figures['step_seconds_min'])}), CPU time per step "
          f"{ms(scan_figures['cpu_seconds_median'])}, "
          f"{scan_figures['page_faults_per_step']:.0f} page faults per step; one step per "
          f"call: {ms(single_figures['step_seconds_median'])} (min "
          f"{ms(single_figures['step_seconds_min'])}), "
          f"{single_figures['page_faults_per_step']:.0f} page faults per step")
    print(json.dumps({"compute_dtype": _COMPUTE_DTYPE.value, "compile_seconds": compile_s,
                      "steps_per_call": k, **scan_figures, "one_step_per_call": single_figures}))


if __name__ == "__main__":
    cli.main(main)
