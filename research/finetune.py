"""Fine-tuning modes as optax transformations over parameter labels (``config.finetune``).

Each mode labels every leaf of the text model's params and gives each label
its own transformation through ``optax.multi_transform``:

* ``full``: everything trains with the base optimizer;
* ``linear_probe``: only the ``head`` trains;
* ``freeze_bottom``: the embeddings and the bottom ``freeze_layers`` layers are frozen;
* ``discriminative``: layer-wise rate decay, ``lr * layer_decay ** (depth above the leaf)``
  (embeddings deepest, head and pooler at the full rate); the default 0.8 is the usual
  choice for BERT encoders (ELECTRA's), ULMFiT's ``1 / 2.6`` is ``layer_decay=0.385``;
* ``prompt``: soft prompt vectors and head train, the encoder is frozen; the vectors
  start random (``config.prompt_init='random'``, PEFT's default) or as sampled
  vocabulary embeddings (``'vocab'``, Lester et al. 2021);
* ``lora``: LoRA factors on the attention projections and head train.

Frozen leaves get ``optax.set_to_zero()``: their update is exactly 0, and the
base optimizer (weight decay included) never sees them, so they stay
bit-identical. ``encode_features`` is the cached-features fast path of the
linear probe: texts are encoded once and a linear head trains on the vectors.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from models.text import build as text_build
from models.text import load as text_load
from models.text import peft, sentence

MODES = ("full", "linear_probe", "freeze_bottom", "discriminative", "prompt", "lora")
PROMPT_INITS = ("random", "vocab")  # config.prompt_init: models/text/build.pretrained_params
TRAIN, FREEZE = peft.TRAIN, peft.FREEZE
PEFT_GROUPS = {"linear_probe": ("head",), "prompt": ("prompt", "head"), "lora": ("lora", "head")}


def check_mode(config: ml_collections.ConfigDict) -> None:
    """ValueError naming the field for a mode or setting that cannot run."""
    if config.finetune not in MODES:
        raise ValueError(f"unknown config.finetune {config.finetune!r}; "
                         f"choices: {', '.join(MODES)}")
    if config.finetune == "discriminative" and not 0 < config.layer_decay <= 1:
        raise ValueError(f"config.layer_decay must be in (0, 1], got {config.layer_decay}")
    if config.get("prompt_init", "random") not in PROMPT_INITS:
        raise ValueError(f"unknown config.prompt_init {config.prompt_init!r}; "
                         f"choices: {', '.join(PROMPT_INITS)}")
    if config.finetune == "freeze_bottom" and config.freeze_layers < 0:
        raise ValueError(f"config.freeze_layers must be >= 0, got {config.freeze_layers}")
    # with none, the mode trains the head alone, a linear probe under another name
    for mode, field, what in (("lora", "lora_rank", "LoRA factors"),
                              ("prompt", "num_prompt_tokens", "soft prompt vectors")):
        value = config.get(field)
        if config.finetune == mode and (not isinstance(value, int) or isinstance(value, bool)
                                        or value < 1):
            raise ValueError(f"config.{field} must be an integer >= 1 with "
                             f"finetune={mode!r} (no {what}: only the head would train), "
                             f"got {value!r}")


def _keys(path: tuple[Any, ...]) -> list[str]:
    return [str(getattr(k, "key", k)) for k in path]


def depth(path: tuple[Any, ...], num_layers: int) -> int:
    """0 for the embeddings (and prompt), i + 1 for ``layer_i``, ``num_layers + 1`` above."""
    keys = _keys(path)
    if len(keys) < 2 or keys[0] != "encoder":
        return num_layers + 1
    if keys[1] in ("embeddings", "prompt"):
        return 0
    if keys[1].startswith("layer_"):
        return int(keys[1].split("_")[1]) + 1
    return num_layers + 1


def labels_fn(config: ml_collections.ConfigDict, num_layers: int):
    """params -> a pytree of labels for ``config.finetune`` (see ``transforms``)."""
    mode = config.finetune
    if mode in PEFT_GROUPS:
        return lambda params: peft.param_labels(params, PEFT_GROUPS[mode])
    if mode == "freeze_bottom":
        k = int(config.freeze_layers)
        if k > num_layers:  # depth num_layers + 1 is the pooler and the head
            raise ValueError(f"config.freeze_layers={k} is more than the encoder's "
                             f"{num_layers} layers: it would freeze the head too")
        return lambda params: jax.tree_util.tree_map_with_path(
            lambda path, _: FREEZE if depth(path, num_layers) <= k else TRAIN, params)
    if mode == "discriminative":
        return lambda params: jax.tree_util.tree_map_with_path(
            lambda path, _: f"depth_{depth(path, num_layers)}", params)
    return lambda params: jax.tree_util.tree_map(lambda _: TRAIN, params)


def transforms(base: optax.GradientTransformation, config: ml_collections.ConfigDict,
               num_layers: int) -> dict[str, optax.GradientTransformation]:
    if config.finetune == "discriminative":
        top = num_layers + 1
        return {f"depth_{d}": optax.chain(base, optax.scale(config.layer_decay ** (top - d)))
                for d in range(top + 1)}
    return {TRAIN: base, FREEZE: optax.set_to_zero()}


def num_layers_of(config: ml_collections.ConfigDict) -> int:
    if config.model != "text" or text_build.HEADS.get(config.head) is None:
        return 0
    return text_build.encoder_config(config).num_layers


def wrap(base: optax.GradientTransformation, config: ml_collections.ConfigDict,
         clip_norm: float = 0.0) -> optax.GradientTransformation:
    """``base`` restricted and rescaled per leaf as ``config.finetune`` says, after clipping
    the gradient of the trained leaves to global norm ``clip_norm`` (0: no clip).

    The clip must not sit in ``base``: ``multi_transform`` gives each label only its own
    leaves, so it would clip each apart (every depth of ``discriminative`` to the full
    norm). Frozen leaves do not count, as torch's clip skips parameters without gradients.
    """
    check_mode(config)
    layers = num_layers_of(config)
    labels = labels_fn(config, layers)
    opt = optax.multi_transform(transforms(base, config, layers), labels)
    if clip_norm <= 0:
        return opt
    trained = lambda params: jax.tree_util.tree_map(lambda label: label != FREEZE,
                                                    labels(params))
    return optax.chain(optax.masked(optax.clip_by_global_norm(clip_norm), trained), opt)


def trainable_fraction(params: Any, config: ml_collections.ConfigDict) -> float:
    """Share of parameter values the mode trains (frozen ones have label ``freeze``)."""
    labels = labels_fn(config, num_layers_of(config))(params)
    sizes = jax.tree_util.tree_map(lambda p: int(np.prod(np.shape(p))), params)
    pairs = zip(jax.tree_util.tree_leaves(labels), jax.tree_util.tree_leaves(sizes), strict=True)
    counted = [(label != FREEZE, size) for label, size in pairs]
    return sum(s for t, s in counted if t) / max(sum(s for _, s in counted), 1)


# -- The linear probe on cached features ---------------------------------------------------
@functools.lru_cache(maxsize=2)
def _frozen_encoder(encoder: str, layers: int) -> tuple[Any, Any]:
    overrides = {"num_layers": layers} if layers else {}
    cfg = text_load.load_config(text_load.resolve_model_dir(encoder), **overrides)
    return cfg, jax.device_put(text_load.load_params(text_load.resolve_model_dir(encoder), cfg))


_FEATURES: dict[tuple, np.ndarray] = {}  # (encoder, layers, digest of the tokens) -> features
_FEATURES_KEPT = 64  # a 3-seed, 4-domain stream holds 24 train and test arrays


def encode_features(config: ml_collections.ConfigDict, packed: np.ndarray,
                    chunk: int = 256) -> np.ndarray:
    """Sentence embeddings ``[N, H]`` of packed tokens by the frozen pretrained encoder.

    Memoised on the tokens' bytes: runs of one process that share a split
    (seeds, curricula, budgets of a comparison) encode it once.
    """
    packed = np.ascontiguousarray(packed)
    key = (str(config.encoder), int(config.encoder_layers), packed.shape,
           hashlib.sha1(packed.tobytes()).hexdigest())
    if key not in _FEATURES:
        if len(_FEATURES) >= _FEATURES_KEPT:
            _FEATURES.pop(next(iter(_FEATURES)))
        _FEATURES[key] = _encode(config, packed, chunk)
    return _FEATURES[key]


def _encode(config: ml_collections.ConfigDict, packed: np.ndarray, chunk: int) -> np.ndarray:
    cfg, params = _frozen_encoder(str(config.encoder), int(config.encoder_layers))
    out = []
    for start in range(0, len(packed), chunk):
        tokens = text_build.unpack(jnp.asarray(packed[start:start + chunk]))
        out.append(np.asarray(sentence.embed(params, cfg, tokens)))
    width = cfg.hidden_size
    return np.concatenate(out) if out else np.zeros((0, width), np.float32)


def cached_features_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The linear probe as a run on features: ``model='mlp'`` with no hidden layer."""
    config = ml_collections.ConfigDict(config.to_dict())
    config.update(cached_features=True, finetune="linear_probe", model="mlp", hidden=())
    return config
