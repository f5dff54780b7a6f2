"""The curriculum hook of a run: per-epoch masks follow c(t); off means random order unchanged."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from research import train
from research.curriculum import difficulty, pacing, row_scores
from research.curriculum.pacer import Pacer
from research.data import sentiment


def _config(**fields) -> ml_collections.ConfigDict:
    base = {"curriculum": "length", "pacing": "linear", "c0": 0.1, "curriculum_epochs": 4,
            "num_epochs": 8, "eval_batch_size": 4}
    return ml_collections.ConfigDict({**base, **fields})


def _pool(valid: np.ndarray, features: int = 2) -> dict:
    runs, rows = valid.shape
    x = jnp.asarray(np.random.default_rng(0).normal(size=(runs, rows, features)), jnp.float32)
    return {"x": x, "y": jnp.zeros((runs, rows), jnp.int32), "valid": jnp.asarray(valid),
            "task": jnp.zeros((runs, rows), jnp.int32),
            "logit_mask": jnp.ones((runs, rows, 2), bool)}


@pytest.mark.parametrize("schedule", sorted(pacing.PACING))
def test_mask_fraction_follows_competence(schedule):
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(2, 1, 30)).astype(np.float32)  # [R, T, N]
    valid = np.ones((2, 30), bool)
    valid[1, 25:] = False  # run 1 has 25 real rows, then padding
    config = _config(pacing=schedule)
    pacer = Pacer(config, scores, "task", apply_fn=None)
    competence = pacing.pacing_function(schedule, 4, 0.1)
    for epoch in range(8):
        mask = np.asarray(pacer.pool(_pool(valid), 0, epoch, None)["valid"])
        chex.assert_shape(mask, (2, 30))
        c = float(competence(epoch))
        for r, n in enumerate((30, 25)):
            kept = np.flatnonzero(mask[r])
            assert len(kept) == int(np.ceil(c * n - 1e-6)), (epoch, r)
            assert not mask[r, n:].any()  # padding never becomes valid
            easiest = np.argsort(scores[r, 0, :n], kind="stable")[: len(kept)]
            np.testing.assert_array_equal(np.sort(easiest), kept)
    assert np.asarray(pacer.pool(_pool(valid), 0, 4, None)["valid"]).sum() == 55  # c = 1


def test_joint_pools_rank_every_task_together():
    scores = np.arange(12, dtype=np.float32).reshape(1, 3, 4)[:, ::-1].copy()  # last task easiest
    pacer = Pacer(_config(c0=0.25, pacing="step"), scores, "all", apply_fn=None)
    mask = np.asarray(pacer.pool(_pool(np.ones((1, 12), bool)), 2, 0, None)["valid"])
    np.testing.assert_array_equal(np.flatnonzero(mask[0]), [8, 9, 10])  # 3 of 12: task 2


def test_self_paced_keeps_the_rows_the_model_finds_easiest():
    valid = np.ones((1, 10), bool)
    pool = _pool(valid, features=1)
    # logits (x, -x) with label 0: loss falls as x grows, so the largest x are easiest.
    apply_fn = lambda params, x: jnp.concatenate([x * params, -x * params], -1)
    pacer = Pacer(_config(curriculum="self_paced", c0=0.3), None, "task", apply_fn)
    mask = np.asarray(pacer.pool(pool, 0, 0, jnp.ones((1,)))["valid"])[0]
    largest = np.argsort(-np.asarray(pool["x"])[0, :, 0])[:3]
    np.testing.assert_array_equal(np.flatnonzero(mask), np.sort(largest))


def test_linear_self_paced_weights_the_rows_it_keeps():
    valid = np.ones((1, 10), bool)
    pool = _pool(valid, features=1)
    apply_fn = lambda params, x: jnp.concatenate([x * params, -x * params], -1)
    hard = Pacer(_config(curriculum="self_paced", c0=0.3), None, "task", apply_fn)
    soft = Pacer(_config(curriculum="self_paced", c0=0.3, self_paced_weights="linear"), None,
                 "task", apply_fn)
    params = jnp.ones((1,))
    kept = hard.pool(pool, 0, 0, params)
    weighed = soft.pool(pool, 0, 0, params)
    assert "weight" not in kept  # hard weights are the mask: the engine's program unchanged
    np.testing.assert_array_equal(weighed["valid"], kept["valid"])
    weight = np.asarray(weighed["weight"])[0]
    losses = np.asarray(row_scores.example_losses(apply_fn, params, pool["x"][0], pool["y"][0],
                                                  pool["logit_mask"][0]))
    cut = np.min(losses[~np.asarray(kept["valid"])[0]])
    np.testing.assert_allclose(weight, np.where(kept["valid"][0], 1 - losses / cut, 0),
                               rtol=1e-5, atol=1e-6)


def test_self_paced_weights_refused_where_they_mean_nothing():
    with pytest.raises(ValueError, match="unknown config.self_paced_weights 'soft'"):
        Pacer(_config(curriculum="self_paced", self_paced_weights="soft"), None, "task", None)
    with pytest.raises(ValueError, match="needs config.curriculum='self_paced', not 'length'"):
        Pacer(_config(self_paced_weights="linear"), np.zeros((1, 1, 4)), "task", None)


def test_example_losses_match_a_direct_cross_entropy():
    x = jnp.asarray(np.random.default_rng(2).normal(size=(7, 3)), jnp.float32)
    y = jnp.asarray([0, 1, 2, 0, 1, 2, 0])
    mask = jnp.ones((7, 3), bool).at[:, 2].set(jnp.asarray([0, 0, 1, 1, 1, 1, 1], bool))
    losses = row_scores.example_losses(lambda p, a: a * p, 1.0, x, y, mask, chunk=4)
    logits = jnp.where(mask, x, -1e9)
    want = -jax.nn.log_softmax(logits)[jnp.arange(7), y]
    np.testing.assert_allclose(losses, want, rtol=1e-5)


def test_text_difficulties():
    texts = ["good", "bad film", "a truly great film", "awful, awful acting"] * 3
    labels = np.array([2, 0, 2, 0] * 3)
    lengths = difficulty.text_difficulty("length", texts, labels)
    np.testing.assert_array_equal(lengths[:4], [1, 2, 4, 4])
    teacher = difficulty.text_difficulty("teacher_loss", texts, labels)
    assert teacher.shape == (12,) and np.all(np.isfinite(teacher)) and np.all(teacher > 0)
    with pytest.raises(ValueError, match="unknown text difficulty 'self_paced'"):
        difficulty.text_difficulty("self_paced", texts, labels)


def test_from_config_off_unknown_and_non_text():
    assert Pacer.from_config(_config(curriculum=""), [0], 4, "task", None) is None
    assert Pacer.from_config(ml_collections.ConfigDict({}), [0], 4, "task", None) is None
    with pytest.raises(ValueError, match="unknown config.curriculum 'easy'"):
        Pacer.from_config(_config(curriculum="easy"), [0], 4, "task", None)
    with pytest.raises(ValueError, match="dataset 'split_digits' has none"):
        Pacer.from_config(_config(dataset="split_digits"), [0], 4, "task", None)


def _digits_results(config, workdir) -> np.ndarray:
    results = train.train_and_evaluate(config, str(workdir))
    return np.asarray(results["class_il"]["runs"][0]["accuracy_matrix"])


def test_off_and_full_competence_leave_training_unchanged(digits_config, tmp_path):
    digits_config.num_tasks, digits_config.num_epochs = 2, 2
    plain = _digits_results(digits_config, tmp_path / "plain")
    digits_config.curriculum, digits_config.c0 = "", 0.1
    off = _digits_results(digits_config, tmp_path / "off")
    digits_config.curriculum, digits_config.c0 = "self_paced", 1.0
    full = _digits_results(digits_config, tmp_path / "full")
    digits_config.self_paced_weights = "linear"  # every weight 1 at full competence
    full_linear = _digits_results(digits_config, tmp_path / "full_linear")
    np.testing.assert_array_equal(off, plain)
    np.testing.assert_array_equal(full, plain)
    np.testing.assert_array_equal(full_linear, plain)


@pytest.mark.slow
def test_a_partial_curriculum_changes_training(digits_config, tmp_path):
    digits_config.num_tasks, digits_config.num_epochs = 2, 2
    plain = _digits_results(digits_config, tmp_path / "plain")
    digits_config.curriculum, digits_config.c0, digits_config.curriculum_epochs = (
        "self_paced", 0.05, 2)
    paced = _digits_results(digits_config, tmp_path / "paced")
    assert not np.array_equal(paced, plain)


def test_balanced_masks_take_the_fraction_within_each_class():
    scores = np.arange(12, dtype=np.float32)[None, None]  # class 0 holds the 8 easiest rows
    labels = np.array([[0] * 8 + [1] * 4])
    pool = {**_pool(np.ones((1, 12), bool)), "y": jnp.asarray(labels)}
    pacer = Pacer(_config(c0=0.25, pacing="step", curriculum_balanced=True), scores, "task",
                     apply_fn=None)
    mask = np.asarray(pacer.pool(pool, 0, 0, None)["valid"])[0]
    np.testing.assert_array_equal(np.flatnonzero(mask), [0, 1, 8])  # 2 of 8, 1 of 4
    plain = Pacer(_config(c0=0.25, pacing="step"), scores, "task", apply_fn=None)
    np.testing.assert_array_equal(
        np.flatnonzero(np.asarray(plain.pool(pool, 0, 0, None)["valid"])[0]), [0, 1, 2])


def _threshold_config(**fields) -> ml_collections.ConfigDict:
    base = {"pacing": "threshold", "stage_thresholds": "0.5", "num_stages": 2, "c0": 0.2,
            "validation_fraction": 0.1}
    return _config(**{**base, **fields})


def test_threshold_stages_advance_on_validation_accuracy_per_run():
    """Fake model: every row's label is 0 and params p > 0 predict 0, so accuracy is 1 or 0."""
    valid = np.ones((2, 40), bool)
    valid[1, 30:] = False  # run 1: 30 real rows
    scores = np.random.default_rng(3).normal(size=(2, 1, 40)).astype(np.float32)
    apply_fn = lambda p, x: jnp.concatenate([jnp.full(x.shape[:1] + (1,), p), jnp.zeros(
        x.shape[:1] + (1,))], -1)
    pacer = Pacer(_threshold_config(), scores, "task", apply_fn, seeds=[0, 1])
    params = [[-1, 1], [-1, 1], [1, 1], [-1, 1], [1, 1], [1, 1]]  # per epoch, per run
    want_stage = [[0, 0], [0, 1], [1, 2], [1, 2], [2, 2], [2, 2]]
    for epoch, (p, stage) in enumerate(zip(params, want_stage, strict=True)):
        mask = np.asarray(pacer.pool(_pool(valid), 0, epoch, jnp.asarray(p, jnp.float32))["valid"])
        logged = pacer.metrics()
        np.testing.assert_array_equal(logged["curriculum_stage"], stage, err_msg=f"epoch {epoch}")
        np.testing.assert_array_equal(logged["val_accuracy"], np.asarray(p) > 0)
        held = np.asarray(pacer.stages.held_out(_pool(valid), 0))
        assert held.sum(1).tolist() == [4, 3]  # ceil(10%) of 40 and of 30 rows
        assert not (mask & held).any()  # validation rows are never trained on
        for r, n in enumerate((40, 30)):
            competence = 0.2 + 0.8 * stage[r] / 2
            assert mask[r].sum() == int(np.ceil(competence * (n - held[r].sum()) - 1e-6))
            np.testing.assert_allclose(logged["competence"][r], competence, rtol=1e-6)
    # epochs trained at the current stage before the last check: run 0 epoch 4, run 1 epochs 2-4
    assert pacer.state() == {"stage": [2, 2], "epochs_in_stage": [1, 3]}
    # a new task starts at stage 0 again
    pacer.pool(_pool(valid), 1, 0, jnp.ones(2))
    assert pacer.metrics()["curriculum_stage"].tolist() == [0, 0]


