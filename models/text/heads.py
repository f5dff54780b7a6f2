"""Classifier and regression heads over the encoder, and the models the engine calls.

``TextClassifier`` is what the continual engine's ``apply_fn`` runs: it takes
the dict of token arrays from ``models.text.load.tokenize`` and returns logits
``[B, C]``. Its params are one pytree, ``{'encoder': ..., 'head': ...}``, so
freezing the encoder or giving it its own learning rate is a label on one key.
``TextCNN`` is the same convolutional head over its own embedding table: a
small from-scratch student for distillation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from models.mixed_precision import Dense
from models.text.bert import BertEncoder, EncoderConfig, EncoderOutput, mean_pool
from models.text.load import merge_pretrained

HEADS = ("cls", "mean", "cnn", "regression")
POOLINGS = ("cls", "mean")
Inputs = Mapping[str, jax.Array]


class PooledClassifier(nn.Module):
    """A linear layer over one vector per text: the pooled [CLS] state or the mask mean."""

    num_classes: int
    pooling: str = "cls"

    @nn.compact
    def __call__(self, out: EncoderOutput) -> jax.Array:
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling={self.pooling!r}; choices: {POOLINGS}")
        features = out.pooled if self.pooling == "cls" else mean_pool(out.hidden, out.mask)
        return Dense(self.num_classes, name="out")(features)


class RegressionHead(PooledClassifier):
    """One real output ``[B, 1]`` (e.g. a sentiment rating) over the mean-pooled states."""

    num_classes: int = 1
    pooling: str = "mean"


class TextCNNHead(nn.Module):
    """Kim (2014): 1-D convolutions of several widths, ReLU, max over the real tokens, linear.

    Padding tokens are zeroed before the convolutions and masked out of the
    max, so the result does not depend on how much padding a batch carries.
    """

    num_classes: int
    widths: Sequence[int] = (3, 4, 5)
    features: int = 100

    @nn.compact
    def __call__(self, hidden: jax.Array, mask: jax.Array) -> jax.Array:
        valid = (mask > 0)[..., None]
        hidden = jnp.where(valid, hidden, 0.0)
        length = hidden.shape[1]
        # Right padding keeps one window per token; a window may run into padding zeros.
        padded = jnp.pad(hidden, ((0, 0), (0, max(self.widths) - 1), (0, 0)))
        pooled = []
        for width in self.widths:
            # A width-w convolution is a Dense over the w stacked neighbours: one matmul
            # per width, which XLA on CPU compiles and runs faster than a conv.
            windows = jnp.concatenate([padded[:, j:j + length] for j in range(width)], axis=-1)
            feature_maps = nn.relu(Dense(self.features, name=f"conv_{width}")(windows))
            # After ReLU every value is >= 0, so zeroing masked positions leaves the max unchanged.
            pooled.append(jnp.max(jnp.where(valid, feature_maps, 0.0), axis=1))
        return Dense(self.num_classes, name="out")(jnp.concatenate(pooled, axis=-1))


class TextClassifier(nn.Module):
    """Encoder + head: ``inputs`` (input_ids, attention_mask[, token_type_ids]) -> ``[B, C]``.

    ``head`` is ``'cls'`` (pooler output), ``'mean'`` (mask mean), ``'cnn'``
    (TextCNN over the token states) or ``'regression'`` (``[B, 1]``).
    """

    encoder: EncoderConfig
    num_classes: int
    head: str = "cls"

    @nn.compact
    def __call__(self, inputs: Inputs) -> jax.Array:
        if self.head not in HEADS:
            raise ValueError(f"head={self.head!r}; choices: {HEADS}")
        out = BertEncoder(self.encoder, name="encoder")(
            inputs["input_ids"], inputs.get("attention_mask"), inputs.get("token_type_ids"))
        if self.head == "cnn":
            return TextCNNHead(self.num_classes, name="head")(out.hidden, out.mask)
        if self.head == "regression":
            return RegressionHead(name="head")(out)
        return PooledClassifier(self.num_classes, self.head, name="head")(out)


class TextCNN(nn.Module):
    """A from-scratch TextCNN classifier (own embedding table): a small distillation student."""

    vocab_size: int
    num_classes: int
    embed_dim: int = 128
    widths: Sequence[int] = (3, 4, 5)
    features: int = 100

    @nn.compact
    def __call__(self, inputs: Inputs) -> jax.Array:
        ids = inputs["input_ids"]
        mask = inputs.get("attention_mask")
        mask = jnp.ones(ids.shape, jnp.int32) if mask is None else mask
        embedded = nn.Embed(self.vocab_size, self.embed_dim, name="embed")(ids)
        return TextCNNHead(self.num_classes, self.widths, self.features, name="head")(
            embedded, mask)


def init_classifier(model: TextClassifier, rng: jax.Array, max_length: int,
                    pretrained: Any = None) -> dict[str, Any]:
    """Initial params of ``model``; ``pretrained`` encoder weights (from ``load_encoder``)
    replace the random ones, while LoRA, prompts and the head keep their init."""
    dummy = {k: jnp.zeros((1, max_length), jnp.int32)
             for k in ("input_ids", "attention_mask", "token_type_ids")}
    params = jax.jit(model.init)(rng, dummy)["params"]
    if pretrained is not None:
        params = dict(params)
        params["encoder"] = merge_pretrained(params["encoder"], pretrained, ("encoder",))
    return params
