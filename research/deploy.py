"""What the deployment CLIs share: load a trained text run, classify texts, update it on new data.

An update is a two-task run of the same engine: task 0 is the old run's data
(``config.update_from``), task 1 the new file. ``prepare_update`` writes the
new workdir's checkpoint as if task 0 had just been trained: the old params,
then the method's consolidation on the old data (the old rows are offered to
``after_step`` with the params fixed, which fills a replay buffer, then
``end_task``: Fisher for EWC, the teacher for LwF) and the accuracy before the
update in row 0 of the accuracy matrix. ``train_and_evaluate`` then resumes at
task 1, so row 1 is the accuracy after the update, on old and new data alike.
Both rows test the old task on the old run's test rows less those whose text
the new file trains on (``text_stream.unseen_in_any_training``): the same rows
before and after, which may be fewer than the old run's own results.json used.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from tqdm import tqdm

import algorithms
import models
from research import checkpoint, config_check, workdirs
from research import engine as engine_lib
from research import train as train_lib
from research.configs import sentiment_domains
from research.data import text_files, text_stream

UPDATE_METHODS = {"ewc": "ewc", "replay": "er", "lwf": "lwf", "naive": "naive"}


def _stages(config: ml_collections.ConfigDict, tasks: int) -> int:
    """The training stages a finished run of ``config`` on ``tasks`` tasks went through."""
    method = algorithms.load(config.algorithm).make(config_check.run_grid(config)[0][1])
    return len(train_lib.stage_tasks(method.train_on, tasks))


def load_run_params(workdir: str) -> tuple[ml_collections.ConfigDict, Any]:
    """(config, params of every run, ``[runs, ...]``) of the finished run in ``workdir``.

    A run stopped part way (killed, or an update whose task 0 was prepared but not yet
    trained on the new data) is refused: its newest checkpoint holds the weights of an
    earlier task or epoch, which would classify or be updated without a word."""
    config = text_stream.read_run_config(workdir)
    mngr = checkpoint.manager(workdir, 1)
    step = mngr.latest_step()
    if step is None:
        raise FileNotFoundError(f"{workdir!r} has no checkpoint; did its run finish?")
    got = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(),
                                                     progress=ocp.args.JsonRestore()))
    stage, stages = got["progress"]["stage"], _stages(config, len(got["progress"]["class_il"][0]))
    if stage < stages:
        raise checkpoint.CheckpointError(
            f"{workdir!r} holds an unfinished run (it stopped in training stage {stage + 1} "
            f"of {stages}); rerun the command that started it to finish it")
    return config, jax.tree_util.tree_map(np.asarray, got["state"]["params"])


def load_params(workdir: str) -> tuple[ml_collections.ConfigDict, Any]:
    """(config, params of the first run) of the newest checkpoint in ``workdir``."""
    config, params = load_run_params(workdir)
    return config, jax.tree_util.tree_map(lambda a: a[0], params)


class Predictor:
    """A trained text run as a batched classifier: texts -> logits, labels, probabilities."""

    def __init__(self, config: ml_collections.ConfigDict, params: Any, batch_size: int = 64,
                 progress: bool = False):
        self.config, self.params, self.batch_size = config, params, batch_size
        self.progress = progress  # a bar over the batches, on stderr
        self.label_names = text_stream.label_names(config)
        model = models.load(config.model).build(config, len(self.label_names))
        self._apply = jax.jit(lambda p, x: model.apply({"params": p}, x))

    @classmethod
    def from_workdir(cls, workdir: str, batch_size: int = 64, progress: bool = False
                     ) -> Predictor:
        if not workdir:
            raise ValueError("no workdir given: pass the --workdir of a scripts.finetune run")
        return cls(*load_params(workdir), batch_size=batch_size, progress=progress)

    def inputs(self, texts: list[str]) -> np.ndarray:
        x = text_stream.tokenize(self.config, texts)
        if self.config.cached_features:
            from research import finetune
            x = finetune.encode_features(self.config, x)
        return x

    def logits(self, texts: list[str]) -> np.ndarray:
        """``[N, C]`` logits, in fixed-size batches (the last one padded) so it compiles once.
        A batch is never larger than ``N``: padding a few texts to a large ``batch_size``
        ran the model on that many rows (2 texts at 50,000 took 23 GB and were killed)."""
        x = self.inputs(list(texts))
        size = min(self.batch_size, len(x))
        out = []
        for start in tqdm(range(0, len(x), max(size, 1)), desc="classify", unit="batch",
                          disable=not self.progress):
            chunk = engine_lib.pad_to_multiple(x[start:start + size], 0, size)
            out.append(np.asarray(self._apply(self.params, chunk))[: len(x) - start])
        return np.concatenate(out) if out else np.zeros((0, len(self.label_names)), np.float32)

    def predict(self, texts: list[str]) -> tuple[list[str], np.ndarray]:
        """(label names, probabilities ``[N, C]``)."""
        probs = np.asarray(jax.nn.softmax(self.logits(texts), axis=-1))
        return [self.label_names[i] for i in probs.argmax(-1)], probs


def update_config(old_workdir: str, data_path: str, method: str,
                  num_epochs: int = 0) -> ml_collections.ConfigDict:
    """The old run's config, retargeted: task 0 its data, task 1 ``data_path``, ``method``."""
    if method not in UPDATE_METHODS:
        raise ValueError(f"unknown --method {method!r}; choices: {', '.join(UPDATE_METHODS)}")
    if not os.path.isfile(data_path):
        raise FileNotFoundError(f"data file {data_path!r} does not exist")
    config = text_stream.read_run_config(old_workdir)
    text_files.load_text_file(data_path, config.text_column, config.label_column,
                              text_stream.label_names(config))  # bad rows: fail before work
    # max_examples_per_domain=0: the old run's cap subsampled its corpus; the new file is
    # the user's data, every row of it (the old data keeps its cap: text_tasks reads it
    # from the old run's own config).
    config.update(dataset="text_file", text_files=os.path.abspath(data_path),
                  update_from=os.path.abspath(old_workdir), algorithm=UPDATE_METHODS[method],
                  num_tasks=2, teacher_workdir="", max_examples_per_domain=0)
    # The old run saved only its own method's hyper-parameters: the new method's come
    # from the encoder's sizes, else its defaults.
    encoder = sentiment_domains.encoder_hparams(config.max_length)
    config.hp.update({k: encoder.get(k, v) for k, v in
                      algorithms.load(config.algorithm).HPARAMS.items() if k not in config.hp})
    if num_epochs:
        config.num_epochs = num_epochs
    return config


