"""Curriculum learning: difficulty scores, pacing, stage advancement, self-paced weights.

* Difficulty (host side, numpy): token length, rare-word rate and word rarity
  from corpus word counts, and a teacher-loss score.
* Competence-based pacing (Platanios et al., NAACL 2019): at step ``t`` the
  model samples only from the easiest ``c(t)`` fraction of the data, with
  ``c(0) = c0`` and ``c(t) = 1`` from ``t = T`` on. The pacing functions and
  ``sample_easiest`` are jnp, so ``t`` may be a traced step inside the jitted
  train step.
* Stage advancement: move to the next stage once validation accuracy passes
  a threshold (also jnp, so it can live in the carried state).
* Self-paced learning (Kumar et al., NeurIPS 2010): hard weights
  ``v_i = 1[loss_i < lambda]`` with ``lambda`` grown over time, and the
  linear soft variant ``v_i = max(0, 1 - loss_i / lambda)`` (Jiang et al. 2014).
"""

from __future__ import annotations

import collections
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

ArrayLike = jax.Array | np.ndarray | float | int
Tokenizer = Callable[[str], list[str]]

_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def simple_tokenize(text: str) -> list[str]:
    """Lower-cased words and single punctuation marks: enough to measure difficulty."""
    return _TOKEN.findall(text.lower())


# ----------------------------------------------------------------------------
# Difficulty scores: higher is harder.


def token_lengths(texts: Sequence[str], tokenize: Tokenizer = simple_tokenize) -> np.ndarray:
    """Sentence length in tokens (Platanios et al.: longer is harder)."""
    return np.array([len(tokenize(t)) for t in texts], np.float32)


def word_counts(
    texts: Iterable[str], tokenize: Tokenizer = simple_tokenize
) -> collections.Counter[str]:
    """Corpus word counts, the reference for the rarity scores (fit on train only)."""
    counts: collections.Counter[str] = collections.Counter()
    for text in texts:
        counts.update(tokenize(text))
    return counts


def rare_word_rate(
    texts: Sequence[str],
    counts: Mapping[str, int],
    min_count: int = 5,
    tokenize: Tokenizer = simple_tokenize,
) -> np.ndarray:
    """Fraction of a sentence's tokens seen fewer than ``min_count`` times (0 if empty)."""
    rates = []
    for text in texts:
        tokens = tokenize(text)
        rare = sum(counts.get(tok, 0) < min_count for tok in tokens)
        rates.append(rare / len(tokens) if tokens else 0.0)
    return np.array(rates, np.float32)


def word_rarity(
    texts: Sequence[str], counts: Mapping[str, int], tokenize: Tokenizer = simple_tokenize
) -> np.ndarray:
    """Platanios et al.'s rarity: ``-sum_k log p(w_k)``, add-one smoothed unigram p."""
    total = sum(counts.values()) + len(counts) + 1
    scores = [
        -sum(math.log((counts.get(tok, 0) + 1) / total) for tok in tokenize(text)) for text in texts
    ]
    return np.array(scores, np.float32)


def teacher_loss_score(losses: ArrayLike) -> np.ndarray:
    """Per-example loss of a trained teacher as difficulty (Hacohen & Weinshall 2019)."""
    losses = np.asarray(losses, np.float32)
    if losses.ndim != 1 or not np.all(np.isfinite(losses)):
        raise ValueError(f"teacher losses must be a finite 1-D array, got shape {losses.shape}")
    return losses


def difficulty_order(scores: ArrayLike) -> np.ndarray:
    """Example indices from easiest to hardest (stable: ties keep data order)."""
    scores = np.asarray(scores)
    if scores.ndim != 1:
        raise ValueError(f"difficulty scores must be 1-D, got shape {scores.shape}")
    return np.argsort(scores, kind="stable")


def difficulty_cdf(scores: ArrayLike) -> np.ndarray:
    """Empirical CDF of the scores, in (0, 1]: Platanios et al.'s normalised difficulty."""
    scores = np.asarray(scores)
    sorted_scores = np.sort(scores)
    return (np.searchsorted(sorted_scores, scores, side="right") / scores.shape[0]).astype(
        np.float32
    )


# ----------------------------------------------------------------------------
# Pacing: competence c(t) in [c0, 1], c(0) = c0, c(t >= T) = 1, non-decreasing.


def _progress(t: ArrayLike, total_steps: int) -> jax.Array:
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    return jnp.clip(jnp.asarray(t, jnp.float32) / total_steps, 0.0, 1.0)


def _check_c0(c0: float) -> None:
    if not 0.0 < c0 <= 1.0:
        raise ValueError(f"initial competence c0 must be in (0, 1], got {c0}")


def linear_competence(t: ArrayLike, total_steps: int, c0: float = 0.01) -> jax.Array:
    """``min(1, t (1 - c0) / T + c0)``."""
    _check_c0(c0)
    return jnp.minimum(1.0, _progress(t, total_steps) * (1.0 - c0) + c0)


