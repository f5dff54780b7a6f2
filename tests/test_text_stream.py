"""The text stream: packed token arrays, domain order, test splits, user files, update data."""

import numpy as np
import pytest

from models.text import build as text_build
from research.configs import sentiment_domains
from research.data import sentiment, text_files, text_stream

needs_corpus = pytest.mark.skipif(not sentiment.is_cached(),
                                  reason="needs the corpus: python -m scripts.fetch_data")


def _config(**changes):
    config = sentiment_domains.get_config("runlocal")
    config.update(changes)
    return config


def _write_csv(path, rows):
    path.write_text("text,label\n" + "".join(f'"{t}",{lab}\n' for t, lab in rows))
    return str(path)


ROWS = [(f"text number {i} is {'good' if i % 2 else 'bad'}", ["negative", "positive"][i % 2])
        for i in range(10)] + [("so so", "neutral"), ("meh", "neutral")]


def test_pack_unpack_round_trip():
    tokens = {k: np.arange(6, dtype=np.int32).reshape(2, 3) + i
              for i, k in enumerate(text_build.PACKED_FIELDS)}
    packed = text_build.pack(tokens)
    assert packed.shape == (2, 3, 3) and packed.dtype == np.int32
    back = text_build.unpack(packed)
    for k in text_build.PACKED_FIELDS:
        np.testing.assert_array_equal(np.asarray(back[k]), tokens[k])
    assert set(text_build.unpack({"tokens": packed, "teacher": 0})) == set(tokens)
    with pytest.raises(ValueError, match=r"\[B, 3, L\]"):
        text_build.unpack(np.zeros((2, 5), np.int32))


@needs_corpus
def test_sentiment_stream_follows_domain_order_and_test_splits():
    config = _config(domains="nyt,tweets", max_examples_per_domain=30)
    stream = text_stream.make_text_stream(config, seed=0)
    splits = sentiment.load_domains(["nyt", "tweets"], 0, max_examples_per_domain=30)
    assert stream.name == "nyt+tweets" and stream.shared_labels
    assert stream.train_x.shape[:2] == (2, stream.train_y.shape[1])
    assert stream.train_x.shape[2:] == (3, config.max_length)
    assert stream.train_x.dtype == np.int32 and stream.task_classes.all()
    for t, name in enumerate(["nyt", "tweets"]):
        assert stream.n_test[t] == len(splits[name].test.labels)
        np.testing.assert_array_equal(stream.test_y[t, : stream.n_test[t]],
                                      splits[name].test.labels)
        expected = text_stream.tokenize(config, splits[name].test.texts)
        np.testing.assert_array_equal(stream.test_x[t, : stream.n_test[t]], expected)
    assert stream.train_x[:, :, 1].max() == 1  # the attention mask row


@pytest.mark.parametrize("max_length", [0, 1])
def test_too_short_max_length_names_the_field(max_length):
    with pytest.raises(ValueError, match=rf"config.max_length={max_length} is too short: "
                                         r"a text needs at least 2 tokens \(\[CLS\] and"):
        text_stream.tokenize(_config(max_length=max_length), ["good", "a bad movie"])


def test_unknown_domain_is_named():
    with pytest.raises(ValueError, match="books"):
        text_stream.make_text_stream(_config(domains="tweets,books"), 0)


def test_a_domain_named_twice_is_refused():
    with pytest.raises(ValueError, match="config.domains names 'tweets' more than once"):
        text_stream.make_text_stream(_config(domains="tweets,nyt,tweets"), 0)


def test_text_file_stream_and_bad_file(tmp_path):
    path = _write_csv(tmp_path / "new.csv", ROWS)
    config = _config(dataset="text_file", text_files=path, max_examples_per_domain=0)
    stream = text_stream.make_text_stream(config, 0)
    assert stream.num_tasks == 1 and stream.num_classes == 3
    assert stream.n_train[0] + stream.n_test[0] == len(ROWS)
    assert set(stream.train_y[0, : stream.n_train[0]]) <= {0, 1, 2}
    bad = _write_csv(tmp_path / "bad.csv", [("fine", "positive"), ("odd", "great")])
    with pytest.raises(text_files.DataFileError, match="line 3"):
        text_stream.make_text_stream(_config(dataset="text_file", text_files=bad), 0)


@needs_corpus
def test_update_stream_puts_the_old_run_data_first(tmp_path):
    old = _config(domains="movies", max_examples_per_domain=20)
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "config.json").write_text(old.to_json())
    path = _write_csv(tmp_path / "new.csv", ROWS)
    config = _config(dataset="text_file", text_files=path, update_from=str(tmp_path / "old"),
                     max_examples_per_domain=20)
    stream = text_stream.make_text_stream(config, 0)
    old_stream = text_stream.make_text_stream(old, 0)
    assert stream.num_tasks == 2 and stream.name == "old+new.csv"
    assert stream.n_train[0] == old_stream.n_train[0]
    np.testing.assert_array_equal(stream.test_x[0, : stream.n_test[0]],
                                  old_stream.test_x[0, : old_stream.n_test[0]])