def test_threshold_cap_gives_full_competence_and_state_round_trips():
    valid = np.ones((1, 20), bool)
    never = lambda p, x: jnp.zeros(x.shape[:1] + (2,)).at[:, 1].set(1.0)  # always wrong
    config = _threshold_config(curriculum_epochs=3, stage_thresholds="0.9,0.95")
    pacer = Pacer(config, np.zeros((1, 1, 20), np.float32), "task", never)
    counts = [int(np.asarray(pacer.pool(_pool(valid), 0, e, None)["valid"]).sum())
              for e in range(5)]
    assert counts == [4, 4, 4, 18, 18]  # c0=0.2 of 18 training rows until the cap at epoch 3
    resumed = Pacer(config, np.zeros((1, 1, 20), np.float32), "task", never)
    resumed.restore(pacer.state())
    assert resumed.state() == pacer.state()


def test_what_a_method_takes_at_the_end_of_a_task_leaves_the_validation_rows_out():
    """end_task used to get the whole pool: a replay buffer or a Fisher could take the
    held-out rows that threshold pacing promises are never trained on."""
    valid = np.ones((2, 40), bool)
    valid[1, 30:] = False
    config = _threshold_config()
    pacer = Pacer(config, np.zeros((2, 1, 40), np.float32), "task",
                  lambda p, x: jnp.zeros(x.shape[:1] + (2,)), seeds=[0, 1])
    kept = np.asarray(pacer.without_held_out(_pool(valid), 0)["valid"])
    held = np.asarray(pacer.stages.held_out(_pool(valid), 0))
    assert held.any() and not (kept & held).any()
    np.testing.assert_array_equal(kept | held, valid)
    plain = Pacer(_config(), np.zeros((2, 1, 40), np.float32), "task", None)
    assert plain.without_held_out(pool := _pool(valid), 0) is pool