def root_competence(t: ArrayLike, total_steps: int, c0: float = 0.01, p: int = 2) -> jax.Array:
    """``min(1, (t (1 - c0^p) / T + c0^p)^(1/p))``; p=2 is Platanios et al.'s square root."""
    _check_c0(c0)
    if p < 1:
        raise ValueError(f"root degree p must be >= 1, got {p}")
    base = _progress(t, total_steps) * (1.0 - c0**p) + c0**p
    return jnp.minimum(1.0, base ** (1.0 / p))


def step_competence(
    t: ArrayLike, total_steps: int, c0: float = 0.01, num_stages: int = 4
) -> jax.Array:
    """Staircase from c0 to 1 in ``num_stages`` equal jumps at ``k T / num_stages``."""
    _check_c0(c0)
    if num_stages < 1:
        raise ValueError(f"num_stages must be >= 1, got {num_stages}")
    stage = jnp.floor(_progress(t, total_steps) * num_stages) / num_stages
    return jnp.minimum(1.0, c0 + (1.0 - c0) * stage)


def exponential_competence(t: ArrayLike, total_steps: int, c0: float = 0.01) -> jax.Array:
    """``c0 * (1 / c0)^(t / T)``: grows by a constant factor per step, reaching 1 at T."""
    _check_c0(c0)
    return jnp.minimum(1.0, c0 * (1.0 / c0) ** _progress(t, total_steps))


PACING: dict[str, Callable[..., jax.Array]] = {
    "linear": linear_competence,
    "root": root_competence,
    "step": step_competence,
    "exponential": exponential_competence,
}


def pacing_function(
    name: str, total_steps: int, c0: float = 0.01, **kwargs: int
) -> Callable[[ArrayLike], jax.Array]:
    """``c(t)`` by name (``'linear'``, ``'root'``, ``'step'``, ``'exponential'``)."""
    if name not in PACING:
        raise ValueError(f"unknown pacing {name!r}; choose from {sorted(PACING)}")
    fn = PACING[name]
    fn(0, total_steps, c0, **kwargs)  # validate the arguments now, not at trace time
    return lambda t: fn(t, total_steps, c0, **kwargs)


# ----------------------------------------------------------------------------
# Ordering: what the model may see at competence c.


def num_available(competence: ArrayLike, num_examples: int) -> jax.Array:
    """``ceil(c n)`` examples, at least one."""
    count = jnp.ceil(jnp.asarray(competence, jnp.float32) * num_examples - 1e-6)
    return jnp.clip(count.astype(jnp.int32), 1, num_examples)


def easiest_subset(order: np.ndarray, competence: float) -> np.ndarray:
    """Indices of the easiest ``c`` fraction (host side), easiest first."""
    return np.asarray(order)[: int(num_available(competence, len(order)))]


def sample_easiest(
    key: jax.Array, order: jax.Array, competence: ArrayLike, batch_size: int
) -> jax.Array:
    """A batch of example indices drawn uniformly from the easiest ``c`` fraction.

    Jittable with a traced ``competence``: the subset size is dynamic but the
    batch shape is fixed, so nothing recompiles as competence grows.
    """
    available = num_available(competence, order.shape[0])
    positions = jax.random.randint(key, (batch_size,), 0, available)
    return jnp.asarray(order)[positions]


# ----------------------------------------------------------------------------
# Stages: advance when validation accuracy passes a threshold.


def advance_stage(
    stage: ArrayLike, val_accuracy: ArrayLike, thresholds: ArrayLike, num_stages: int
) -> jax.Array:
    """The next stage index: ``stage + 1`` once ``val_accuracy >= thresholds[stage]``.

    ``thresholds`` is a scalar or one value per stage; the last stage is final.
    """
    if num_stages < 1:
        raise ValueError(f"num_stages must be >= 1, got {num_stages}")
    stage = jnp.asarray(stage, jnp.int32)
    per_stage = jnp.broadcast_to(jnp.asarray(thresholds, jnp.float32), (num_stages,))
    passed = jnp.asarray(val_accuracy, jnp.float32) >= per_stage[jnp.clip(stage, 0, num_stages - 1)]
    return jnp.where(passed & (stage < num_stages - 1), stage + 1, stage)


# ----------------------------------------------------------------------------
# Self-paced learning.


def self_paced_threshold(t: ArrayLike, lambda0: float, growth: float = 1.1) -> jax.Array:
    """``lambda(t) = lambda0 * growth^t``: admits harder examples as training goes on."""
    if lambda0 <= 0 or growth < 1:
        raise ValueError(f"need lambda0 > 0 and growth >= 1, got {lambda0}, {growth}")
    return lambda0 * jnp.power(growth, jnp.asarray(t, jnp.float32))


def self_paced_hard_weights(losses: ArrayLike, lam: ArrayLike) -> jax.Array:
    """Kumar et al. 2010: ``v_i = 1[loss_i < lambda]``, the closed-form minimiser in v."""
    return (jnp.asarray(losses) < lam).astype(jnp.float32)


def self_paced_linear_weights(losses: ArrayLike, lam: ArrayLike) -> jax.Array:
    """Linear soft weights ``max(0, 1 - loss_i / lambda)``: easy examples count more."""
    return jnp.clip(1.0 - jnp.asarray(losses, jnp.float32) / lam, 0.0, 1.0)
