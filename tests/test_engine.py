import json
import math
import os
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from research import compiled, engine, train, workdirs
from research.data.digits import split_digits


def _run(config, workdir):
    return train.train_and_evaluate(config, str(workdir))


def test_results_json_schema(digits_config, tmp_path):
    digits_config.plots = True
    results = _run(digits_config, tmp_path)
    on_disk = json.loads((tmp_path / "results.json").read_text())
    for key in ("config", "class_il", "task_il", "train_seconds", "compile_seconds",
                "num_compiles", "steps", "state_bytes", "peak_memory_bytes"):
        assert key in on_disk
    assert (on_disk["num_devices"], on_disk["num_processes"]) == (1, 1)
    for key in ("class_il", "task_il"):
        for figure in ("accuracy_matrix", "ACC", "BWT", "FWT", "forgetting"):
            assert figure in on_disk[key]
        assert np.asarray(on_disk[key]["accuracy_matrix"]).shape == (5, 5)
    largest_task = int(split_digits(seed=0).n_train.max())
    assert results["steps"] == 5 * 2 * math.ceil(largest_task / digits_config.batch_size)
    for name in ("metrics.jsonl", "results.md", "accuracy_matrix_class_il.png",
                 "accuracy_curves_task_il.png"):
        assert (tmp_path / name).stat().st_size > 0
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 5 * 2 and {"task", "epoch", "loss", "seed"} <= set(rows[0])


def test_compiles_and_state_do_not_grow_with_tasks(digits_config, tmp_path):
    digits_config.algorithm = "er"  # its replay buffer is the state that could grow
    counts, sizes = [], []
    for num_tasks in (2, 5):
        digits_config.num_tasks = num_tasks
        results = _run(digits_config, tmp_path / str(num_tasks))
        counts.append(results["num_compiles"])
        sizes.append(results["state_bytes"])
    # init_params, init_state, reset_optimizer, epochs, end_task, evaluate
    assert counts[0] == counts[1] == 6
    assert sizes[0] == sizes[1] > 0


def test_methods_on_one_model_share_parameter_init_and_evaluation(digits_config):
    compiled.forget_compiled()
    runs = {}
    for name in ("naive", "ewc", "icarl"):
        digits_config.algorithm = name
        run = train.build_run(digits_config)
        run.eng.evaluate(run.state, run.test, run.task_classes, run.hp)
        runs[name] = run
    naive, ewc, icarl = (runs[n].eng for n in ("naive", "ewc", "icarl"))

    def executable(fn):
        return fn.executables()[0]

    assert executable(ewc.init_params) is executable(naive.init_params)
    assert executable(icarl.init_params) is executable(naive.init_params)
    chex.assert_trees_all_equal(runs["ewc"].state.params, runs["naive"].state.params)
    assert executable(ewc.evaluate_program) is executable(naive.evaluate_program)
    # iCaRL classifies by nearest class mean, from its state: a program of its own.
    assert executable(icarl.evaluate_program) is not executable(naive.evaluate_program)
    assert executable(ewc.init_state) is not executable(naive.init_state)
    compiled.forget_compiled()
    digits_config.algorithm = "naive"
    again = train.build_run(digits_config).eng
    assert executable(again.init_params) is not executable(naive.init_params)


def test_run_programs_compile_in_the_background_and_are_the_ones_called(digits_config):
    compiled.forget_compiled()
    run = train.build_run(digits_config)
    eng = run.eng
    started = {f.name: next(iter(f._cache.values()))
               for f in (eng.reset_optimizer, eng.epochs, eng.end_task, eng.evaluate_program)}
    pool = jax.tree_util.tree_map(jnp.asarray, run.data.train_pool(0))
    state = eng.reset_optimizer(run.state, run.hp)
    state, _ = eng.epochs(state, pool, run.hp)
    state = eng.end_task(state, pool, run.hp)
    eng.evaluate(state, run.test, run.task_classes, run.hp)
    for f in (eng.reset_optimizer, eng.epochs, eng.end_task, eng.evaluate_program):
        assert f.num_compiles == 1
        assert next(iter(f._cache.values())) is started[f.name]


def test_a_background_compile_error_surfaces_at_the_call():
    bad = compiled.Compiled(lambda x: jnp.reshape(x, (7,)), "bad")
    bad.precompile(jnp.ones(3))
    with pytest.raises(TypeError, match="reshape"):
        bad(jnp.ones(3))


