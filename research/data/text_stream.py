"""Labelled texts -> a domain-incremental Stream of packed token arrays, tokenised once.

Tasks come from the sentiment corpus (``dataset='sentiment'``: one task per
domain of ``config.domains``, in that order, each tested on its own test
split) or from user files (``dataset='text_file'``: one task per file of
``config.text_files``, split 80/20 stratified by label). With
``config.update_from=W`` the data of the run in workdir W comes first, merged
into one task ``old``: what ``scripts.update`` measures forgetting on. No task
tests on a text that any task of the stream trains on (an update's new file
that repeats old rows would otherwise train on the old task's test rows).

Every text is tokenised once to ``config.max_length`` tokens and packed as
int32 ``[3, L]`` (``models.text.build.PACKED_FIELDS``), so the stream has
fixed shapes and the engine compiles once. ``config.cached_features`` swaps
the tokens for the frozen encoder's sentence embeddings ``[H]`` (the fast
linear probe); ``algorithm='distill'`` adds the teacher's logits to ``x``.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import ml_collections
import numpy as np

from models.text import build as text_build
from models.text import load as text_load
from research.data import sentiment, text_files
from research.data.stream import Stream

FILE_SPLIT = (0.8, 0.2)


class TextTask(NamedTuple):
    """One task's texts and int labels (test = the task's held-out split)."""

    name: str
    train_texts: list[str]
    train_labels: np.ndarray
    test_texts: list[str]
    test_labels: np.ndarray


def parse_list(text: str, field: str) -> list[str]:
    """'a, b,c' -> ['a', 'b', 'c']; an empty list, or a value given twice (two tasks of
    one domain would collapse into one), is an error naming ``field``."""
    items = [v.strip() for v in str(text).split(",") if v.strip()]
    if not items:
        raise ValueError(f"config.{field} is empty; give comma-separated values")
    twice = sorted({v for v in items if items.count(v) > 1})
    if twice:
        raise ValueError(f"config.{field} names {', '.join(map(repr, twice))} more than once")
    return items


def label_names(config: ml_collections.ConfigDict) -> tuple[str, ...]:
    """The class names, in head order."""
    if config.dataset == "sentiment":
        return sentiment.LABEL_NAMES
    return tuple(parse_list(config.label_set, "label_set"))


@functools.lru_cache(maxsize=4)
def tokenizer_for(encoder: str) -> Any:
    return text_load.load_tokenizer(text_load.resolve_model_dir(encoder))


def sentiment_tasks(config: ml_collections.ConfigDict, seed: int) -> list[TextTask]:
    """One task per domain of ``config.domains``, in order."""
    limit = int(config.max_examples_per_domain) or None
    splits = sentiment.load_domains(parse_list(config.domains, "domains"), seed,
                                    max_examples_per_domain=limit)
    return [TextTask(name, s.train.texts, s.train.labels, s.test.texts, s.test.labels)
            for name, s in splits.items()]


def file_task(path: str, config: ml_collections.ConfigDict, seed: int) -> TextTask:
    """A user file as one task: stratified 80/20 train/test by label (seeded), the test
    part without the texts the training part repeats."""
    data = text_files.load_text_file(path, config.text_column, config.label_column,
                                     label_names(config))
    limit = int(config.max_examples_per_domain) or None
    train, test = sentiment.unseen_in_training(
        data.texts, sentiment.stratified_split(data.labels, seed, FILE_SPLIT, limit))
    if not len(test):
        raise ValueError(f"{path}: every test row repeats the text of a training row; "
                         "the file needs more distinct texts to hold some out")
    pick = lambda idx: ([data.texts[i] for i in idx], data.labels[idx])
    return TextTask(os.path.basename(path), *pick(train), *pick(test))


def merge(name: str, tasks: Sequence[TextTask]) -> TextTask:
    """Several tasks as one (the old data of an update)."""
    cat = lambda field: [t for task in tasks for t in getattr(task, field)]
    labels = lambda field: np.concatenate([getattr(t, field) for t in tasks]).astype(np.int32)
    return TextTask(name, cat("train_texts"), labels("train_labels"), cat("test_texts"),
                    labels("test_labels"))


def read_run_config(workdir: str) -> ml_collections.ConfigDict:
    """The config a run saved in ``workdir/config.json``."""
    path = os.path.join(workdir, "config.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{workdir!r} holds no run (no config.json); "
                                "give the --workdir of a scripts.finetune run")
    with open(path) as f:
        config = ml_collections.ConfigDict(json.load(f))
    dataset = config.get("dataset", "")
    if dataset not in ("sentiment", "text_file"):  # its params would not fit a text model
        raise ValueError(f"{workdir!r} holds a run on dataset {dataset!r}, not a text run; "
                         "give the --workdir of a scripts.finetune run")
    return config


def unseen_in_any_training(tasks: Sequence[TextTask]) -> list[TextTask]:
    """``tasks`` with every test text that any task of the stream trains on dropped, as
    ``sentiment.unseen_in_training`` does within one task (the same ``text_key``). An
    update's new file often repeats old rows: an old test row trained on later would
    measure memory, not retention, and inflate the old task's accuracy and BWT."""
    seen = {sentiment.text_key(text) for task in tasks for text in task.train_texts}
    out = []
    for task in tasks:
        keep = np.array([i for i, text in enumerate(task.test_texts)
                         if sentiment.text_key(text) not in seen], int)
        if task.test_texts and not len(keep):
            raise ValueError(f"task {task.name!r}: every test row repeats a text that the "
                             "stream trains on; give it texts no task trains on")
        out.append(task._replace(test_texts=[task.test_texts[i] for i in keep],
                                 test_labels=task.test_labels[keep]))
    return out


