"""Multi-Digits data, Delta_m, and tiny end-to-end multi-task runs."""

import json
import os
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from algorithms import mtl_weighting as mtw
from research import checkpoint, multitask, workdirs
from research.configs import multi_digits as config_lib
from research.data import multi_digits as md
from research.workdirs import WorkdirError


def _tiny(arch: str = "cross_stitch", weighting: str = "uw"):
    config = config_lib.get_config("runlocal")
    config.n_train, config.n_test, config.hidden, config.epochs = 128, 64, (16,), 2
    config.batch_size = 32
    config.arch, config.weighting = arch, weighting
    return config


def test_multi_digits_pairs_are_consistent_and_seeded():
    train, test = md.load(seed=1, n_train=50, n_test=20)
    assert train.x.shape == (50, 8, 16) and test.y.shape == (20, 3)
    assert train.x.min() >= 0.0 and train.x.max() <= 1.0
    np.testing.assert_array_equal(train.y[:, 2], train.y[:, 0] + train.y[:, 1])
    again, _ = md.load(seed=1, n_train=50, n_test=20)
    np.testing.assert_array_equal(train.x, again.x)
    other, _ = md.load(seed=2, n_train=50, n_test=20)
    assert not np.array_equal(train.x, other.x)
    with pytest.raises(ValueError, match="test_fraction"):
        md.load(test_fraction=1.5)


def test_delta_m_follows_libmtl_signs():
    # +10% on an accuracy and a 10% lower (better) error: both count as +10
    assert multitask.delta_m([0.55, 0.9], [0.5, 1.0], [False, True]) == pytest.approx(10.0)
    assert multitask.delta_m([0.45, 1.1], [0.5, 1.0], [False, True]) == pytest.approx(-10.0)


def test_unknown_weighting_names_the_choices():
    with pytest.raises(ValueError, match="'sgd'.*pcgrad"):
        multitask.validate(_tiny(weighting="sgd"))


def _resumable():
    config = _tiny()  # cross-stitch + UW: stitch units and log-variances in the state
    config.epochs, config.checkpoint_every_epochs = 3, 1
    return config


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory):
    """One uninterrupted tiny run, shared by the report test and the resume test."""
    workdir = tmp_path_factory.mktemp("whole")
    return workdir, multitask.train_and_evaluate(_resumable(), str(workdir), progress=False)


def test_tiny_run_writes_results_and_plots(whole_run):
    tmp_path, summary = whole_run
    with open(tmp_path / "results.json") as f:
        saved = json.load(f)
    for key in ("per_task", "single_task", "delta_m", "sigmas", "cross_stitch", "history"):
        assert key in saved
    assert set(saved["per_task"]) == set(md.TASK_NAMES) == set(saved["single_task"])
    assert np.isfinite(saved["delta_m"]) and saved["delta_m"] == summary["delta_m"]
    assert len(saved["history"]["train_loss"]) == 3
    assert np.asarray(saved["cross_stitch"]).shape == (1, 3, 3)
    for png in ("loss_curves.png", "task_weights.png", "uw_sigmas.png", "cross_stitch.png"):
        assert os.path.getsize(tmp_path / png) > 0
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["results.json", "loss_curves.png", "task_weights.png", "uw_sigmas.png",
         "cross_stitch.png", "config.json", "checkpoints", "single_task"]
    )
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp")]


class _Interrupt(Exception):
    """Stands in for a kill right after a checkpoint was written."""


def test_resumed_run_equals_uninterrupted_run_exactly(tmp_path, monkeypatch, whole_run):
    config, expected = _resumable(), whole_run[1]

    real_save, saves = checkpoint.save, []

    def save_then_die(mngr, step, state, record):
        real_save(mngr, step, state, record)
        saves.append(str(mngr.directory))
        # the multi-task model completes; the baselines die after their first epoch
        if "single_task" in saves[-1]:
            raise _Interrupt

    workdir = str(tmp_path / "killed")
    monkeypatch.setattr(checkpoint, "save", save_then_die)
    with pytest.raises(_Interrupt):
        multitask.train_and_evaluate(config, workdir, progress=False)
    assert not os.path.exists(os.path.join(workdir, "results.json"))
    monkeypatch.setattr(checkpoint, "save", real_save)
    resumed = multitask.train_and_evaluate(config, workdir, progress=False)
    for key in ("per_task", "single_task", "delta_m", "per_seed", "history", "steps", "sigmas"):
        assert resumed[key] == expected[key], key
    assert len(saves) == 4  # three epochs of the model, one of the baselines