def _offer_old_data(eng: engine_lib.Engine, state: engine_lib.RunState, pool: dict,
                    hp: dict) -> engine_lib.RunState:
    """Every real old row goes through ``after_step`` once, params fixed (fills replay buffers)."""
    alg = eng.algorithm(hp)
    size = pool["y"].shape[0]
    steps = -(-size // eng.batch_size)
    ids = jnp.arange(steps * eng.batch_size) % size
    valid = jnp.arange(steps * eng.batch_size) < size
    zeros = jax.tree_util.tree_map(jnp.zeros_like, state.params)

    def body(carry, args):
        alg_state, rng = carry
        step_ids, step_valid = args
        rng, key = jax.random.split(rng)
        batch = engine_lib._as_batch(pool, step_ids)
        batch["weight"] = batch["weight"] * step_valid
        alg_state = alg.after_step(alg_state, state.params, state.params, zeros, batch,
                                   eng.apply_fn, key)
        return (alg_state, rng), None

    shape = (steps, eng.batch_size)
    (alg_state, rng), _ = jax.lax.scan(body, (state.alg_state, state.rng),
                                       (ids.reshape(shape), valid.reshape(shape)))
    return state._replace(alg_state=alg_state, rng=rng)


def prepare_update(config: ml_collections.ConfigDict, workdir: str,
                   overwrite: bool = False) -> None:
    """Writes ``workdir``'s config and a checkpoint at the end of task 0 (see module doc).

    The config is checked and the workdir claimed before any work: a bad value leaves no
    workdir behind, and one holding another run is refused (or cleared with
    ``overwrite``). A workdir that already holds a checkpoint is left as it is (the
    update resumes); one whose first save was cut short holds none yet, and is prepared
    again.
    """
    config_check.validate(config)
    # The config as train_and_evaluate records it: a config.json holding other methods'
    # hyper-parameters (the old run's) would read as another run when the update starts.
    workdirs.prepare(workdir, train_lib.run_identity(config), overwrite)
    if (os.path.isdir(os.path.join(workdir, "checkpoints"))
            and checkpoint.manager(workdir, 1).latest_step() is not None):
        return
    _, old_params = load_run_params(config.update_from)
    # Run i continues the old run i: its seed drew the old data's split, so another
    # run's params would be tested on rows they were trained on.
    runs, grid = jax.tree_util.tree_leaves(old_params)[0].shape[0], config_check.run_grid(config)
    if runs != len(grid):
        raise ValueError(f"{config.update_from!r} holds {runs} runs, the update "
                         f"{len(grid)}: the runs must continue one to one")
    run = train_lib.build_run(config, start_from=lambda fresh: jax.tree_util.tree_map(
        lambda old, new: jnp.asarray(old, new.dtype), old_params, fresh))
    eng, hp, data, state = run.eng, run.hp, run.data, run.state
    pool = jax.tree_util.tree_map(jnp.asarray, data.train_pool(0))
    state = jax.jit(jax.vmap(lambda s, p, h: _offer_old_data(eng, s, p, h)))(state, pool, hp)
    state = eng.end_task(state, pool, hp)
    before = jax.device_get(eng.evaluate(state, run.test, run.task_classes, hp))
    runs, tasks = len(run.grid), data.num_tasks
    acc = {}
    for key in ("class_il", "task_il"):
        acc[key] = np.zeros((runs, tasks, tasks))
        acc[key][:, 0, :] = before[key]
    with checkpoint.opened(workdir, config.keep_checkpoints) as mngr:
        checkpoint.save(mngr, config.num_epochs, state, {
            "stage": 1, "epoch": 0, "rows": [], "train_seconds": 0.0,
            **{k: v.tolist() for k, v in acc.items()}})


def update(config: ml_collections.ConfigDict, workdir: str, overwrite: bool = False) -> dict:
    """Prepares (once) and runs the update; results.json of a two-task run. A workdir
    holding another run is refused before any work, or cleared with ``overwrite``."""
    if os.path.abspath(workdir) == os.path.abspath(config.update_from):
        raise workdirs.WorkdirError(f"workdir {workdir!r} is the run to update: the updated "
                                     "run needs a --workdir of its own")
    prepare_update(config, workdir, overwrite)
    return train_lib.train_and_evaluate(config, workdir)


def before_after(results: dict) -> dict[str, dict[str, float]]:
    """{'before': {'old':, 'new':}, 'after': {...}} from a two-task update's accuracy matrix."""
    matrix = results["domain_il"]["accuracy_matrix"]
    return {when: {"old": float(row[0]), "new": float(row[1])}
            for when, row in zip(("before", "after"), matrix, strict=True)}


def tsv_lines(names: Sequence[str], texts: Sequence[str], labels: Sequence[str],
              probs: np.ndarray) -> list[str]:
    """``scripts.predict``'s TSV: the header (``label``, ``p_<class>`` in ``names``' order,
    ``text``), then a line per text: its label, each class's probability to 4 places, the
    text."""
    header = ["label", *(f"p_{name}" for name in names), "text"]
    return ["\t".join(header)] + ["\t".join([label, *(f"{v:.4f}" for v in p), text])
                                  for text, label, p in zip(texts, labels, probs, strict=True)]

