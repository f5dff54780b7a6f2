"""Bad input: one clear line, exit status 2, never a traceback; config parsers never crash."""

import os
import subprocess
import sys

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import algorithms
from research import config_check
from research.configs import split_digits
from research.data import load
from tests.reliability import helpers

CLI_CASES = [
    ("--config.algorithm=nope", "unknown algorithm 'nope'; choices:"),
    ("--config.dataset=nope", "unknown dataset 'nope'; choices:"),
    ("--config.no_such_field=1", "unknown config field 'no_such_field'"),
    ("--config.num_epochs=abc", "--config.num_epochs=abc"),
    ("--config.class_order=1,2,3", "must be a permutation of 0..9"),
    ("--config.hp.ewc_lambda=-1.0", "must not be negative"),
    ("--config.scenario=domain", "does not fit dataset"),
    ("--config.dataset=tfds", "config.tfds_name is required with dataset='tfds'"),
]


def test_cli_errors_are_one_line_exit_2(tmp_path):
    for arg, message in CLI_CASES:
        proc = helpers.run(helpers.run_cmd(tmp_path / "w", arg))
        assert proc.returncode == 2, (arg, proc.stderr[-500:])
        assert "Traceback" not in proc.stderr
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith("error: ") and message in last, (arg, last)


@pytest.mark.parametrize("script, args, line", [
    ("run", ["--config.hidden=abc"], "config.hidden must be positive integers, got ('abc',)"),
    ("run", ["--config.hidden=0"], "config.hidden must be positive integers, got (0,)"),
    ("run", ["--config.hidden=-5"], "config.hidden must be positive integers, got (-5,)"),
    ("run", ["--config.model=cnn", "--config.channels=abc"],
     "config.channels must be positive integers, got ('abc',)"),
    ("run", ["--config.model=cnn", "--config.cnn_hidden=0"],
     "config.cnn_hidden must be a positive integer, got 0"),
    ("multitask", ["--config.hidden=abc"],
     "--config.hidden must be positive integers, got ('abc',)"),
    ("multitask_compare", ["--config.hidden=()"],
     "--config.hidden must be positive integers, got (); the model needs at least one"),
])
def test_layer_widths_that_are_not_positive_integers_are_one_line(tmp_path, script, args, line):
    """'abc', 0 or -5 as a width used to fail inside the model's init: a JAX traceback, a
    ZeroDivisionError or a TypeError, exit 1."""
    config = ["--config=research/configs/split_digits.py"] if script == "run" else []
    proc = helpers.run([sys.executable, "-m", f"scripts.{script}", *config, *args,
                        f"--workdir={tmp_path / 'w'}"])
    assert proc.returncode == 2, proc.stderr[-500:]
    assert proc.stderr.strip().splitlines() == [f"error: {line}"]
    assert not (tmp_path / "w").exists()


CONFIG_FILE_CASES = [  # (file, its text or None for no file, what the one line says)
    ("missing.py", None, "[Errno 2] No such file or directory: '{path}'"),
    ("broken.py", "def get_config(:\n", "invalid syntax at line 1"),
    ("empty.py", "x = 1\n", "the file defines no get_config()"),
]


@pytest.mark.parametrize("name, text, message", CONFIG_FILE_CASES)
def test_config_file_errors_are_one_line_exit_2(tmp_path, name, text, message):
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    proc = helpers.run([sys.executable, "-m", "scripts.run", f"--config={path}",
                        f"--workdir={tmp_path / 'w'}"])
    assert proc.returncode == 2, proc.stderr[-500:]
    assert proc.stderr.strip().splitlines() == [
        f"error: --config={path}: {message.format(path=path)}"]


CONFIG_ARGUMENT_CASES = [  # (--config=FILE:WORD in research/configs, what the one line says)
    ("split_digits.py:runlocal", "get_config() takes 0 positional arguments but 1 was given "
                                 "(the word after ':' is get_config()'s argument)"),
    ("sentiment_finetune.py:runloca", "unknown argument 'runloca' after ':'; choices: runlocal"),
    ("multi_digits.py:local", "unknown argument 'local' after ':'; choices: runlocal"),
    ("sentiment_multitask.py:small", "unknown argument 'small' after ':'; choices: runlocal"),
]


