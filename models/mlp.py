"""Multi-layer perceptron: the continual-learning literature's 2x400 ReLU net."""

from collections.abc import Sequence

import flax.linen as nn
import jax


class MLP(nn.Module):
    """Flattens the input, then ReLU hidden layers and one output layer over all classes."""

    num_classes: int
    hidden: Sequence[int] = (400, 400)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape((x.shape[0], -1))
        for width in self.hidden:
            x = nn.relu(nn.Dense(width)(x))
        return nn.Dense(self.num_classes, name="head")(x)


def build(config, num_classes: int) -> nn.Module:
    return MLP(num_classes=num_classes, hidden=tuple(config.hidden))
