"""Curriculum learning: difficulty scores, pacing, stage advancement, self-paced weights.

* Difficulty (host side, numpy): token length, rare-word rate and word rarity
  from corpus word counts, and a teacher-loss score.
* Competence-based pacing (Platanios et al., NAACL 2019): at step ``t`` the
  model samples only from the easiest ``c(t)`` fraction of the data, with
  ``c(0) = c0`` and ``c(t) = 1`` from ``t = T`` on. The pacing functions and
  ``sample_easiest`` are jnp, so ``t`` may be a traced step inside the jitted
  train step.
* Stage advancement (``pacing='threshold'``): competence rises one stage,
  ``c0`` to 1 in ``num_stages`` steps, only once the model's accuracy on
  held-out validation rows of the training pool passes the stage's threshold
  (jnp, one stage index per vmapped run).
* Self-paced learning (Kumar et al., NeurIPS 2010): hard weights
  ``v_i = 1[loss_i < lambda]`` with ``lambda`` grown over time, and the
  linear soft variant ``v_i = max(0, 1 - loss_i / lambda)`` (Jiang et al. 2014).
"""

from __future__ import annotations

import collections
import functools
import json
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


def parse_thresholds(value: str | float | Sequence[float], num_stages: int = 0) -> np.ndarray:
    """``config.stage_thresholds`` (``'0.5,0.6'``, a number or a sequence) as one per stage.

    ``num_stages=0`` takes one stage per threshold; a single threshold serves every stage.
    """
    items = value.split(",") if isinstance(value, str) else np.atleast_1d(value).tolist()
    try:
        thresholds = np.array([float(v) for v in items], np.float32)
    except (TypeError, ValueError):
        raise ValueError(f"config.stage_thresholds must be accuracies in [0, 1] separated by "
                         f"commas, got {value!r}") from None
    if thresholds.size == 0 or np.any((thresholds < 0) | (thresholds > 1)):
        raise ValueError(f"config.stage_thresholds must be accuracies in [0, 1] separated by "
                         f"commas, got {value!r}")
    num_stages = num_stages or thresholds.size
    if thresholds.size not in (1, num_stages):
        raise ValueError(f"config.stage_thresholds has {thresholds.size} values for "
                         f"config.num_stages={num_stages}; give one or {num_stages}")
    return np.broadcast_to(thresholds, (num_stages,)).copy()


def stage_competence(stage: ArrayLike, num_stages: int, c0: float) -> jax.Array:
    """``c0 + (1 - c0) k / num_stages`` at stage k: the step pacing's levels, reached on merit."""
    _check_c0(c0)
    return c0 + (1.0 - c0) * jnp.asarray(stage, jnp.float32) / num_stages


def next_stage(stage: ArrayLike, epochs_in_stage: ArrayLike, val_accuracy: ArrayLike,
               thresholds: ArrayLike, max_epochs_per_stage: int = 0) -> tuple[jax.Array, jax.Array]:
    """``(stage, epochs_in_stage)`` after one more epoch at ``stage`` scored ``val_accuracy``.

    Stages run 0..K (K = len(thresholds)); stage k < K is left once the accuracy
    reaches ``thresholds[k]``, or after ``max_epochs_per_stage`` epochs in it
    (0: no limit) so a run that never passes still reaches full competence.
    """
    thresholds = jnp.asarray(thresholds, jnp.float32)
    num_stages = thresholds.shape[0]
    stage = jnp.asarray(stage, jnp.int32)
    epochs_in_stage = jnp.asarray(epochs_in_stage, jnp.int32) + 1
    final = jnp.append(thresholds, thresholds[-1])  # stage K is final: its entry is never used
    moved = advance_stage(stage, val_accuracy, final, num_stages + 1)
    if max_epochs_per_stage > 0:
        timed_out = (epochs_in_stage >= max_epochs_per_stage) & (stage < num_stages)
        moved = jnp.where(timed_out, stage + 1, moved)
    return moved, jnp.where(moved != stage, 0, epochs_in_stage)