def test_a_compile_error_at_the_call_surfaces_again_on_the_next_call():
    """A program that failed to compile at its call once left a pending entry in the
    function's cache: the next call with the same shapes waited on it forever."""
    import threading

    bad = compiled.Compiled(lambda x: jnp.reshape(x, (7,)), "bad")
    errors = []

    def call():
        try:
            bad(jnp.ones(3))
        except TypeError as err:
            errors.append(err)

    for _ in range(2):
        caller = threading.Thread(target=call, daemon=True)
        caller.start()
        caller.join(timeout=30)
        assert not caller.is_alive(), "the call hung on the failed compile"
    assert len(errors) == 2 and bad.num_compiles == 0


def test_a_shared_program_reads_its_own_arguments():
    """Two functions equal but for which hyper-parameter they read: l2 run after the other
    quadratic methods in one process once got another method's strength from the program
    cache (task-IL ACC 0.56, not 0.996)."""
    hp = {"a": jnp.float32(2.0), "b": jnp.float32(3.0)}
    x = jnp.ones(3)
    by_a = compiled.Compiled(lambda x, hp: x * hp["a"], "by_a")
    by_b = compiled.Compiled(lambda x, hp: x * hp["b"], "by_b")
    np.testing.assert_array_equal(by_a(x, hp), 2 * x)
    np.testing.assert_array_equal(by_b(x, hp), 3 * x)


def test_a_comparison_matches_its_methods_run_one_by_one(digits_config, tmp_path):
    from research import compare

    summary = compare.compare(digits_config, ["naive", "ewc"], str(tmp_path / "both"))
    for name in ("naive", "ewc"):
        digits_config.algorithm = name
        alone = _run(digits_config, tmp_path / name)
        assert summary["methods"][name]["class_il"]["accuracy_matrix"] == (
            alone["class_il"]["accuracy_matrix"])
    assert (tmp_path / "both" / "comparison.md").read_text().startswith(
        "mean ± std over 1 seed(s)\n")


def test_a_comparison_table_says_when_its_spread_spans_a_sweep():
    from research import compare

    row = {"algorithm": "ewc", "scenario": "class_il", "train_seconds": 1.0,
           **{m: 0.5 for m in compare.METRICS}, **{f"{m}_std": 0.1 for m in compare.METRICS}}
    assert compare.comparison_markdown([row], 3, 6).startswith(
        "mean ± std over 6 runs (3 seed(s) x 2 sweep values)\n")


def test_task_scenario_reports_task_il_only(digits_config, tmp_path):
    digits_config.scenario = "task"
    results = _run(digits_config, tmp_path)
    assert "task_il" in results and "class_il" not in results
    assert results["task_il"]["ACC"] > 0.8  # multi-head training barely forgets


def test_domain_scenario(digits_config, tmp_path):
    from research.configs import permuted_digits

    config = permuted_digits.get_config()
    config.update(num_tasks=3, num_epochs=2, hidden=(64,), progress=False)
    results = _run(config, tmp_path)
    assert set(results) & {"class_il", "task_il", "domain_il"} == {"domain_il"}
    assert np.asarray(results["domain_il"]["accuracy_matrix"]).shape == (3, 3)


def test_same_seed_same_numbers(digits_config, tmp_path):
    a = _run(digits_config, tmp_path / "a")
    b = _run(digits_config, tmp_path / "b")
    assert a["class_il"]["accuracy_matrix"] == b["class_il"]["accuracy_matrix"]
    assert a["final_loss"] == b["final_loss"]


def test_vmapped_seed_matches_single_run(digits_config, tmp_path):
    digits_config.num_seeds = 3
    many = _run(digits_config, tmp_path / "many")
    digits_config.num_seeds, digits_config.seed = 1, 2
    single = _run(digits_config, tmp_path / "single")
    vmapped = many["class_il"]["runs"][2]
    assert vmapped["seed"] == 2
    np.testing.assert_allclose(vmapped["accuracy_matrix"],
                               single["class_il"]["runs"][0]["accuracy_matrix"], atol=0.01)
    seeds = [run["seed"] for run in many["class_il"]["runs"]]
    assert seeds == [0, 1, 2]
    assert many["class_il"]["summary"]["ACC"]["std"] >= 0


def test_workdir_of_other_config_is_refused(digits_config, tmp_path):
    _run(digits_config, tmp_path)
    digits_config.learning_rate = 0.01
    with pytest.raises(workdirs.WorkdirError, match="learning_rate"):
        _run(digits_config, tmp_path)
    train.train_and_evaluate(digits_config, str(tmp_path), overwrite=True)


