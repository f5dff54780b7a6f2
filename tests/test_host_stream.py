"""Epochs streamed from host memory (config.stream_chunk_steps): order, batches, runs, resume."""

import numpy as np
import pytest

from research import config_check, host_stream, train


def test_epoch_order_visits_every_real_row_once_per_pass():
    valid = np.array([True, False, True, True, False, True, True])
    ids = host_stream.epoch_order(valid, seed=3, task=1, epoch=0, steps=3, batch_size=2)
    assert ids.shape == (3, 2)
    assert sorted(ids.ravel()[:5]) == [0, 2, 3, 5, 6]  # one pass over the 5 real rows
    assert ids.ravel()[5] == ids.ravel()[0]  # then the order repeats
    again = host_stream.epoch_order(valid, seed=3, task=1, epoch=0, steps=3, batch_size=2)
    other = host_stream.epoch_order(valid, seed=3, task=1, epoch=1, steps=3, batch_size=2)
    np.testing.assert_array_equal(ids, again)
    assert not np.array_equal(ids, other)


def test_gather_takes_each_runs_rows_and_marks_real_ones():
    pool = {"x": np.arange(2 * 4 * 3).reshape(2, 4, 3), "y": np.arange(8).reshape(2, 4),
            "logit_mask": np.ones((2, 4, 5), bool), "task": np.zeros((2, 4), np.int32),
            "valid": np.array([[1, 1, 1, 0], [1, 0, 1, 1]], bool)}
    ids = np.array([[[0, 3]], [[1, 2]]])  # [runs, steps, batch]
    batch = host_stream.gather(pool, ids)
    assert batch["x"].shape == (2, 1, 2, 3)
    np.testing.assert_array_equal(batch["y"], [[[0, 3]], [[5, 6]]])
    np.testing.assert_array_equal(batch["weight"], [[[1, 0]], [[0, 1]]])


def _streamed(config, chunk):
    config.num_tasks, config.num_seeds, config.stream_chunk_steps = 3, 2, chunk
    return config


def test_streamed_run_is_deterministic_and_learns_like_the_device_pool(digits_config, tmp_path):
    on_device = train.train_and_evaluate(_streamed(digits_config, 0), str(tmp_path / "pool"))
    first = train.train_and_evaluate(_streamed(digits_config, 3), str(tmp_path / "a"))
    second = train.train_and_evaluate(_streamed(digits_config, 3), str(tmp_path / "b"))
    assert first["num_compiles"] == on_device["num_compiles"] == 6
    for key in ("class_il", "task_il"):
        np.testing.assert_array_equal(first[key]["accuracy_matrix"],
                                      second[key]["accuracy_matrix"])
    assert first["task_il"]["ACC"] > 0.65  # 2-way tasks: chance is 0.5
    assert abs(first["task_il"]["ACC"] - on_device["task_il"]["ACC"]) < 0.1
    assert first["steps"] >= on_device["steps"]  # whole chunks: never fewer steps


def test_streamed_run_resumes_to_the_same_figures(digits_config, tmp_path, crash_and_resume):
    whole = train.train_and_evaluate(_streamed(digits_config, 3), str(tmp_path / "whole"))
    resumed = crash_and_resume(_streamed(digits_config, 3), str(tmp_path / "resumed"))
    for key in ("class_il", "task_il"):
        np.testing.assert_array_equal(whole[key]["accuracy_matrix"],
                                      resumed[key]["accuracy_matrix"])


@pytest.mark.parametrize("fields,message", [
    ({"stream_chunk_steps": -1}, "must be an integer >= 0"),
    ({"stream_chunk_steps": 4, "shard_data": True}, "exclude each other"),
])
def test_bad_streaming_config_is_one_clear_error(digits_config, fields, message):
    digits_config.update(fields)
    with pytest.raises(config_check.ConfigError, match=message):
        config_check.validate(digits_config)