def held_out_rows(key: jax.Array, task: jax.Array, valid: jax.Array,
                  fraction: float) -> jax.Array:
    """The validation rows of one run's pool: ``ceil(fraction n)`` random valid rows of each task.

    Each row's draw depends only on ``key`` and its position, so a task's rows
    are held out the same way whichever pool (current task, seen, all) holds
    them. A task keeps at least one row to train on.
    """
    draw = jax.random.uniform(key, valid.shape)
    group = jnp.where(valid, task, jnp.iinfo(jnp.int32).max).astype(jnp.int32)
    order = jnp.lexsort((draw, group))
    rank = jnp.zeros_like(order).at[order].set(jnp.arange(order.shape[0], dtype=order.dtype))
    grouped = group[order]
    first = jnp.searchsorted(grouped, group, side="left")
    rows = jnp.searchsorted(grouped, group, side="right") - first
    count = jnp.minimum(jnp.ceil(fraction * rows - 1e-6).astype(rows.dtype), rows - 1)
    return valid & (rank - first < count)


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


# ----------------------------------------------------------------------------
# Curriculum over a run: per-epoch masks on the engine's training pools.
#
# The engine trains each epoch on a pool's ``valid`` rows in a fresh random
# order. ``Pacer.pool`` keeps only the easiest ``c(epoch)`` fraction of them
# valid, so the shapes never change and nothing recompiles; a run without
# ``config.curriculum`` never builds a Pacer and trains exactly as before.

CURRICULA = ("length", "rare_words", "teacher_loss", "self_paced")
PACINGS = (*PACING, "threshold")  # config.pacing: a schedule c(t), or stages on validation


def out_of_fold_teacher_losses(
    texts: Sequence[str], labels: ArrayLike, folds: int = 5, seed: int = 0
) -> np.ndarray:
    """Cross-entropy of each label under a TF-IDF + logistic-regression teacher that never saw it.

    Out-of-fold, so the score measures how hard an example is to generalise to,
    not how well a teacher memorised it (Hacohen & Weinshall 2019 score with a
    separately trained network; this is the cheapest such teacher).
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline

    labels = np.asarray(labels)
    if len(texts) != len(labels) or len(texts) < 2:
        raise ValueError(f"need as many labels as texts (at least 2), got {len(texts)} texts "
                         f"and {len(labels)} labels")
    teacher = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True),
                            LogisticRegression(max_iter=1000))
    folds = min(folds, len(texts))
    stratify = np.unique(labels, return_counts=True)[1].min() >= folds
    split = (StratifiedKFold if stratify else KFold)(folds, shuffle=True, random_state=seed)
    proba = cross_val_predict(teacher, list(texts), labels, cv=split, method="predict_proba")
    classes = np.unique(labels)  # cross_val_predict's column order
    column = np.searchsorted(classes, labels)
    return -np.log(np.maximum(proba[np.arange(len(labels)), column], 1e-7)).astype(np.float32)


def text_difficulty(
    name: str, texts: Sequence[str], labels: ArrayLike, seed: int = 0
) -> np.ndarray:
    """One static difficulty score per training text (higher is harder)."""
    if name == "length":
        return token_lengths(texts)
    if name == "rare_words":
        return rare_word_rate(texts, word_counts(texts))
    if name == "teacher_loss":
        return teacher_loss_score(out_of_fold_teacher_losses(texts, labels, seed=seed))
    static = [c for c in CURRICULA if c != "self_paced"]
    raise ValueError(f"unknown text difficulty {name!r}; choose from {static}")


def stream_difficulty(config, seed: int, size: int) -> np.ndarray:
    """``[T, size]`` scores of a text stream's training rows, in the stream's row order."""
    fields = {k: config.get(k) for k in _TEXT_FIELDS}
    return _stream_difficulty(json.dumps(fields, sort_keys=True), seed, size).copy()


# The config fields a text stream's training texts depend on (the difficulty cache key).
_TEXT_FIELDS = ("curriculum", "dataset", "domains", "max_examples_per_domain", "text_files",
                "text_column", "label_column", "label_set", "update_from")


@functools.lru_cache(maxsize=8)
def _stream_difficulty(config_json: str, seed: int, size: int) -> np.ndarray:
    """Memoised on the config: a comparison's runs share their splits' scores."""
    import ml_collections

    from research.data import text_stream

    config = ml_collections.ConfigDict(json.loads(config_json))
    if config.dataset not in ("sentiment", "text_file"):
        raise ValueError(f"config.curriculum={config.curriculum!r} scores texts; dataset "
                         f"{config.dataset!r} has none (use curriculum='self_paced')")
    tasks = text_stream.text_tasks(config, seed)
    out = np.zeros((len(tasks), size), np.float32)
    for t, task in enumerate(tasks):
        out[t, : len(task.train_texts)] = text_difficulty(
            config.curriculum, task.train_texts, task.train_labels, seed)
    return out


def easiest_mask(scores: jax.Array, valid: jax.Array, competence: ArrayLike) -> jax.Array:
    """``valid`` rows among the ``ceil(c n)`` lowest scores (n valid rows; stable ties)."""
    order = jnp.argsort(jnp.where(valid, scores, jnp.inf), stable=True)
    ranks = jnp.zeros_like(order).at[order].set(jnp.arange(order.shape[0], dtype=order.dtype))
    count = num_available(competence, jnp.maximum(jnp.sum(valid), 1))
    return valid & (ranks < count)


def balanced_easiest_mask(scores: jax.Array, valid: jax.Array, competence: ArrayLike,
                          labels: jax.Array, num_classes: int) -> jax.Array:
    """The easiest ``c`` fraction of each class's valid rows: an easy subset with the data's
    class mix (an unbalanced one can be a single class, e.g. by a teacher's loss)."""
    per_class = jax.vmap(lambda k: easiest_mask(scores, valid & (labels == k), competence))
    return jnp.any(per_class(jnp.arange(num_classes)), axis=0)


def _per_row(score: Callable, apply_fn: Callable, params, x, y: jax.Array,
             logit_mask: jax.Array, chunk: int) -> jax.Array:
    """``score(masked_logits, y)`` of every row, ``chunk`` rows at a time (BERT pools fit)."""
    rows = y.shape[0]
    pad = -rows % chunk
    padded = lambda a: jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1))
    x, y, logit_mask = jax.tree_util.tree_map(padded, (x, y, logit_mask))

    def one(args):
        xc, yc, mc = args
        return score(jnp.where(mc, apply_fn(params, xc), -1e9), yc)

    split = lambda a: a.reshape((-1, chunk) + a.shape[1:])
    scores = jax.lax.map(one, jax.tree_util.tree_map(split, (x, y, logit_mask)))
    return scores.reshape(-1)[:rows]