def test_a_start_that_failed_before_its_run_does_not_hold_the_workdir(tmp_path):
    workdirs.prepare(str(tmp_path), {"learning_rate": 0.1}, overwrite=False)
    (tmp_path / "xla_cache").mkdir()  # its build failed here: no checkpoint, no report
    (tmp_path / ".tmp-config.jsonk2x9f").write_text("{")  # a start killed in its write
    workdirs.prepare(str(tmp_path), {"learning_rate": 0.01}, overwrite=False)
    assert json.loads((tmp_path / "config.json").read_text()) == {"learning_rate": 0.01}


def test_rerun_of_finished_run_resumes_without_training(digits_config, tmp_path):
    first = _run(digits_config, tmp_path)
    mtime = os.path.getmtime(tmp_path / "checkpoints")
    again = _run(digits_config, tmp_path)
    assert again["class_il"]["accuracy_matrix"] == first["class_il"]["accuracy_matrix"]
    assert again["train_seconds"] == pytest.approx(first["train_seconds"], abs=0.5)
    assert os.path.getmtime(tmp_path / "checkpoints") == mtime


def test_tensorboard_events(digits_config, tmp_path):
    pytest.importorskip("tensorboard")
    digits_config.tensorboard = True
    _run(digits_config, tmp_path)
    files = list((tmp_path / "tensorboard").rglob("events.out.tfevents*"))
    size = files[0].stat().st_size
    assert len(files) == 1 and size > 100
    _run(digits_config, tmp_path)  # a rerun rewrites the history, not a second copy of it
    again = list((tmp_path / "tensorboard").rglob("events.out.tfevents*"))
    assert len(again) == 1 and again[0].stat().st_size == size


def test_what_leaves_the_numbers_alone_does_not_define_the_run(digits_config, tmp_path):
    first = _run(digits_config, tmp_path)
    digits_config.hp.ewc_lambda = 1.0  # naive does not read it
    digits_config.progress, digits_config.plots = True, False  # operational
    digits_config.keep_checkpoints += 1
    again = _run(digits_config, tmp_path)
    assert again["class_il"]["accuracy_matrix"] == first["class_il"]["accuracy_matrix"]


def test_workdir_written_before_a_field_existed_still_resumes(digits_config, tmp_path):
    first = _run(digits_config, tmp_path)
    stored = json.loads((tmp_path / "config.json").read_text())
    del stored["stream_chunk_steps"]  # as written before the field existed
    (tmp_path / "config.json").write_text(json.dumps(stored))
    assert _run(digits_config, tmp_path)["class_il"] == first["class_il"]
    digits_config.stream_chunk_steps = 4  # a value that changes the run is still refused
    with pytest.raises(workdirs.WorkdirError, match="stream_chunk_steps"):
        _run(digits_config, tmp_path)


def test_cpu_compile_options_leave_the_numbers_bit_identical(digits_config):
    """The engine compiles with its own XLA options on CPU (optimisation level 1, copy
    insertion by region analysis); an epoch must come out exactly as a default compile
    of the same function computes it."""
    digits_config.algorithm = "si"  # a penalty and a path integral on top of the step
    run = train.build_run(digits_config)
    pool = jax.tree_util.tree_map(jnp.asarray, run.data.train_pool(0))
    copy = lambda tree: jax.tree_util.tree_map(jnp.copy, tree)
    default_level = jax.jit(run.eng.epochs._fn).lower(run.state, pool, run.hp).compile()
    expected = default_level(copy(run.state), pool, run.hp)
    chex.assert_trees_all_equal(run.eng.epochs(copy(run.state), pool, run.hp), expected)


def test_an_epoch_gathered_ahead_trains_as_one_gathered_step_by_step(digits_config,
                                                                     monkeypatch):
    """A small pool's epoch gathers every batch before its steps, a large one's in each
    step (engine.EPOCH_GATHER_BYTES): the same rows, so the same numbers to the bit."""
    digits_config.algorithm = "er"  # draws from its buffer with the step's key
    run = train.build_run(digits_config)
    pool = jax.tree_util.tree_map(jnp.asarray, run.data.train_pool(0))
    # A new function each time, so that jit traces it again instead of reusing a trace.
    epochs = lambda: jax.jit(lambda *args: run.eng.epochs._fn(*args))(
        *jax.tree_util.tree_map(jnp.copy, (run.state, pool, run.hp)))
    ahead = epochs()
    monkeypatch.setattr(engine, "EPOCH_GATHER_BYTES", 0)
    step_by_step = epochs()
    chex.assert_trees_all_equal(ahead, step_by_step)


