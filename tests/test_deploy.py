"""Deployment CLIs: finetune -> update (ewc/replay/lwf) -> predict on a tiny CSV; their errors."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from research.configs import sentiment_finetune
from research.data import sentiment

needs_corpus = pytest.mark.skipif(not sentiment.is_cached(), reason="needs the corpus")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cli(*args, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, input=stdin,
                          capture_output=True, text=True, timeout=900)


def _csv(path, rows) -> str:
    path.write_text("text,label\n" + "".join(f'"{t}",{lab}\n' for t, lab in rows))
    return str(path)


def _run_dir(tmp_path):
    """A workdir holding only a run's config (enough for the errors that come first)."""
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "config.json").write_text(sentiment_finetune.get_config("runlocal").to_json())
    return str(workdir)


def test_predict_missing_workdir_exits_2(tmp_path):
    out = _cli("scripts.predict", f"--from={tmp_path / 'none'}", stdin="great\n")
    assert out.returncode == 2
    assert "holds no run" in out.stderr and "Traceback" not in out.stderr


def test_predict_tsv_names_its_columns_in_a_header():
    """The probability columns' order (the run's labels) was stated nowhere."""
    from research import deploy

    lines = deploy.tsv_lines(("neg", "pos"), ["fine film", "dull"], ["pos", "neg"],
                              np.array([[0.25, 0.75], [0.9, 0.1]]))
    assert lines == ["label\tp_neg\tp_pos\ttext", "pos\t0.2500\t0.7500\tfine film",
                     "neg\t0.9000\t0.1000\tdull"]


def test_update_bad_data_file_exits_2_naming_the_line(tmp_path):
    bad = _csv(tmp_path / "new.csv", [("fine", "positive"), ("odd", "stellar")])
    out = _cli("scripts.update", f"--from={_run_dir(tmp_path)}", f"--data={bad}",
               "--method=ewc", f"--workdir={tmp_path / 'new'}")
    assert out.returncode == 2
    assert "line 3" in out.stderr and "stellar" in out.stderr
    missing = _cli("scripts.update", f"--from={tmp_path / 'run'}",
                   f"--data={tmp_path / 'nope.csv'}", f"--workdir={tmp_path / 'new'}")
    assert missing.returncode == 2 and "does not exist" in missing.stderr


@pytest.mark.slow
@needs_corpus
def test_finetune_update_predict_end_to_end(tmp_path):
    base = tmp_path / "base"
    out = _cli("scripts.finetune", "--config=research/configs/sentiment_finetune.py:runlocal",
               "--config.max_examples_per_domain=24", "--config.num_seeds=2", f"--workdir={base}")
    assert out.returncode == 0, out.stderr
    assert 0 <= json.loads(out.stdout.splitlines()[-1])["test_accuracy"][0] <= 1
    tweets = sentiment.load_domains(["tweets"], 0, max_examples_per_domain=20)["tweets"]
    rows = [(t.replace('"', "'"), sentiment.LABEL_NAMES[lab])
            for t, lab in zip(tweets.train.texts, tweets.train.labels, strict=True)]
    data = _csv(tmp_path / "new.csv", rows)
    for method in ("ewc", "replay", "lwf"):
        out = _cli("scripts.update", f"--from={base}", f"--data={data}", f"--method={method}",
                   f"--workdir={tmp_path / method}")
        assert out.returncode == 0, out.stderr
        report = json.loads(out.stdout.splitlines()[-1])
        assert set(report) == {"method", "before", "after"}
        assert all(0 <= report[w][d] <= 1 for w in ("before", "after") for d in ("old", "new"))
    (tmp_path / "texts.txt").write_text("what a lovely film\n\nthis was dreadful\n")
    out = _cli("scripts.predict", f"--from={tmp_path / 'ewc'}",
               f"--input={tmp_path / 'texts.txt'}", "--format=jsonl")
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [line["text"] for line in lines] == ["what a lovely film", "this was dreadful"]
    for line in lines:
        assert line["label"] in sentiment.LABEL_NAMES
        assert sum(line["probabilities"].values()) == pytest.approx(1, abs=1e-3)
    piped = _cli("scripts.predict", f"--from={base}", stdin="good\nbad\n")
    assert piped.returncode == 0, piped.stderr[-500:]
    header, *rows = piped.stdout.splitlines()
    assert header == "label\tp_negative\tp_neutral\tp_positive\ttext"
    assert [row.split("\t")[-1] for row in rows] == ["good", "bad"]
    _each_run_continues_its_own_params(str(base), data, str(tmp_path / "naive"))


