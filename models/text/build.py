"""``config.model = 'text'``: a text classifier over packed token arrays, pretrained weights.

The engine hands the model one int32 array ``x`` of shape ``[B, 3, L]``: the
rows of ``PACKED_FIELDS`` stacked. One array (not a dict) is what lets every
method work on text unchanged: per-example Fisher indexes ``x[None]`` and the
replay buffer stores flattened rows (``config.hp.buffer_input_size = 3 * L``).
A dict ``{'tokens': packed, ...}`` is accepted too, for batches that carry
extra fields (a distillation teacher's logits) the model must ignore.

``pretrained_params(config, params)`` puts the pretrained encoder weights into
freshly initialised params (the engine's init draws them at random); LoRA
factors and the head keep their init, and so do soft prompts unless
``config.prompt_init='vocab'`` restarts them as sampled vocabulary embeddings
(``bert.vocab_sampled_prompt``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import numpy as np
from flax import traverse_util

from models.text import heads, load
from models.text.bert import EncoderConfig, vocab_sampled_prompt

PACKED_FIELDS = ("input_ids", "attention_mask", "token_type_ids")
HEADS = {"pooled": "mean", "cls": "cls", "textcnn": "cnn", "scratch_textcnn": None}
FINETUNE_PEFT = {"lora": "lora_rank", "prompt": "num_prompt_tokens"}


def pack(tokens: Mapping[str, np.ndarray]) -> np.ndarray:
    """``{input_ids, attention_mask, token_type_ids}`` ``[N, L]`` -> int32 ``[N, 3, L]``."""
    return np.stack([np.asarray(tokens[k], np.int32) for k in PACKED_FIELDS], axis=1)


def unpack(x: Any) -> dict[str, jax.Array]:
    """The token dict of a packed ``[B, 3, L]`` array (or of ``x['tokens']``)."""
    if isinstance(x, Mapping):
        if "tokens" not in x:
            return dict(x)
        x = x["tokens"]
    if x.ndim != 3 or x.shape[1] != len(PACKED_FIELDS):
        raise ValueError(f"text model expects packed tokens [B, 3, L], got shape {x.shape}")
    return {k: x[:, i].astype("int32") for i, k in enumerate(PACKED_FIELDS)}


class PackedTextClassifier(heads.TextClassifier):
    """``TextClassifier`` on packed token arrays."""

    def __call__(self, x: Any) -> jax.Array:
        return super().__call__(unpack(x))


class PackedTextCNN(heads.TextCNN):
    """The from-scratch ``TextCNN`` on packed token arrays."""

    def __call__(self, x: Any) -> jax.Array:
        return super().__call__(unpack(x))


@functools.lru_cache(maxsize=8)
def _encoder_config(encoder: str, overrides: tuple[tuple[str, Any], ...]) -> EncoderConfig:
    return load.load_config(load.resolve_model_dir(encoder), **dict(overrides))


def encoder_config(config: Any) -> EncoderConfig:
    """The encoder's shape from its ``config.json``, truncated and with the mode's PEFT switch."""
    overrides: dict[str, Any] = {}
    if config.encoder_layers:
        overrides["num_layers"] = int(config.encoder_layers)
    if config.finetune == "lora":
        overrides.update(lora_rank=int(config.lora_rank), lora_alpha=float(config.lora_alpha))
    if config.finetune == "prompt":
        overrides["num_prompt_tokens"] = int(config.num_prompt_tokens)
    return _encoder_config(str(config.encoder), tuple(sorted(overrides.items())))


def build(config: Any, num_classes: int) -> nn.Module:
    """The classifier ``config.head`` names over ``config.encoder``."""
    if config.head not in HEADS:
        raise ValueError(f"unknown config.head {config.head!r}; choices: {', '.join(HEADS)}")
    cfg = encoder_config(config)
    if HEADS[config.head] is None:
        return PackedTextCNN(vocab_size=cfg.vocab_size, num_classes=num_classes)
    return PackedTextClassifier(cfg, num_classes, HEADS[config.head])


def pretrained_params(config: Any, params: Any) -> Any:
    """``params`` (each leaf may carry leading run axes) with the pretrained encoder put in.

    A from-scratch head (``scratch_textcnn``) has no encoder: params come back as they are.
    """
    if HEADS.get(config.head) is None or "encoder" not in params:
        return params
    cfg = encoder_config(config)
    pretrained = load.load_params(load.resolve_model_dir(str(config.encoder)), cfg)
    encoder = params["encoder"]
    lead = encoder["embeddings"]["word_embeddings"]["embedding"].ndim - 2  # run axes
    single = jax.tree_util.tree_map(lambda a: a[(0,) * lead], encoder)
    load.merge_pretrained(single, pretrained, ("encoder",))  # names any misfit leaf
    flat = traverse_util.flatten_dict(encoder)
    for path, value in traverse_util.flatten_dict(pretrained).items():
        flat[path] = np.broadcast_to(np.asarray(value, flat[path].dtype), flat[path].shape).copy()
    if ("prompt",) in flat and config.get("prompt_init", "random") == "vocab":
        flat[("prompt",)] = vocab_sampled_prompt(
            flat[("prompt",)], pretrained["embeddings"]["word_embeddings"]["embedding"])
    return {**params, "encoder": traverse_util.unflatten_dict(flat)}
