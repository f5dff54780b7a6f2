"""A small convolutional net for image streams (two conv blocks, one dense layer)."""

from collections.abc import Sequence

import flax.linen as nn
import jax


class CNN(nn.Module):
    """Conv(3x3)-ReLU-MaxPool blocks, a hidden dense layer, one head over all classes."""

    num_classes: int
    channels: Sequence[int] = (32, 64)
    hidden: int = 128

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if x.ndim in (2, 3):  # [B, L] signals and [B, H, W] images: one channel
            x = x[..., None]
        for width in self.channels:
            x = nn.relu(nn.Conv(width, (3,) * (x.ndim - 2), padding="SAME")(x))
            x = nn.max_pool(x, (2,) * (x.ndim - 2), strides=(2,) * (x.ndim - 2), padding="SAME")
        x = x.reshape((x.shape[0], -1))
        x = nn.relu(nn.Dense(self.hidden)(x))
        return nn.Dense(self.num_classes, name="head")(x)


def build(config, num_classes: int) -> nn.Module:
    return CNN(num_classes=num_classes, channels=tuple(config.channels), hidden=config.cnn_hidden)