@pytest.mark.parametrize("config, message", CONFIG_ARGUMENT_CASES)
def test_a_word_the_config_refuses_is_one_line_exit_2(tmp_path, config, message):
    """A typo after ':' used to run the full config (the sentiment ones took any word
    for runlocal) or end in ml_collections' traceback."""
    path = f"research/configs/{config}"
    proc = helpers.run([sys.executable, "-m", "scripts.run", f"--config={path}",
                        f"--workdir={tmp_path / 'w'}"])
    assert proc.returncode == 2, proc.stderr[-500:]
    assert proc.stderr.strip().splitlines() == [f"error: --config={path}: {message}"]


def test_another_error_in_get_config_keeps_its_traceback(tmp_path):
    """A bug in the user's own config is shown where it is."""
    path = tmp_path / "buggy.py"
    path.write_text("def get_config():\n    return undefined_name\n")
    proc = helpers.run([sys.executable, "-m", "scripts.run", f"--config={path}",
                        f"--workdir={tmp_path / 'w'}"])
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "NameError" in proc.stderr, proc.stderr[-500:]


def test_scripts_with_a_default_config_give_one_line_with_the_guess(tmp_path):
    """A config flag with a default file parses overrides at import; the default is
    loaded through the same guarded parser instead."""
    proc = helpers.run([sys.executable, "-m", "scripts.multitask", "--config.num_epochs=1",
                        f"--workdir={tmp_path}"])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-500:]
    assert proc.stderr.strip().splitlines() == [
        "error: unknown config field 'num_epochs': --config.num_epochs=1 "
        'Did you mean "epochs" instead of "num_epochs"?']


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_workdir(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    proc = helpers.run(helpers.run_cmd(locked / "run"))
    assert proc.returncode == 2 and "cannot create workdir" in proc.stderr


def test_workdir_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    proc = helpers.run(helpers.run_cmd(tmp_path / "file"))
    assert proc.returncode == 2 and "cannot create workdir" in proc.stderr


_VALUES = st.one_of(st.integers(-5, 50), st.floats(allow_nan=True), st.text(max_size=12),
                    st.booleans())
_FIELDS = ["dataset", "scenario", "model", "optimizer", "algorithm", "num_tasks", "batch_size",
           "num_epochs", "num_seeds", "learning_rate", "class_order", "eval_batch_size"]


@settings(max_examples=150, deadline=None)
@given(field=st.sampled_from(_FIELDS), value=_VALUES)
def test_validate_only_raises_config_error(field, value):
    config = split_digits.get_config()
    try:
        config[field] = value
    except TypeError:  # ml_collections refuses wrong types itself (a flag error at the CLI)
        assume(False)
    try:
        config_check.validate(config)
    except config_check.ConfigError as err:
        assert str(err) and "\n" not in str(err)


def test_domain_streams_take_any_number_of_tasks_and_no_class_order():
    """Permuted and rotated streams hold every class in every task: 20 tasks (GEM's MNIST
    Permutations and Rotations) were refused as 'between 1 and 10', and a class order
    was accepted and ignored."""
    for dataset in ("permuted_digits", "rotated_digits"):
        config = split_digits.get_config()
        config.update(dataset=dataset, scenario="domain", num_tasks=20)
        config_check.validate(config)
        config.class_order = "9,8,7,6,5,4,3,2,1,0"
        with pytest.raises(config_check.ConfigError,
                           match=f"dataset '{dataset}' gives every task every class"):
            config_check.validate(config)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_class_order_parser_total(text):
    """Any text parses or fails with a message about class_order, nothing else."""
    try:
        order = load.parse_class_order(text)
    except ValueError as err:
        assert "class_order" in str(err)
    else:
        assert order is None or all(isinstance(v, int) for v in order)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=30))