def text_tasks(config: ml_collections.ConfigDict, seed: int) -> list[TextTask]:
    """The stream's tasks as texts: old run data first (``update_from``), then the new data;
    no task tests on a text any task trains on."""
    if config.dataset == "sentiment":
        tasks = sentiment_tasks(config, seed)
    elif config.dataset == "text_file":
        tasks = [file_task(p, config, seed) for p in parse_list(config.text_files, "text_files")]
    else:
        raise ValueError(f"dataset {config.dataset!r} is not a text dataset; "
                         "choices: sentiment, text_file")
    if config.update_from:
        old = read_run_config(config.update_from)
        if label_names(old) != label_names(config):
            raise ValueError(f"labels {list(label_names(config))} differ from those of the run "
                             f"in {config.update_from!r}: {list(label_names(old))}")
        tasks = [merge("old", text_tasks(old, seed))] + tasks
    return unseen_in_any_training(tasks)


def tokenize(config: ml_collections.ConfigDict, texts: Sequence[str]) -> np.ndarray:
    """Packed int32 ``[N, 3, max_length]`` tokens of ``texts``."""
    if int(config.max_length) < text_load.MIN_LENGTH:
        raise ValueError(f"config.max_length={config.max_length} is too short: a text needs "
                         f"at least {text_load.MIN_LENGTH} tokens ([CLS] and [SEP])")
    tokens = text_load.tokenize(tokenizer_for(str(config.encoder)), list(texts),
                                int(config.max_length))
    return text_build.pack(tokens)


def _pad(arrays: Sequence[Any]) -> tuple[Any, np.ndarray]:
    """Stacks per-task pytrees of ``[n_t, ...]`` arrays to ``[T, max n, ...]``, zero-padded."""
    sizes = np.array([len(jax.tree_util.tree_leaves(a)[0]) for a in arrays], np.int32)

    def stack(*leaves):
        out = np.zeros((len(leaves), int(sizes.max())) + leaves[0].shape[1:], leaves[0].dtype)
        for t, leaf in enumerate(leaves):
            out[t, : len(leaf)] = leaf
        return out

    return jax.tree_util.tree_map(stack, *arrays), sizes


def stream_from_tasks(name: str, tasks: Sequence[TextTask], train_x: Sequence[Any],
                      test_x: Sequence[Any], num_classes: int) -> Stream:
    """A shared-label (domain-IL) Stream from per-task inputs (any pytree of arrays)."""
    tx, n_train = _pad(train_x)
    ex, n_test = _pad(test_x)
    ty, _ = _pad([t.train_labels.astype(np.int32) for t in tasks])
    ey, _ = _pad([t.test_labels.astype(np.int32) for t in tasks])
    classes = np.ones((len(tasks), num_classes), bool)
    return Stream(name, tx, ty, n_train, ex, ey, n_test, classes, True)


def make_text_stream(config: ml_collections.ConfigDict, seed: int) -> Stream:
    """The Stream ``config`` describes (see the module docstring)."""
    tasks = text_tasks(config, seed)
    empty = [t.name for t in tasks if not len(t.train_labels) or not len(t.test_labels)]
    if empty:
        # an update reads its new file uncapped: only more rows can help there
        capped = (" or raise config.max_examples_per_domain"
                  if config.max_examples_per_domain else "")
        raise ValueError(f"task(s) {empty} have no training or no test examples; "
                         f"give more examples{capped}")
    train_x = [tokenize(config, t.train_texts) for t in tasks]
    test_x = [tokenize(config, t.test_texts) for t in tasks]
    if config.cached_features:
        from research import finetune
        train_x = [finetune.encode_features(config, x) for x in train_x]
        test_x = [finetune.encode_features(config, x) for x in test_x]
    elif config.algorithm == "distill":
        from research import deploy
        teacher = deploy.Predictor.from_workdir(config.teacher_workdir)
        train_x = [{"tokens": x, "teacher": teacher.logits(t.train_texts)}
                   for x, t in zip(train_x, tasks, strict=True)]
        test_x = [{"tokens": x, "teacher": teacher.logits(t.test_texts)}
                  for x, t in zip(test_x, tasks, strict=True)]
    name = "+".join(t.name for t in tasks)
    return stream_from_tasks(name, tasks, train_x, test_x, len(label_names(config)))