def _cross_entropy(logits: jax.Array, y: jax.Array) -> jax.Array:
    return -jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=-1)[:, 0]


def _correct(logits: jax.Array, y: jax.Array) -> jax.Array:
    return (jnp.argmax(logits, -1) == y).astype(jnp.float32)


def example_losses(apply_fn: Callable, params, x, y: jax.Array, logit_mask: jax.Array,
                   chunk: int = 256) -> jax.Array:
    """Per-row cross-entropy of one run's model on a pool (the self-paced score)."""
    return _per_row(_cross_entropy, apply_fn, params, x, y, logit_mask, chunk)


def weighted_accuracy(apply_fn: Callable, params, x, y: jax.Array, logit_mask: jax.Array,
                      weight: jax.Array, chunk: int = 256) -> jax.Array:
    """Accuracy of one run's model over the rows of weight 1 (0 when there are none)."""
    correct = _per_row(_correct, apply_fn, params, x, y, logit_mask, chunk)
    return jnp.sum(correct * weight) / jnp.maximum(jnp.sum(weight), 1.0)


class ValidationStages:
    """``pacing='threshold'``: each run's stage, and the held-out rows that decide it.

    Every epoch (from a task's second on) the model's accuracy on the
    validation rows (``config.validation_fraction`` of each task's rows, drawn
    from the run's seed and never trained on) moves a run to the next stage
    once it reaches ``config.stage_thresholds[stage]``. Stages restart at every
    task; from epoch ``cap_epochs`` on every run has full competence anyway.
    The stage lives on the device, one per vmapped run, and ``state()`` goes
    into the checkpoint so a resumed run decides as the uninterrupted one.
    """

    def __init__(self, config, seeds: Sequence[int] | None, apply_fn: Callable,
                 cap_epochs: int, train_on: str):
        self.thresholds = parse_thresholds(config.get("stage_thresholds", "0.5,0.55,0.6"),
                                           int(config.get("num_stages", 0)))
        self.c0 = float(config.get("c0", 0.1))
        _check_c0(self.c0)
        self.fraction = float(config.get("validation_fraction", 0.1))
        if not 0.0 < self.fraction < 1.0:
            raise ValueError(f"config.validation_fraction must be in (0, 1), got {self.fraction}")
        self.patience = int(config.get("max_epochs_per_stage", 0))
        if self.patience < 0:
            raise ValueError(f"config.max_epochs_per_stage must be >= 0 (0: no limit), "
                             f"got {self.patience}")
        self.seeds, self.cap_epochs, self.train_on = seeds, cap_epochs, train_on
        self.stage: jax.Array | None = None  # [R] int32
        self.epochs_in_stage: jax.Array | None = None  # [R] int32
        self.last: dict[str, jax.Array] = {}
        self._rows: tuple | None = None  # (stage_task, held [R, M], index [R, V], weight [R, V])
        batch = int(config.eval_batch_size)
        self._accuracy = jax.jit(jax.vmap(
            lambda p, x, y, m, w: weighted_accuracy(apply_fn, p, x, y, m, w, batch)))
        self._held_out = jax.jit(jax.vmap(held_out_rows, in_axes=(0, 0, 0, None)),
                                 static_argnums=3)
        self._next = jax.jit(functools.partial(next_stage, max_epochs_per_stage=self.patience))

    def _keys(self, runs: int, stage_task: int) -> jax.Array:
        seeds = range(runs) if self.seeds is None else self.seeds
        keys = [jax.random.fold_in(jax.random.PRNGKey(s), 0x5EED) for s in seeds]
        if self.train_on == "task":  # each task's pool draws its own rows
            keys = [jax.random.fold_in(k, stage_task) for k in keys]
        return jnp.stack(keys)

    def held_out(self, pool: dict, stage_task: int) -> jax.Array:
        """``[R, M]``: the pool's validation rows (computed once per stage, one host sync)."""
        if self._rows is None or self._rows[0] != stage_task:
            valid = pool["valid"]
            held = self._held_out(self._keys(valid.shape[0], stage_task), pool["task"], valid,
                                  self.fraction)
            width = max(1, int(jnp.max(jnp.sum(held, axis=1))))
            index = jnp.argsort(~held, axis=1, stable=True)[:, :width]
            weight = jnp.take_along_axis(held, index, axis=1).astype(jnp.float32)
            self._rows = (stage_task, held, index, weight)
        return self._rows[1]

    def competence(self, pool: dict, stage_task: int, epoch: int, params) -> jax.Array:
        """``[R]``: each run's competence this epoch, after this epoch's advancement check."""
        self.held_out(pool, stage_task)
        _, _, index, weight = self._rows
        rows = lambda a: jax.vmap(lambda b, i: b[i])(a, index)
        accuracy = self._accuracy(params, jax.tree_util.tree_map(rows, pool["x"]),
                                  rows(pool["y"]), rows(pool["logit_mask"]), weight)
        if epoch == 0 or self.stage is None:
            self.stage = jnp.zeros(index.shape[:1], jnp.int32)
            self.epochs_in_stage = jnp.zeros(index.shape[:1], jnp.int32)
        else:
            self.stage, self.epochs_in_stage = self._next(
                self.stage, self.epochs_in_stage, accuracy, self.thresholds)
        competence = stage_competence(self.stage, len(self.thresholds), self.c0)
        if epoch >= self.cap_epochs:
            competence = jnp.ones_like(competence)
        self.last = {"val_accuracy": accuracy, "curriculum_stage": self.stage,
                     "competence": competence}
        return competence

    def state(self) -> dict:
        if self.stage is None:
            return {}
        stage, epochs = jax.device_get((self.stage, self.epochs_in_stage))
        return {"stage": stage.tolist(), "epochs_in_stage": epochs.tolist()}

    def restore(self, state: dict) -> None:
        if state:
            self.stage = jnp.asarray(state["stage"], jnp.int32)
            self.epochs_in_stage = jnp.asarray(state["epochs_in_stage"], jnp.int32)