def test_sweep_parser_total(text):
    config = split_digits.get_config()
    config.sweep.ewc_lambda = text
    try:
        values = config_check.parse_sweep(config)
    except config_check.ConfigError as err:
        assert "config.sweep.ewc_lambda" in str(err)
    else:
        assert all(isinstance(v, float) for v in values.get("ewc_lambda", []))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0.0, -1.0])
def test_non_finite_or_non_positive_learning_rate(value):
    config = split_digits.get_config()
    config.learning_rate = value
    with pytest.raises(config_check.ConfigError, match="learning_rate"):
        config_check.validate(config)


@pytest.mark.parametrize("flag, environ, line", [
    ("--coordinator_address=127.0.0.1:1", {}, "cannot join the processes: "),
    ("--distributed", {"JAX_NUM_PROCESSES": "two"},
     "environment variable JAX_NUM_PROCESSES='two' is not an integer"),
])
def test_processes_that_cannot_join_say_why_in_one_line(tmp_path, flag, environ, line):
    environ = {**helpers.env(), **environ}
    del environ["JAX_COMPILATION_CACHE_DIR"]  # as a user runs it: the workdir's cache then
    proc = subprocess.run(helpers.run_cmd(tmp_path / "w", flag), cwd=helpers.ROOT, env=environ,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-500:]
    last = proc.stderr.strip().splitlines()
    assert len(last) == 1 and last[0].startswith(f"error: {line}"), proc.stderr[-500:]


@pytest.mark.parametrize("script, args, line", [
    ("compare", ["--config=research/configs/split_digits.py", "--algorithms=",
                 "--workdir={tmp}/w"],
     f"--algorithms: name at least one algorithm; choices: {', '.join(algorithms.available())}"),
    ("compare", ["--config=research/configs/split_digits.py", "--algorithms=naive,ewc,naive",
                 "--workdir={tmp}/w"], "--algorithms: algorithm(s) named more than once: naive"),
    ("compare", ["--config=research/configs/split_digits.py", "--algorithms=naive",
                 "--workdir={tmp}/a_file"], "cannot create workdir '{tmp}/a_file': File exists"),
    ("text_baselines", ["--output={tmp}/a_file/out"],
     "cannot create --output folder '{tmp}/a_file/out': Not a directory"),
    ("text_baselines", ["--output={tmp}/out", "--thresholds=low,high"],
     "--thresholds needs two numbers, got low,high"),
    ("suite", ["--workdir={tmp}/w", "--results={tmp}"],
     "--results '{tmp}' is a directory; give a file name"),
    ("suite", ["--workdir={tmp}/w", "--methods=naive,progressive"],
     "unknown --methods value(s) 'progressive' (not in the suite: progressive networks, "
     "S-Prompts and distillation have their own configs; dynamic expansion runs with "
     "--config.model=expansion); choices: naive, joint, cumulative, "
     "ewc, online_ewc, si, mas, l2, freeze, lwf, er, er_balanced, agem, der, derpp, icarl, "
     "clser, generative_replay"),
    ("embed", ["--input={tmp}/a_file", "--output={tmp}"],
     "--output '{tmp}' is a directory; give a file name"),
    ("finetune", ["--config=research/configs/split_digits.py", "--workdir={tmp}/w"],
     "scripts.finetune fine-tunes a text classifier: config.dataset 'split_digits' is no "
     "text dataset; it takes sentiment or text_file (e.g. "
     "--config=research/configs/sentiment_finetune.py)"),
    ("finetune", ["--config=research/configs/sentiment_finetune.py:runlocal",
                  "--config.finetune=lora", "--config.lora_rank=0", "--workdir={tmp}/w"],
     "config.lora_rank must be an integer >= 1 with finetune='lora' (no LoRA factors: only "
     "the head would train), got 0"),
    ("finetune", ["--config=research/configs/sentiment_finetune.py:runlocal",
                  "--config.finetune=prompt", "--config.num_prompt_tokens=0", "--workdir={tmp}/w"],
     "config.num_prompt_tokens must be an integer >= 1 with finetune='prompt' (no soft "
     "prompt vectors: only the head would train), got 0"),
    ("finetune", ["--config=research/configs/sentiment_finetune.py:runlocal",
                  "--config.finetune=prompt", "--config.prompt_init=words", "--workdir={tmp}/w"],
     "unknown config.prompt_init 'words'; choices: random, vocab"),
    ("curriculum_compare", ["--config=research/configs/split_digits.py", "--budgets=1",
                            "--curricula=length", "--pacings=linear", "--output={tmp}/w"],
     "scripts.curriculum_compare compares curricula on the sentiment domains: config.dataset "
     "must be 'sentiment', got 'split_digits' (its default config is "
     "research/configs/sentiment_curriculum.py)"),
    ("multitask_compare", ["--archs=", "--workdir={tmp}/w"],
     "--archs: name at least one architecture; choices: hard, cross_stitch, mtan, task_bn, "
     "soft"),
    ("multitask_compare", ["--archs=hard,hard", "--workdir={tmp}/w"],
     "--archs: architecture(s) named more than once: hard"),
    ("multitask_compare", ["--weightings=", "--workdir={tmp}/w"],
     "--weightings: name at least one weighting; choices: equal, uw, dwa, gradnorm, pcgrad, "
     "mgda"),
    ("multitask_compare", ["--weightings=uw,dwa,uw", "--workdir={tmp}/w"],
     "--weightings: weighting(s) named more than once: uw"),
    ("fetch_data", ["--cache_dir={tmp}/a_file"], "cannot create --cache_dir '{tmp}/a_file': "
                                                  "File exists"),
    ("fetch_data", ["--cache_dir={tmp}/cache", "--sdist={tmp}/nope.tar.gz"],
     "--sdist file '{tmp}/nope.tar.gz' does not exist"),
    ("fetch_data", ["--cache_dir={tmp}/cache", "--sdist={tmp}/a_file"],
     "--sdist file '{tmp}/a_file' is not a .tar.gz sdist (empty file)"),
])
def test_other_scripts_refuse_bad_input_in_one_line(tmp_path, script, args, line):
    (tmp_path / "a_file").write_text("")
    proc = helpers.run([sys.executable, "-m", f"scripts.{script}",
                        *(a.format(tmp=tmp_path) for a in args)])
    assert proc.returncode == 2, proc.stderr[-500:]
    assert proc.stderr.strip().splitlines() == [f"error: {line.format(tmp=tmp_path)}"]