def test_vmapped_seed_k_matches_the_single_run_with_seed_k(tmp_path):
    config = _tiny("hard", "dwa")
    config.single_task, config.num_seeds = False, 2
    both = multitask.train_and_evaluate(config, str(tmp_path / "both"), progress=False)
    config.seed, config.num_seeds = 1, 1
    alone = multitask.train_and_evaluate(config, str(tmp_path / "alone"), progress=False)
    assert both["seeds"] == [0, 1] and alone["seeds"] == [1]
    np.testing.assert_allclose(np.asarray(both["history"]["train_loss"])[:, 1],
                               np.asarray(alone["history"]["train_loss"])[:, 0], rtol=1e-4)
    for name in md.TASK_NAMES:  # a batched matmul may round differently: a prediction may flip
        assert both["per_seed"][1]["per_task"][name] == pytest.approx(
            alone["per_task"][name], abs=2 / config.n_test)
        values = [row["per_task"][name] for row in both["per_seed"]]
        assert both["per_task"][name] == pytest.approx(np.mean(values))
        assert both["per_task_std"][name] == pytest.approx(np.std(values))


@pytest.mark.parametrize(
    "arch, weighting",
    [("mtan", "pcgrad"), ("mtan", "mgda"), ("task_bn", "pcgrad"), ("task_bn", "mgda"),
     ("soft", "mgda")],
)
def test_pcgrad_and_mgda_leave_task_specific_params_their_own_gradient(arch, weighting):
    # Yu et al. 2020 and Sener & Koltun 2018 (Alg. 2) combine gradients of the shared
    # parameters only: a task's attention module / batch norm / column gets its own
    # gradient, unscaled, and takes no part in the projections or the min-norm problem
    config = _tiny(arch, weighting)
    config.soft_lambda = 0.0  # the soft-sharing pull is added on top of the combination
    split, _ = multitask.load_splits(config)
    trainer = multitask.Trainer(config, split.x.shape[0])
    x, y = jnp.asarray(split.x), jnp.asarray(split.y)
    state = trainer._init(x, jax.random.key(0))
    batch, key = (x[:32], y[:32]), jax.random.key(1)
    grads, _, _, weights, _, _ = trainer._jacobian_step(
        state, batch, key, trainer.perturb_template(x))
    jac = jax.jacrev(lambda p: trainer._loss_vector(p, state.batch_stats, batch)[0])(
        state.params["model"])
    owner = {"mtan": ("head_", "attention_"), "task_bn": ("head_", "bn_"),
             "soft": ("head_", "column_")}[arch]
    own = [name for name in jac if name.startswith(owner)]
    assert len(own) > trainer.num_tasks  # more than the heads
    for name in own:
        t = int(name.split("_")[1])
        chex.assert_trees_all_close(grads["model"][name],
                                    jax.tree_util.tree_map(lambda j, t=t: j[t], jac[name]),
                                    rtol=1e-5, atol=1e-7)
    shared = {name: jac[name] for name in jac if name not in own}
    if not shared:
        return
    flat = mtw.flatten_task_grads(shared)
    got = ravel_pytree({name: grads["model"][name] for name in shared})[0]
    if weighting == "pcgrad":
        np.testing.assert_allclose(got, mtw.pcgrad(flat, key), rtol=1e-4, atol=1e-6)
        return
    if not trainer.perturb_template(x):  # no shared representation: shared-parameter MGDA
        np.testing.assert_allclose(weights, mtw.mgda_weights(flat, config.mgda_iters),
                                   rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got, weights @ flat, rtol=1e-4, atol=1e-6)


def test_delta_m_is_the_mean_of_per_seed_delta_m():
    tasks = multitask.tasks_of(_tiny())
    single = {"left": [0.5, 0.4], "right": [0.5, 0.5], "sum": [2.0, 1.0]}
    out = multitask.seed_summary(tasks, [0, 1], [[0.55, 0.5, 1.0], [0.4, 0.55, 1.0]], single)
    assert [row["delta_m"] for row in out["per_seed"]] == pytest.approx([20.0, 10.0 / 3])
    assert out["delta_m"] == pytest.approx(35.0 / 3) and out["delta_m_std"] == pytest.approx(25 / 3)
    assert out["single_task"]["left"] == pytest.approx(0.45)