def _copies_in_loops(hlo: str) -> list[str]:
    """The shapes of the copies inside while-loop bodies of a compiled program's text."""
    bodies = set(re.findall(r"body=%([\w.\-]+)", hlo))
    copies, current = [], None
    for line in hlo.splitlines():
        header = re.match(r"%([\w.\-]+) \(", line)
        if header:
            current = header.group(1)
        elif current in bodies and " copy(" in line:
            copies.append(line.split(" = ", 1)[1].split(" copy(")[0].split("{")[0])
    return copies


@pytest.mark.parametrize("algorithm", ["naive", "ewc", "si", "lwf", "er"])
def test_a_block_of_epochs_updates_the_weights_in_place(digits_config, algorithm):
    """Several epochs per call run as one loop over their steps: XLA then writes each
    step's new weights over the old ones. (Nested in a loop over epochs, it copied
    every updated weight matrix in every step, a tenth of the MLP step on the CPU; SI's
    hook, reading old and new weights, made it copy them until the engine handed it
    the new ones recomputed apart.)"""
    digits_config.update(algorithm=algorithm, num_epochs=4, checkpoint_every_epochs=2,
                         hidden=(64, 64))
    run = train.build_run(digits_config)
    assert run.eng.epochs_per_call == 2
    pool = jax.tree_util.tree_map(jnp.asarray, run.data.train_pool(0))
    run.eng.epochs(run.state, pool, run.hp)
    weights = {f"f32[{','.join(map(str, shape))}]"
               for leaf in jax.tree_util.tree_leaves(run.state.params)
               for shape in (leaf.shape, leaf.shape[1:])}
    copied = _copies_in_loops(run.eng.epochs.executables()[0].as_text())
    assert not weights & set(copied), copied


@pytest.mark.parametrize("epochs,every,block", [(20, 10, 10), (25, 10, 5), (3, 100, 3),
                                                (4, 1, 1)])
def test_epochs_per_call_spans_the_epochs_between_checkpoints(digits_config, epochs, every,
                                                              block):
    digits_config.update(num_epochs=epochs, checkpoint_every_epochs=every)
    assert train.epochs_per_call(digits_config) == block
    digits_config.curriculum = "self_paced"  # picks each epoch's rows on the host
    assert train.epochs_per_call(digits_config) == 1


def _rows(workdir) -> list[dict]:
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def test_blocks_of_epochs_train_as_the_epochs_one_by_one(digits_config, tmp_path,
                                                         crash_and_resume):
    """Two epochs per call (checkpoints every second epoch), an EWC penalty live, and a
    crash at the third checkpoint: the run's rows and accuracies are those of one
    epoch per call."""
    digits_config.update(algorithm="ewc", num_tasks=3, num_epochs=4)
    one = _run(digits_config, tmp_path / "one")
    digits_config.checkpoint_every_epochs = 2
    blocks = crash_and_resume(digits_config, str(tmp_path / "blocks"))
    assert blocks["num_compiles"] == one["num_compiles"]
    np.testing.assert_allclose(blocks["class_il"]["accuracy_matrix"],
                               one["class_il"]["accuracy_matrix"], atol=1e-6)
    rows_one, rows_blocks = _rows(tmp_path / "one"), _rows(tmp_path / "blocks")
    assert [(r["task"], r["epoch"]) for r in rows_blocks] == [
        (r["task"], r["epoch"]) for r in rows_one] and len(rows_one) == 3 * 4
    for key in ("loss", "task_loss", "penalty"):
        np.testing.assert_allclose([r[key] for r in rows_blocks], [r[key] for r in rows_one],
                                   rtol=1e-5, atol=1e-7)


def test_task_il_prediction_stays_in_the_task_when_its_classes_score_the_floor():
    """iCaRL scores classes it has no mean for yet at -1e9, the value the training masks
    use: a later task's test rows must still be predicted as one of that task's classes."""
    scores = jnp.asarray([[-0.3, -0.5, -1e9, -1e9]])
    predicted = engine.task_il_argmax(scores, jnp.asarray([[False, False, True, True]]))
    assert int(predicted[0]) in (2, 3)
