"""Generative replay (Shin et al. 2017) with distillation targets (van de Ven et al. 2020).

A VAE generator (``models/vae.py``) trains alongside the classifier, one Adam
step of its own per classifier step inside ``after_step``, on the current
batch and on inputs sampled from the previous generator, so it models every
task so far. At the end of a task the generator and the classifier are
snapshotted; during task t > 1 the classifier's loss is

    L = 1/t * CE(current batch) + (1 - 1/t) * T^2 * KL(teacher || student)

on a batch drawn from the previous generator and labelled with the previous
classifier's temperature-softened scores over the classes seen so far (every
class after the first task in domain-IL). In task-IL each old task's head has
a softmax of its own and the KL is averaged over those heads, as van de Ven
et al.'s code distils each previous context apart; in class- and domain-IL
there is one head. The generator's own loss weighs its
current and replayed ELBOs the same way. Nothing grows with the task count:
the state is four parameter sets, one Adam state, the seen-class mask, each
class's head and a counter. Inputs are taken as rows in [0, 1] (Bernoulli decoder).

Defaults: with only ~160 steps per Split-Digits task the generator underfits at
Adam 1e-3, so it trains at 1e-2; a softer teacher (T = 4) also helped class-IL
(a small sweep of gr_lr in {1e-3, 3e-3, 1e-2, 3e-2} and T in {1, 2, 4}).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from algorithms import model_info
from algorithms.base import Algorithm, Batch, Params, cross_entropy
from algorithms.lwf import classes_in, heads_after, log_softmax_by_head
from models.vae import VAE

NAME = "generative_replay"
COMPATIBILITY = ("class", "task", "domain")
INPUTS_IN_UNIT_RANGE = True  # the VAE's Bernoulli decoder models inputs in [0, 1]
HPARAMS = {"gr_latent": 32, "gr_hidden": 256, "gr_lr": 1e-2, "gr_temperature": 4.0,
           "gr_replay_batch_size": 32, "buffer_input_size": 0}


class GenerativeReplayState(NamedTuple):
    generator: Params  # the VAE being trained on the current task (and replay)
    generator_opt: Any  # its own optax Adam state
    old_generator: Params  # the generator at the end of the last task
    teacher: Params  # the classifier at the end of the last task
    seen: jax.Array  # [C] bool: classes of the finished tasks
    head: jax.Array  # [C] int32: the finished task whose output head holds the class
    tasks_done: jax.Array  # [] int32


def vae_for(hp: dict, features: int) -> VAE:
    return VAE(features=features, latent=int(hp["gr_latent"]), hidden=int(hp["gr_hidden"]))


def negative_elbo(vae: VAE, generator: Params, x: jax.Array, weight: jax.Array,
                  rng: jax.Array) -> jax.Array:
    """Weighted mean over rows of -ELBO: Bernoulli reconstruction + KL to N(0, I)."""
    logits, mean, logvar = vae.apply({"params": generator}, x, rng)
    reconstruction = jnp.sum(optax.sigmoid_binary_cross_entropy(logits, x), -1)
    kl = -0.5 * jnp.sum(1.0 + logvar - jnp.square(mean) - jnp.exp(logvar), -1)
    return jnp.sum((reconstruction + kl) * weight) / jnp.maximum(jnp.sum(weight), 1.0)


def generate(vae: VAE, generator: Params, rng: jax.Array, count: int) -> jax.Array:
    """[count, D] inputs decoded from prior draws: the Bernoulli means, no gradient."""
    z = jax.random.normal(rng, (count, vae.latent))
    return jax.lax.stop_gradient(jax.nn.sigmoid(vae.apply({"params": generator}, z,
                                                          method=VAE.decode)))


def soft_target_loss(student: jax.Array, teacher: jax.Array, old: jax.Array, active: jax.Array,
                     head: jax.Array, temperature: jax.Array) -> jax.Array:
    """T^2 * KL(teacher || student) within each old head, averaged over the heads and rows.

    The teacher's softmax covers the ``old`` classes ([C] bool) of a head
    (``head`` [C]). Where the current task's ``active`` classes share the old
    ones' head (class- and domain-IL), the student's softmax covers them too,
    with targets 0: a replayed input must not score high on a class its teacher
    never knew (van de Ven et al.'s zero-padded targets); without this, class-IL
    forgets as if there were no replay. In task-IL the current task is a head of
    its own, which a replayed input is never scored on. 0 until a task has
    ended (no old classes).
    """
    shared = jnp.any(active & old)
    log_p_student = log_softmax_by_head(student / temperature,
                                        jnp.where(shared, active | old, old), head)
    log_p_teacher = log_softmax_by_head(teacher / temperature, old, head)
    kl = jnp.sum(jnp.where(old, jnp.exp(log_p_teacher) * (log_p_teacher - log_p_student), 0.0),
                 -1)
    return temperature**2 * jnp.mean(kl) / jnp.maximum(count_heads(old, head), 1)


def count_heads(classes: jax.Array, head: jax.Array) -> jax.Array:
    """How many heads hold ``classes`` ([C] bool): those whose first class is among them."""
    same = (head[:, None] == head[None, :]) & classes[None, :]
    return jnp.sum(classes & ~jnp.any(jnp.tril(same, k=-1), axis=1))


def current_weight(tasks_done: jax.Array) -> jax.Array:
    """1/t for the t-th task: the share of the current data in a loss with replay."""
    return 1.0 / (tasks_done.astype(jnp.float32) + 1.0)


def make(hp: dict) -> Algorithm:
    count = int(hp["gr_replay_batch_size"])
    generator_opt = optax.adam(hp["gr_lr"])

    def init(params, rng):
        features = model_info.input_size(params, int(hp["buffer_input_size"]))
        vae = vae_for(hp, features)
        init_rng, sample_rng = jax.random.split(rng)
        generator = vae.init(init_rng, jnp.zeros((1, features)), sample_rng)["params"]
        classes = model_info.num_classes(params)
        return GenerativeReplayState(generator, generator_opt.init(generator), generator, params,
                                     jnp.zeros((classes,), bool), jnp.zeros((classes,), jnp.int32),
                                     jnp.zeros((), jnp.int32))

    def replayed(state, rng, x):
        """A generated batch shaped like ``x`` from the previous generator."""
        rows = model_info.flatten_inputs(x)
        fake = generate(vae_for(hp, rows.shape[1]), state.old_generator, rng, count)
        return fake.reshape((count,) + x.shape[1:]).astype(x.dtype)

    def loss(params, state, batch, apply_fn, rng):
        fake = replayed(state, rng, batch["x"])
        size = batch["y"].shape[0]
        logits = apply_fn(params, jnp.concatenate([batch["x"], fake]))  # one forward pass
        plain = cross_entropy(logits[:size], batch)
        teacher = jax.lax.stop_gradient(apply_fn(state.teacher, fake))
        active = jnp.any(batch["logit_mask"] & (batch["weight"] > 0)[:, None], 0)
        replay = soft_target_loss(logits[size:], teacher, state.seen, active, state.head,
                                  hp["gr_temperature"])
        share = current_weight(state.tasks_done)
        total = share * plain + (1.0 - share) * replay
        return total, {"task_loss": plain, "replay": replay}

    def generator_loss(generator, state, rows, weight, rng):
        vae = vae_for(hp, rows.shape[1])
        real_rng, fake_rng, draw_rng = jax.random.split(rng, 3)
        current = negative_elbo(vae, generator, rows, weight, real_rng)
        fake = generate(vae, state.old_generator, draw_rng, count)
        old = negative_elbo(vae, generator, fake, jnp.ones((count,)), fake_rng)
        share = current_weight(state.tasks_done)
        return share * current + jnp.where(state.tasks_done > 0, 1.0 - share, 0.0) * old

    def after_step(state, old_params, new_params, grads, batch, apply_fn, rng):
        del old_params, new_params, grads, apply_fn
        rows = model_info.flatten_inputs(batch["x"])
        gen_grads = jax.grad(generator_loss)(state.generator, state, rows, batch["weight"], rng)
        updates, opt_state = generator_opt.update(gen_grads, state.generator_opt, state.generator)
        return state._replace(generator=optax.apply_updates(state.generator, updates),
                              generator_opt=opt_state)

    def end_task(params, state, task_data, apply_fn, rng):
        del apply_fn, rng
        return state._replace(old_generator=state.generator, teacher=params,
                              seen=state.seen | classes_in(task_data, state.seen.shape[0]),
                              head=heads_after(state.head, task_data, state.tasks_done),
                              tasks_done=state.tasks_done + 1)

    return Algorithm(init=init, loss=loss, after_step=after_step, end_task=end_task)


def generator_elbo(hp: dict, state: GenerativeReplayState, data: Batch, rng: jax.Array
                   ) -> jax.Array:
    """-ELBO of the state's generator on ``data`` (for tests and diagnostics)."""
    rows = model_info.flatten_inputs(data["x"])
    return negative_elbo(vae_for(hp, rows.shape[1]), state.generator, rows, data["weight"], rng)