def test_workdir_of_another_config_is_refused_unless_overwrite(tmp_path):
    config = _tiny()
    prepare = lambda workdir, config, overwrite: workdirs.prepare(
        workdir, multitask.identity(config), overwrite)
    prepare(str(tmp_path), config, overwrite=False)
    (tmp_path / "stale.txt").write_text("x")
    config.checkpoint_every_epochs = 7  # operational: same run
    prepare(str(tmp_path), config, overwrite=False)
    config.learning_rate = 0.5
    with pytest.raises(WorkdirError, match="fields differ: learning_rate.*--overwrite"):
        prepare(str(tmp_path), config, overwrite=False)
    prepare(str(tmp_path), config, overwrite=True)
    assert not (tmp_path / "stale.txt").exists()
    with open(tmp_path / "config.json") as f:
        assert json.load(f)["learning_rate"] == 0.5


def test_cli_rejects_unknown_arch_with_exit_code_2(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "scripts.multitask", "--config=research/configs/multi_digits.py",
         "--config.arch=dense", f"--workdir={tmp_path}"],
        capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__)),
    )
    assert proc.returncode == 2
    assert "'dense'" in proc.stderr and "cross_stitch" in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["hard", "cross_stitch", "mtan", "task_bn", "soft"])
@pytest.mark.parametrize("weighting", ["equal", "uw", "dwa", "gradnorm", "pcgrad", "mgda"])
def test_every_arch_and_weighting_trains(arch, weighting):
    config = _tiny(arch, weighting)
    train, test = multitask.load_seeded(config)
    result = multitask.fit(config, train, test, progress=False)
    losses = np.asarray(result["history"]["train_loss"])
    assert np.all(np.isfinite(losses)) and np.all(np.isfinite(result["metrics"]))
    assert losses[-1].sum() < losses[0].sum()


def test_compare_cli_writes_its_table_and_resumes(tmp_path):
    """``scripts.multitask_compare`` as a user runs it: baselines once, each arch x
    weighting, the markdown table; the same command again reuses every finished run."""
    cmd = [sys.executable, "-m", "scripts.multitask_compare",
           "--config=research/configs/multi_digits.py:runlocal", "--archs=hard",
           "--weightings=equal,dwa", f"--workdir={tmp_path}"]
    root = os.path.dirname(os.path.dirname(__file__))
    first = subprocess.run(cmd, capture_output=True, text=True, cwd=root)
    assert first.returncode == 0, first.stderr[-2000:]
    table = (tmp_path / "results.md").read_text()
    assert "| hard | equal |" in table and "| hard | dwa |" in table
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=root)
    assert again.returncode == 0, again.stderr[-2000:]
    assert (tmp_path / "results.md").read_text().split("\n")[2:] == table.split("\n")[2:]


def test_seeds_whose_test_splits_differ_in_size_are_scored_on_their_own_rows(monkeypatch):
    """A text test split drops the sentences its training part repeats, so seeds' test
    splits can differ in size: they pad to the longest, and the padding is not scored."""
    config = _tiny("hard", "equal")
    config.num_seeds = 2
    real = multitask.load_splits
    short = lambda cfg: (lambda tr, te: (tr, md.Split(te.x[:-5], te.y[:-5])))(*real(cfg))
    monkeypatch.setattr(multitask.tasks, "load_splits",
                        lambda cfg: short(cfg) if cfg.seed == config.seed + 1 else real(cfg))
    train, test = multitask.load_seeded(config)
    assert test.valid.sum(1).tolist() == [64, 59]
    padded = multitask.fit(config, train, test, progress=False)["metrics"]
    alone = ml_collections.ConfigDict(config.to_dict())
    alone.num_seeds, alone.seed = 1, config.seed + 1
    one_train, one_test = multitask.load_seeded(alone)
    np.testing.assert_allclose(padded[1], multitask.fit(alone, one_train, one_test,
                                                        progress=False)["metrics"][0], rtol=1e-5)


def test_compare_keeps_compiled_programs_in_the_workdir(tmp_path):
    """As every command's workdir does: a rerun or resume loads them instead of compiling."""
    environ = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    proc = subprocess.run(
        [sys.executable, "-m", "scripts.multitask_compare",
         "--config=research/configs/multi_digits.py:runlocal", "--config.progress=False",
         "--archs=hard", "--weightings=equal", f"--workdir={tmp_path}"],
        capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__)),
        env=environ, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert os.listdir(tmp_path / "xla_cache")
