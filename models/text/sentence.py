"""Sentence embeddings: the sentence-transformers recipe on our encoder.

Token states are mean-pooled over the attention mask and L2-normalised, as
all-MiniLM-L6-v2 was trained to be used; texts are cut at 256 tokens.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from models.text.bert import BertEncoder, EncoderConfig, mean_pool

MAX_LENGTH = 256


@functools.partial(jax.jit, static_argnums=1)
def embed(params: Any, cfg: EncoderConfig, tokenized: Mapping[str, jax.Array]) -> jax.Array:
    """Unit-length embeddings ``[B, H]`` of tokenized texts (from ``load.tokenize``)."""
    out = BertEncoder(cfg).apply({"params": params}, tokenized["input_ids"],
                                 tokenized["attention_mask"], tokenized.get("token_type_ids"))
    pooled = mean_pool(out.hidden, out.mask)
    return pooled / jnp.maximum(jnp.linalg.norm(pooled, axis=-1, keepdims=True), 1e-12)