def test_suite_refuses_a_run_of_another_config_unless_overwrite(tmp_path):
    """The refusal tells the user to pass --overwrite: scripts.suite takes it."""
    foreign = tmp_path / "suite" / "split_digits_class" / "naive"
    (foreign / "checkpoints").mkdir(parents=True)
    (foreign / "config.json").write_text('{"algorithm": "naive", "num_seeds": 5}')
    cmd = [sys.executable, "-m", "scripts.suite", f"--workdir={tmp_path / 'suite'}",
           "--methods=naive", "--num_seeds=1", f"--results={tmp_path / 'results.md'}"]
    proc = helpers.run(cmd)
    assert proc.returncode == 2, proc.stderr[-500:]
    last = proc.stderr.strip().splitlines()[-1]
    assert "holds a run of a different config" in last and "--overwrite" in last, last
    proc = helpers.run([*cmd, "--overwrite"])
    assert proc.returncode == 0, proc.stderr[-500:]
    text = (tmp_path / "results.md").read_text()
    assert "| naive |" in text
    # the command as run (--overwrite changes no figure), not the repository's own
    assert (f"    python -m scripts.suite --workdir={tmp_path / 'suite'} --num_seeds=1 "
            f"--methods=naive --results={tmp_path / 'results.md'}\n") in text