class Pacer:
    """Which rows of a stage's pool each epoch may train on (``config.curriculum``).

    Competence follows ``config.pacing`` from ``config.c0`` at epoch 0 to 1 at
    epoch ``config.curriculum_epochs`` (0: half of ``num_epochs``), restarting
    at every task; ``pacing='threshold'`` raises it a stage at a time on
    validation accuracy instead (``ValidationStages``), with full competence
    from ``curriculum_epochs`` on. Static curricula rank rows once by their
    text; ``self_paced`` ranks them every epoch by the current model's loss
    (Kumar et al. 2010 with a competence schedule in place of the growing
    threshold). With ``config.curriculum_balanced`` the fraction is taken
    within each class.
    """

    def __init__(self, config, scores: np.ndarray | None, train_on: str, apply_fn: Callable,
                 seeds: Sequence[int] | None = None):
        self.name = str(config.curriculum)
        epochs = int(config.get("curriculum_epochs", 0)) or max(1, int(config.num_epochs) // 2)
        pacing = str(config.get("pacing", "linear"))
        if pacing not in PACINGS:
            raise ValueError(f"unknown config.pacing {pacing!r}; choose from {', '.join(PACINGS)}")
        self.stages = None
        if pacing == "threshold":
            self.stages = ValidationStages(config, seeds, apply_fn, epochs, train_on)
        else:
            self.competence = pacing_function(pacing, epochs, float(config.get("c0", 0.1)))
        self.scores = None if scores is None else jnp.asarray(scores)  # [R, T, N]
        self.train_on = train_on
        self.balanced = bool(config.get("curriculum_balanced", False))
        batch = int(config.eval_batch_size)
        self._losses = jax.jit(jax.vmap(
            lambda p, x, y, m: example_losses(apply_fn, p, x, y, m, batch)))
        self._mask = jax.jit(jax.vmap(easiest_mask))
        self._balanced_mask = jax.jit(
            jax.vmap(balanced_easiest_mask, in_axes=(0, 0, 0, 0, None)), static_argnums=4)

    @classmethod
    def from_config(cls, config, seeds: Sequence[int], size: int, train_on: str,
                    apply_fn: Callable) -> Pacer | None:
        """The run's pacer, or None when ``config.curriculum`` is empty (random order)."""
        name = str(config.get("curriculum", ""))
        if not name:
            return None
        if name not in CURRICULA:
            raise ValueError(f"unknown config.curriculum {name!r}; choose from '' or "
                             f"{', '.join(CURRICULA)}")
        scores = None
        if name != "self_paced":
            by_seed = {s: stream_difficulty(config, s, size) for s in sorted(set(seeds))}
            scores = np.stack([by_seed[s] for s in seeds])
        return cls(config, scores, train_on, apply_fn, seeds)

    def _stage_scores(self, stage_task: int) -> jax.Array:
        if self.train_on == "task":
            return self.scores[:, stage_task]
        runs, tasks, size = self.scores.shape
        return self.scores.reshape(runs, tasks * size)

    def pool(self, pool: dict, stage_task: int, epoch: int, params) -> dict:
        """``pool`` with ``valid`` cut to the easiest ``c(epoch)`` fraction of its rows.

        With ``pacing='threshold'`` the validation rows are never valid, and
        each run's competence is its own stage's.
        """
        train_rows = pool["valid"]
        if self.stages is None:
            competence = jnp.full(train_rows.shape[:1], self.competence(epoch))
        else:
            competence = self.stages.competence(pool, stage_task, epoch, params)
            train_rows = train_rows & ~self.stages.held_out(pool, stage_task)
        if self.name == "self_paced":
            scores = self._losses(params, pool["x"], pool["y"], pool["logit_mask"])
        else:
            scores = self._stage_scores(stage_task)
        if self.balanced:
            valid = self._balanced_mask(scores, train_rows, competence, pool["y"],
                                        pool["logit_mask"].shape[-1])
        else:
            valid = self._mask(scores, train_rows, competence)
        return {**pool, "valid": valid}

    def metrics(self) -> dict[str, jax.Array]:
        """``[R]`` figures of the last ``pool`` call to log with the epoch (threshold pacing:
        the validation accuracy that decided the stage, the stage, the competence)."""
        return dict(self.stages.last) if self.stages is not None else {}

    def state(self) -> dict:
        """What a resumed run needs to pace as the uninterrupted one (JSON-able)."""
        return self.stages.state() if self.stages is not None else {}

    def restore(self, state: dict) -> None:
        if self.stages is not None:
            self.stages.restore(state)
