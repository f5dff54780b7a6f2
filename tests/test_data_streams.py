import numpy as np
import pytest

from research.data import digits, load, stream


def test_split_digits_shapes_and_classes():
    s = digits.split_digits(seed=0)
    assert s.num_tasks == 5 and s.num_classes == 10 and s.input_shape == (8, 8)
    for t in range(5):
        n = s.n_train[t]
        labels = set(np.unique(s.train_y[t, :n]))
        assert labels == {2 * t, 2 * t + 1}
        assert s.task_classes[t].sum() == 2
    assert 0.0 <= s.train_x.min() and s.train_x.max() <= 1.0
    assert s.n_train.sum() + s.n_test.sum() == 1797
    assert s.n_test.sum() == pytest.approx(0.3 * 1797, abs=1)


def test_class_order_and_seed():
    s = digits.split_digits(seed=1, num_tasks=2, class_order=[9, 8, 7, 6, 5, 4, 3, 2, 1, 0])
    assert set(np.unique(s.train_y[0, : s.n_train[0]])) == {9, 8, 7, 6, 5}
    a, b = digits.split_digits(seed=0), digits.split_digits(seed=1)
    assert not np.array_equal(a.train_x, b.train_x)
    np.testing.assert_array_equal(a.train_x, digits.split_digits(seed=0).train_x)


@pytest.mark.parametrize("order", [[0, 1, 2], [0, 0, 1, 2, 3, 4, 5, 6, 7, 8], list(range(1, 11))])
def test_impossible_class_order(order):
    with pytest.raises(ValueError, match="permutation"):
        stream.check_class_order(order, 10, 5)


def test_parse_class_order():
    assert load.parse_class_order("3,2,1") == [3, 2, 1]
    assert load.parse_class_order("") is None
    with pytest.raises(ValueError, match="comma-separated"):
        load.parse_class_order("a,b")


def test_permuted_digits_are_permutations_of_task_zero():
    s = digits.permuted_digits(seed=0, num_tasks=3)
    assert s.shared_labels and s.task_classes.all()
    x0, x2 = s.train_x[0].reshape(len(s.train_x[0]), -1), s.train_x[2].reshape(-1, 64)
    np.testing.assert_allclose(np.sort(x0, 1), np.sort(x2, 1))
    assert not np.array_equal(x0, x2)


def test_rotated_digits_rotate():
    s = digits.rotated_digits(seed=0, num_tasks=2, max_angle=360.0)  # task 1: 180 degrees
    np.testing.assert_allclose(s.train_x[1], s.train_x[0][:, ::-1, ::-1], atol=1e-5)


def test_split_mnist1d():
    from research.data.mnist1d import split_mnist1d

    s = split_mnist1d(seed=0, num_samples=1000)
    assert s.input_shape == (40,) and s.num_tasks == 5
    assert set(np.unique(s.train_y[4, : s.n_train[4]])) == {8, 9}


def test_tfds_mock_data_source():
    tfds = pytest.importorskip("tensorflow_datasets")
    from research.data.tfds_source import split_tfds

    with tfds.testing.mock_data(num_examples=60):
        s = split_tfds("mnist", seed=0, num_tasks=5)
    assert s.input_shape == (28, 28, 1) and s.num_classes == 10
    assert s.n_train.sum() == 60 and 0.0 <= s.train_x.max() <= 1.0


def test_tfds_unknown_dataset():
    pytest.importorskip("tensorflow_datasets")
    from research.data.tfds_source import split_tfds

    with pytest.raises(ValueError, match="unknown TFDS dataset"):
        split_tfds("no_such_dataset_xyz", seed=0)


def test_tfds_unprepared_dataset_names_its_data_dir_and_fetches_nothing(tmp_path, capfd):
    """The command it gives prepares the dataset where the run reads it (data_dir) in the
    format data_source reads; TFDS says nothing first (it used to start 'Downloading and
    preparing dataset', then warn about a folder that does not exist)."""
    pytest.importorskip("tensorflow_datasets")
    from research.data.tfds_source import split_tfds

    with pytest.raises(ValueError) as err:
        split_tfds("mnist", seed=0, data_dir=str(tmp_path))
    assert str(err.value) == (
        f"TFDS dataset 'mnist' is not prepared in {tmp_path}; prepare it once with: python -c "
        "\"import tensorflow_datasets as tfds; tfds.builder('mnist', "
        f"data_dir='{tmp_path}').download_and_prepare(file_format='array_record')\"")
    out, errors = capfd.readouterr()
    assert "Downloading" not in out + errors and "Variant folder" not in out + errors
    assert not list(tmp_path.iterdir())


def test_tfds_dataset_prepared_in_a_format_data_source_cannot_read_says_so():
    import types

    from research.data import tfds_source

    tfrecord = types.SimpleNamespace(value="tfrecord")
    prepared = types.SimpleNamespace(is_prepared=lambda: True, info=types.SimpleNamespace(
        file_format=tfrecord, splits={"train": None, "test": None}))
    message = tfds_source._unreadable("mnist", prepared, None, NotImplementedError())
    assert message.startswith("TFDS dataset 'mnist' is prepared as tfrecord, which "
                              "tfds.data_source cannot read (array_record or parquet); "
                              "prepare it again with: python -c")
    assert "tfds.builder('mnist').download_and_prepare(file_format='array_record')" in message


def test_seeds_of_a_generated_stream_stack_into_one_run_batch():
    """MNIST-1D draws each seed's data anew, so its tasks' row counts differ by seed; the
    runs stack with zero padding that their row counts mask."""
    from research import train
    from research.data.mnist1d import split_mnist1d

    streams = [split_mnist1d(seed=seed, num_samples=1000) for seed in (0, 1)]
    assert streams[0].train_y.shape != streams[1].train_y.shape
    data = train.RunData(streams, "class", "task", eval_batch=64)
    for run, s in enumerate(streams):
        rows = s.train_y.shape[1]
        np.testing.assert_array_equal(data.train_y[run, :, :rows], s.train_y)
        assert not data.train_y[run, :, rows:].any()
        np.testing.assert_array_equal(data.test["valid"][run].sum(1), s.n_test)


def test_tfds_images_of_many_sizes_are_named():
    tfds = pytest.importorskip("tensorflow_datasets")
    from research.data.tfds_source import split_tfds

    with tfds.testing.mock_data(num_examples=20), \
            pytest.raises(ValueError, match="'cats_vs_dogs' has images of .* shapes"):
        split_tfds("cats_vs_dogs", seed=0, num_tasks=1)


def test_tfds_dataset_without_a_test_split_is_named():
    """A prepared dataset with only a train split (cats_vs_dogs is one) is not 'unprepared'."""
    import types

    from research.data import tfds_source

    prepared = types.SimpleNamespace(is_prepared=lambda: True,
                                     info=types.SimpleNamespace(splits={"train": None}))
    message = tfds_source._unreadable("cats_vs_dogs", prepared, None, KeyError("test"))
    assert message == ("TFDS dataset 'cats_vs_dogs' has splits ['train']; this stream reads "
                       "'train' and 'test'")
    unprepared = types.SimpleNamespace(is_prepared=lambda: False)
    assert "is not prepared" in tfds_source._unreadable("mnist", unprepared, None, OSError())
