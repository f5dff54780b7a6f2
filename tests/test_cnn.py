"""The image CNN: 2-D convolutions on H x W images with or without a channel axis."""

import jax
import jax.numpy as jnp
import pytest

from models.cnn import CNN
from research import train


@pytest.mark.parametrize("shape,kernel", [
    ((2, 8, 8), (3, 3, 1, 32)),  # the digits streams: no channel axis
    ((2, 28, 28, 1), (3, 3, 1, 32)),  # TFDS images
    ((2, 40), (3, 1, 32)),  # MNIST-1D signals
])
def test_convolutions_follow_the_input_layout(shape, kernel):
    params = CNN(10).init(jax.random.PRNGKey(0), jnp.zeros(shape))["params"]
    assert params["Conv_0"]["kernel"].shape == kernel


def test_cnn_trains_on_split_digits(digits_config, tmp_path):
    digits_config.model = "cnn"
    results = train.train_and_evaluate(digits_config, str(tmp_path))
    assert results["class_il"]["accuracy_matrix"][0][0] > 0.9