def test_threshold_config_errors_are_one_line():
    with pytest.raises(ValueError, match="unknown config.pacing 'thresh'; choose from .*threshold"):
        Pacer(_config(pacing="thresh"), None, "task", None)
    with pytest.raises(ValueError, match=r"validation_fraction must be in \(0, 1\), got 1.5"):
        Pacer(_threshold_config(validation_fraction=1.5), None, "task", None)
    with pytest.raises(ValueError, match="max_epochs_per_stage must be >= 0"):
        Pacer(_threshold_config(max_epochs_per_stage=-1), None, "task", None)
    with pytest.raises(ValueError, match="has 3 values for config.num_stages=2"):
        Pacer(_threshold_config(stage_thresholds="0.1,0.2,0.3"), None, "task", None)


def _threshold_digits(config):
    config.num_tasks, config.num_epochs, config.num_seeds = 2, 4, 2
    config.update(curriculum="self_paced", curriculum_balanced=True, pacing="threshold",
                  stage_thresholds="0.3,0.5", c0=0.2, curriculum_epochs=4)
    return config


def _stages(workdir) -> list[tuple]:
    with open(workdir / "metrics.jsonl") as f:
        rows = [json.loads(line) for line in f]
    return [(r["task"], r["epoch"], r["run"], r["curriculum_stage"], r["val_accuracy"])
            for r in rows]