def _prepared_params(workdir: str):
    """The params of the checkpoint ``prepare_update`` wrote (an unfinished run, which
    ``deploy.load_run_params`` refuses)."""
    import orbax.checkpoint as ocp

    from research import checkpoint

    mngr = checkpoint.manager(workdir, 1)
    got = mngr.restore(mngr.latest_step(),
                       args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    return got["state"]["params"]


def _each_run_continues_its_own_params(base: str, data: str, workdir: str) -> None:
    """Run i of an update starts from the old run i: its seed drew the old data's split,
    so run 0's params would be tested on rows they were trained on."""
    from research import deploy

    deploy.prepare_update(deploy.update_config(base, data, "naive"), workdir)
    _, old = deploy.load_run_params(base)
    new = _prepared_params(workdir)
    kernel = lambda params: params["head"]["out"]["kernel"]
    assert not np.array_equal(kernel(old)[0], kernel(old)[1])
    np.testing.assert_array_equal(kernel(new), kernel(old))


@pytest.mark.parametrize("method,key,expected", [
    ("ewc", "ewc_max_tasks", 4), ("ewc", "ewc_lambda", 1000.0),
    ("replay", "buffer_input_size", 3 * 16)])  # 'local' runs 16 tokens
def test_update_gives_the_new_method_its_hyper_parameters(tmp_path, method, key, expected):
    """A fine-tuning run saves only its own method's hyper-parameters (none for naive)."""
    from research import deploy

    config = json.loads(sentiment_finetune.get_config("runlocal").to_json())
    config["hp"], config["sweep"] = {}, {}
    (tmp_path / "config.json").write_text(json.dumps(config))
    data = _csv(tmp_path / "new.csv", [("fine", "positive"), ("awful", "negative")])
    assert deploy.update_config(str(tmp_path), data, method).hp[key] == expected


def _tweets_csv(tmp_path) -> str:
    tweets = sentiment.load_domains(["tweets"], 0, max_examples_per_domain=20)["tweets"]
    return _csv(tmp_path / "new.csv", [
        (t.replace('"', "'"), sentiment.LABEL_NAMES[lab])
        for t, lab in zip(tweets.train.texts, tweets.train.labels, strict=True)])


def _base_run(workdir, algorithm: str) -> str:
    """A seconds-long fine-tuning run (the 'runlocal' config) with ``algorithm``."""
    from research import train

    config = sentiment_finetune.get_config("runlocal")
    config.update(max_examples_per_domain=24, algorithm=algorithm, progress=False, plots=False)
    train.train_and_evaluate(config, str(workdir))
    return str(workdir)


@needs_corpus
def test_update_with_another_method_than_the_old_run_starts_and_resumes(tmp_path):
    """The old run's method's hyper-parameters must not make the update's own workdir
    read as a run of another config, neither when it starts nor when it is rerun."""
    from research import deploy

    base = _base_run(tmp_path / "base", "ewc")
    config = deploy.update_config(base, _tweets_csv(tmp_path), "replay")
    assert "ewc_lambda" in config.hp  # the old run's, carried along
    first = deploy.before_after(deploy.update(config, str(tmp_path / "new")))
    again = deploy.before_after(deploy.update(config, str(tmp_path / "new")))
    assert again == first


def test_update_refuses_a_foreign_workdir_unless_overwrite(tmp_path):
    """The refusal names --overwrite, so scripts.update takes it; it never clears --from."""
    data = _csv(tmp_path / "new.csv", [("fine", "positive"), ("awful", "negative")])
    foreign = tmp_path / "foreign"
    (foreign / "checkpoints").mkdir(parents=True)
    (foreign / "config.json").write_text('{"algorithm": "naive"}')
    args = [f"--from={_run_dir(tmp_path)}", f"--data={data}", f"--workdir={foreign}"]
    out = _cli("scripts.update", *args)
    assert out.returncode == 2, out.stderr[-500:]
    assert "holds a run of a different config" in out.stderr and "--overwrite" in out.stderr
    out = _cli("scripts.update", *args, "--overwrite")
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-500:]
    assert out.stderr.strip().splitlines()[-1].endswith("has no checkpoint; did its run finish?")
    assert not (foreign / "checkpoints").exists()  # cleared, the old run's absence reported
    out = _cli("scripts.update", f"--from={tmp_path / 'run'}", f"--data={data}",
               f"--workdir={tmp_path / 'run'}", "--overwrite")
    assert out.returncode == 2 and "is the run to update" in out.stderr, out.stderr[-500:]
    assert (tmp_path / "run" / "config.json").exists()
    out = _cli("scripts.update", f"--from={tmp_path / 'run'}", f"--data={data}",
               f"--workdir={tmp_path / 'bad'}", "--num_epochs=-1")
    assert out.returncode == 2 and "num_epochs must be a positive" in out.stderr
    assert not (tmp_path / "bad").exists()  # refused before the workdir is made


@needs_corpus
def test_update_whose_first_save_was_cut_short_is_prepared_again(tmp_path):
    """A kill during the first checkpoint write leaves checkpoints/ without a step: the
    rerun must write the end-of-task-0 state, not train the old data from scratch."""
    from research import deploy

    base = _base_run(tmp_path / "base", "naive")
    workdir = tmp_path / "new"
    (workdir / "checkpoints").mkdir(parents=True)
    deploy.prepare_update(deploy.update_config(base, _tweets_csv(tmp_path), "naive"),
                          str(workdir))
    _, old = deploy.load_run_params(base)
    new = _prepared_params(str(workdir))
    kernel = lambda params: params["head"]["out"]["kernel"]
    np.testing.assert_array_equal(kernel(new), kernel(old))