def test_curriculum_compare_refuses_another_config_before_any_run_naming_output(tmp_path):
    """Every run's folder is claimed before the first run trains; the refusal asks for
    another --output (the script's flag), not another --workdir (it has none)."""
    foreign = tmp_path / "out" / "length_linear_e1"
    (foreign / "checkpoints").mkdir(parents=True)
    (foreign / "config.json").write_text('{"algorithm": "joint", "num_seeds": 5}')
    proc = helpers.run([sys.executable, "-m", "scripts.curriculum_compare",
                        "--config=research/configs/sentiment_curriculum.py:runlocal",
                        "--budgets=1", "--curricula=length", "--pacings=linear",
                        f"--output={tmp_path / 'out'}"])
    assert proc.returncode == 2, proc.stderr[-500:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: workdir '{foreign}' holds a run of a different config"), last
    assert last.endswith("; use another --output or pass --overwrite"), last
    assert not (tmp_path / "out" / "random_none_e1" / "results.json").exists()


def test_suite_notes_a_scenario_none_of_its_methods_supports(tmp_path):
    """--methods=icarl ran class- and task-IL, then failed in domain-IL with 'name at
    least one algorithm to compare'."""
    proc = helpers.run([sys.executable, "-m", "scripts.suite", f"--workdir={tmp_path / 'w'}",
                        "--methods=icarl", "--num_seeds=1"])
    assert proc.returncode == 0, proc.stderr[-500:]
    text = (tmp_path / "w" / "results_continual.md").read_text()
    assert "| icarl |" in text
    assert "## domain-IL Permuted-Digits (10 tasks)\n\nNone of the methods run supports it." in text


def test_suite_writes_its_results_inside_the_workdir_and_shows_progress(tmp_path):
    """Without --results the markdown goes to WORKDIR, not to docs/ under the current
    directory (a quick run would replace the repository's measured table). The suite
    runs for many minutes: each method's progress bar is shown."""
    environ = {**helpers.env(), "PYTHONPATH": str(helpers.ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "scripts.suite", "--workdir=suite", "--methods=naive",
         "--num_seeds=1"], cwd=tmp_path, env=environ, capture_output=True, text=True,
        timeout=600)
    assert proc.returncode == 0, proc.stderr[-500:]
    text = (tmp_path / "suite" / "results_continual.md").read_text()
    assert "| naive |" in text
    # the flags given: no --results it was not given, and the --methods it was
    assert "    python -m scripts.suite --workdir=suite --num_seeds=1 --methods=naive\n" in text
    assert not (tmp_path / "docs").exists()
    assert "naive x1:" in proc.stderr  # the method's tqdm bar


@pytest.mark.parametrize("script, args", [
    ("run", ["--config=research/configs/split_digits.py", "--workdir={tmp}/w"]),
    ("compare", ["--config=research/configs/split_digits.py", "--algorithms=naive",
                 "--workdir={tmp}/w"]),
    ("suite", ["--workdir={tmp}/w"]),
    ("finetune", ["--config=research/configs/sentiment_finetune.py:runlocal", "--workdir={tmp}/w"]),
    ("update", ["--from={tmp}/a", "--data={tmp}/d.csv", "--workdir={tmp}/w"]),
    ("predict", ["--from={tmp}/a"]),
    ("embed", ["--input={tmp}/in.txt", "--output={tmp}/o.npy"]),
    ("multitask", ["--workdir={tmp}/w"]),
    ("multitask_compare", ["--workdir={tmp}/w"]),
    ("curriculum_compare", ["--output={tmp}/w"]),
    ("text_baselines", ["--output={tmp}/w"]),
    ("fetch_data", ["--cache_dir={tmp}/c"]),
    ("bench", ["--output={tmp}/w"]),
    ("bench_text_step", []),
])
def test_words_after_the_flags_are_refused_not_ignored(tmp_path, script, args):
    """``config.num_seeds=5`` without its dashes was ignored (or, in some scripts, a
    traceback or the whole usage text with exit status 1)."""
    proc = helpers.run([sys.executable, "-m", f"scripts.{script}",
                        *(a.format(tmp=tmp_path) for a in args), "config.num_seeds=5"])
    assert proc.returncode == 2, proc.stderr[-500:]
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: unexpected arguments: config.num_seeds=5 (flags take the form --name=value)")
    assert not (tmp_path / "w").exists()