@pytest.mark.slow
def test_threshold_run_resumes_to_the_same_stages_and_figures(digits_config, tmp_path,
                                                             crash_and_resume):
    config = _threshold_digits(digits_config)
    whole = train.train_and_evaluate(config, str(tmp_path / "whole"))
    stages = _stages(tmp_path / "whole")
    assert {s for *_, s, _ in stages} == {0, 1, 2}  # the runs did advance
    assert any(a[3] != b[3] for a, b in zip(stages[::2], stages[1::2], strict=True))  # per seed
    # The crash comes after task 0's epoch 2, when stages are past 0.
    resumed = crash_and_resume(config, str(tmp_path / "resumed"))
    assert _stages(tmp_path / "resumed") == stages
    np.testing.assert_array_equal(whole["class_il"]["accuracy_matrix"],
                                  resumed["class_il"]["accuracy_matrix"])
    for a, b in zip(whole["class_il"]["runs"], resumed["class_il"]["runs"], strict=True):
        assert a["accuracy_matrix"] == b["accuracy_matrix"]


@pytest.mark.slow
def test_runlocal_threshold_run_from_the_command_line(tmp_path):
    root = pathlib.Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-m", "scripts.run",
         "--config=research/configs/sentiment_curriculum.py:runlocal",
         "--config.curriculum=length", "--config.pacing=threshold",
         "--config.stage_thresholds=0.35,0.4", f"--workdir={tmp_path}"],
        cwd=root, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert 0.0 <= results["domain_il"]["ACC"] <= 1.0 and results["num_compiles"] == 6
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 3 * 4  # 3 seeds x 4 epochs of the one joint stage
    for run in range(3):
        mine = sorted((r for r in rows if r["run"] == run), key=lambda r: r["epoch"])
        stages = [r["curriculum_stage"] for r in mine]
        assert stages[0] == 0 and stages == sorted(stages)
        for r in mine:
            cap = 1.0 if r["epoch"] >= 2 else 0.1 + 0.9 * r["curriculum_stage"] / 2
            assert r["competence"] == pytest.approx(cap) and 0 <= r["val_accuracy"] <= 1