def test_a_run_that_is_not_a_text_run_is_refused_in_one_line(tmp_path):
    """A digits run's params do not fit the text model: predict raised flax's shape error."""
    from research import train
    from research.configs import split_digits

    config = split_digits.get_config()
    config.update(num_epochs=1, hidden=(8,), progress=False, plots=False)
    digits = tmp_path / "digits"
    train.train_and_evaluate(config, str(digits))
    data = _csv(tmp_path / "new.csv", [("fine", "positive"), ("awful", "negative")])
    line = (f"error: '{digits}' holds a run on dataset 'split_digits', not a text run; "
            "give the --workdir of a scripts.finetune run")
    for out in (_cli("scripts.predict", f"--from={digits}", stdin="great\n"),
                _cli("scripts.update", f"--from={digits}", f"--data={data}",
                     f"--workdir={tmp_path / 'new'}")):
        assert out.returncode == 2, out.stderr[-500:]
        assert out.stderr.strip().splitlines()[-1] == line


@pytest.mark.parametrize("args, line", [
    (["--input={tmp}"], "error: input file '{tmp}' cannot be read: Is a directory"),
    (["--batch_size=0"], "error: flag --batch_size=0: 0 is not a positive integer"),
])
def test_predict_bad_input_is_one_line(tmp_path, args, line):
    out = _cli("scripts.predict", f"--from={tmp_path / 'none'}",
               *(a.format(tmp=tmp_path) for a in args), stdin="great\n")
    assert out.returncode == 2, out.stderr[-500:]
    assert out.stderr.strip().splitlines() == [line.format(tmp=tmp_path)]


@needs_corpus
def test_an_unfinished_run_is_refused_and_a_finished_update_predicts_with_its_weights(
        tmp_path):
    """An update stopped after its task-0 checkpoint (or any run killed part way) held the
    old weights: predict classified with them, and update started from them, without a
    word. Once the update finishes, predict uses the updated weights."""
    from research import deploy

    base = _base_run(tmp_path / "base", "naive")
    config = deploy.update_config(base, _tweets_csv(tmp_path), "naive")
    workdir = str(tmp_path / "new")
    deploy.prepare_update(config, workdir)
    out = _cli("scripts.predict", f"--from={workdir}", stdin="great\n")
    assert out.returncode == 2, out.stderr[-500:]
    assert out.stderr.strip().splitlines() == [
        f"error: {workdir!r} holds an unfinished run (it stopped in training stage 2 of 2); "
        "rerun the command that started it to finish it"]
    with pytest.raises(ValueError, match="unfinished run"):
        deploy.prepare_update(deploy.update_config(workdir, _tweets_csv(tmp_path), "naive"),
                              str(tmp_path / "newer"))
    deploy.update(config, workdir)  # the rerun resumes and finishes
    texts = ["what a lovely film", "this was dreadful", "it rained today"]
    updated = deploy.Predictor.from_workdir(workdir).logits(texts)
    assert not np.allclose(updated, deploy.Predictor.from_workdir(base).logits(texts))


def test_predict_never_pads_a_few_texts_to_a_large_batch():
    """--batch_size=50000 with 2 texts ran the model on 50,000 padded rows (23 GB, killed)."""
    from research import deploy

    predictor = deploy.Predictor(sentiment_finetune.get_config("runlocal"), None,
                                 batch_size=100_000)
    shapes = []
    predictor._apply = lambda params, x: shapes.append(x.shape) or np.zeros((len(x), 3))
    assert predictor.logits(["great", "dull"]).shape == (2, 3)
    assert shapes == [(2, 3, 16)]
    predictor.batch_size, shapes[:] = 2, []
    assert predictor.logits(["a", "b", "c"]).shape == (3, 3)
    assert shapes == [(2, 3, 16)] * 2


@needs_corpus
def test_update_uses_every_row_of_the_new_file(tmp_path):
    """The old run's max_examples_per_domain (40 for 'runlocal', 1000 for the full config)
    cut the user's new file down to that many rows without a word."""
    from research import deploy
    from research.data import text_stream

    rows = [(f"review number {i} was {word}", label) for i in range(30)
            for word, label in (("great", "positive"), ("awful", "negative"))]
    config = deploy.update_config(_run_dir(tmp_path), _csv(tmp_path / "new.csv", rows), "ewc")
    old, new = text_stream.text_tasks(config, 0)
    assert len(new.train_texts) + len(new.test_texts) == 60
    assert len(old.train_texts) + len(old.test_texts) <= 40  # the old run's own cap, kept


def test_predict_drops_a_byte_order_mark(tmp_path):
    """A UTF-8 file saved with a BOM echoed it in front of the first text of the output."""
    path = tmp_path / "texts.txt"
    path.write_bytes(b"\xef\xbb\xbfgreat film\r\nbad\r\n")
    code = f"from scripts import predict; print(predict.read_texts({str(path)!r}))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.stdout.strip() == "['great film', 'bad']", out.stderr[-500:]