def _old_run(tmp_path, rows):
    """A workdir holding a text_file run's config, on ``rows``."""
    old = _config(dataset="text_file", text_files=_write_csv(tmp_path / "old.csv", rows),
                  max_examples_per_domain=0)
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "config.json").write_text(old.to_json())
    return old


MORE = [(f"another sentence {i} sounds {'fine' if i % 2 else 'awful'}",
         ["negative", "positive"][i % 2]) for i in range(40)]


def test_an_update_tests_no_old_row_its_new_file_trains_on(tmp_path):
    """new.csv repeating the old file (as an update's data often does) trained on the old
    task's test rows: its accuracy then measured memory, not retention."""
    old = _old_run(tmp_path, MORE)
    new = _write_csv(tmp_path / "new.csv", ROWS + MORE)
    config = _config(dataset="text_file", text_files=new, update_from=str(tmp_path / "old"),
                     max_examples_per_domain=0)
    [before] = text_stream.text_tasks(old, 0)
    tasks = text_stream.text_tasks(config, 0)
    trained = {t for task in tasks for t in task.train_texts}
    assert [task.name for task in tasks] == ["old", "new.csv"]
    assert tasks[0].train_texts == before.train_texts  # training data never changes
    kept = [t for t in before.test_texts if t not in set(tasks[1].train_texts)]
    assert 0 < len(kept) < len(before.test_texts)
    assert tasks[0].test_texts == kept
    labels = dict(zip(before.test_texts, before.test_labels.tolist(), strict=True))
    assert tasks[0].test_labels.tolist() == [labels[t] for t in kept]
    for task in tasks:
        assert not set(task.test_texts) & trained
        assert len(task.test_texts) == len(task.test_labels)


def test_a_new_file_that_only_repeats_old_training_rows_is_named(tmp_path):
    old = _old_run(tmp_path, MORE)
    [before], names = text_stream.text_tasks(old, 0), text_stream.label_names(old)
    rows = [(t, names[y]) for t, y in zip(before.train_texts, before.train_labels, strict=True)]
    config = _config(dataset="text_file", text_files=_write_csv(tmp_path / "new.csv", rows),
                     update_from=str(tmp_path / "old"), max_examples_per_domain=0)
    with pytest.raises(ValueError, match="task 'new.csv': every test row repeats a text"):
        text_stream.text_tasks(config, 0)


def test_missing_run_config_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        text_stream.read_run_config(str(tmp_path))


def test_a_file_task_tests_on_no_sentence_it_trains_on(tmp_path):
    path = _write_csv(tmp_path / "some_twice.csv", ROWS + ROWS[:6])
    task = text_stream.file_task(path, _config(max_examples_per_domain=0), seed=1)
    assert len(task.test_texts) == 2  # of 4 held out, 2 repeat training sentences
    assert not set(task.test_texts) & set(task.train_texts)
    every = _write_csv(tmp_path / "all_twice.csv", ROWS + ROWS)
    with pytest.raises(ValueError, match="all_twice.csv: every test row repeats"):
        text_stream.file_task(every, _config(max_examples_per_domain=0), seed=0)


def test_a_text_file_run_records_the_tasks_its_files_make(tmp_path):
    """config.num_tasks does not apply to text files (each file is a task): results.json
    says how many tasks the stream had, not the config's unused field."""
    from research import train

    first = _write_csv(tmp_path / "a.csv", ROWS)
    second = _write_csv(tmp_path / "b.csv", [(f"another {t}", lab) for t, lab in ROWS])
    config = _config(dataset="text_file", text_files=f"{first},{second}",
                     max_examples_per_domain=0, num_tasks=1, num_epochs=1)
    results = train.train_and_evaluate(config, str(tmp_path / "run"))
    assert results["num_tasks"] == 2 and len(results["domain_il"]["accuracy_matrix"]) == 2


@pytest.mark.parametrize("cap, hint", [(24, True), (0, False)])
def test_a_task_without_test_rows_names_the_cap_only_where_there_is_one(monkeypatch, cap, hint):
    """An update reads its file uncapped: 'raise config.max_examples_per_domain' would send
    its user after a setting that cannot add a row."""
    empty = text_stream.TextTask("new.csv", ["good", "bad"], np.array([2, 0]), [], np.array([]))
    monkeypatch.setattr(text_stream, "text_tasks", lambda config, seed: [empty])
    with pytest.raises(ValueError, match="no training or no test examples") as err:
        text_stream.make_text_stream(_config(max_examples_per_domain=cap), 0)
    assert ("max_examples_per_domain" in str(err.value)) == hint