def test_compare_takes_threshold_rows_and_reads_their_stages(tmp_path):
    from research.curriculum import report as curriculum_report

    assert curriculum_report.settings(["length"], ["root", "threshold"]) == [
        ("", ""), ("length", "root"), ("length", "threshold")]
    with pytest.raises(ValueError, match="unknown pacing 'cosine'; choose from .*'threshold'"):
        curriculum_report.settings(["length"], ["cosine"])
    rows = [{"task": 0, "epoch": e, "run": r, "curriculum_stage": float(s)}
            for e, stages in enumerate([(0, 0), (1, 0), (2, 1)]) for r, s in enumerate(stages)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[::-1]))
    assert curriculum_report.stage_history(str(tmp_path)) == [[0, 1, 2], [0, 0, 1]]


@pytest.mark.skipif(not sentiment.is_cached(), reason="needs the sentiment corpus")
def test_compare_rerun_resumes_and_refuses_another_config(tmp_path):
    """Rerunning scripts.curriculum_compare keeps the runs it finished (it used to clear
    every run's workdir and train it again); another config is refused unless --overwrite."""
    root = pathlib.Path(__file__).resolve().parents[1]
    cmd = [sys.executable, "-m", "scripts.curriculum_compare",
           "--config=research/configs/sentiment_curriculum.py:runlocal",
           "--config.num_seeds=1", "--curricula=length", "--pacings=linear", "--budgets=1",
           f"--output={tmp_path}"]
    cache = tmp_path.parent / f"{tmp_path.name}_xla_cache"  # the user's choice of cache
    # with JAX's own threshold too: at its default (1 s) a quiet machine's compiles of
    # this small config are too quick to be kept, and the cache stays empty
    environ = {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(cache),
               "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    run = lambda *extra: subprocess.run([*cmd, *extra], cwd=root, capture_output=True,
                                        text=True, timeout=600, env=environ)
    first = run()
    assert first.returncode == 0, first.stderr[-2000:]
    assert list(cache.iterdir()) and not (tmp_path / "xla_cache").exists()
    marker = tmp_path / "length_linear_e1" / "kept"
    marker.write_text("")
    # The table is replaced by a rename, never rewritten in place: a link to another
    # file (standing in for a half-written table) is replaced, its target untouched.
    elsewhere = tmp_path.parent / f"{tmp_path.name}_elsewhere.md"
    elsewhere.write_text("not the table")
    (tmp_path / "curriculum.md").unlink()
    (tmp_path / "curriculum.md").symlink_to(elsewhere)
    again = run()
    assert again.returncode == 0, again.stderr[-2000:]
    assert marker.exists() and again.stdout == first.stdout
    assert elsewhere.read_text() == "not the table"
    assert not (tmp_path / "curriculum.md").is_symlink()
    assert "curriculum runs: 100%" in first.stderr  # minutes of runs show their progress
    other = run("--config.c0=0.3")
    assert other.returncode == 2, other.stderr[-2000:]
    last = other.stderr.strip().splitlines()[-1]
    assert "holds a run of a different config" in last and "--overwrite" in last, last
    assert "use another --output" in last, last  # the script's flag: it has no --workdir


@pytest.mark.parametrize("values", [["1", "two"], ["2", "1"], ["0", "1"], [], ["1.5"]])
def test_budgets_that_are_not_ascending_positive_integers_name_the_flag(values):
    from research.curriculum import report as curriculum_report

    with pytest.raises(ValueError, match=r"^--budgets must be ascending positive integers, got "):
        curriculum_report.parse_budgets(values)
    assert curriculum_report.parse_budgets(["1", "2", "20"]) == [1, 2, 20]
