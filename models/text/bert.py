"""Our own Flax linen BERT encoder, with LoRA and soft prompts built in.

Current transformers releases no longer ship Flax models, so the encoder is
ours; ``models/text/load.py`` maps Hugging Face weights onto it. The layout
follows BERT exactly (post-LayerNorm layers, exact erf GELU, a dense+tanh
pooler) so pretrained checkpoints reproduce PyTorch outputs to ~1e-5. Query,
key and value share one fused ``qkv`` kernel: one matmul instead of three.

Parameter tree (what freezing and per-layer learning rates select on)::

    embeddings/{word_embeddings,position_embeddings,token_type_embeddings,layer_norm}
    prompt                                   (only if num_prompt_tokens > 0)
    layer_{i}/attention/{qkv,out,lora_q,...}  layer_{i}/{attention_norm,intermediate,
                                              output,output_norm}
    pooler

LoRA adapters are sub-modules ``lora_<target>`` holding ``lora_a`` and
``lora_b``; ``lora_b`` starts at zero, so an encoder with LoRA computes the
same function as the one without until it is trained. The soft prompt starts
random, or as sampled vocabulary embeddings (``vocab_sampled_prompt``). There is no dropout:
the engine's ``apply_fn(params, x)`` is deterministic.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from models.mixed_precision import Dense


def gelu_erf(x: jax.Array) -> jax.Array:
    """Exact GELU as BERT and PyTorch write it, 0.5 x (1 + erf(x / sqrt 2)). jax.nn.gelu's
    erfc form keeps the far negative tail but compiles on CPU to branchy kernels: 26 ms of
    a scanned MiniLM train step (batch 32, length 64) against erf's 10 ms."""
    return 0.5 * x * (1.0 + jax.lax.erf(x * (1.0 / math.sqrt(2.0))))


ACTIVATIONS = {
    "gelu": gelu_erf,
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "relu": jax.nn.relu,
}
LORA_TARGETS = ("q", "k", "v", "o")
MASK_BIAS = -1e9  # added to attention scores of padding keys: exp() underflows to exactly 0


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    """Shape of a BERT-family encoder plus the PEFT switches (all off by default).

    Frozen and hashable, so it can be a static argument of ``jax.jit``.
    """

    vocab_size: int = 30522
    hidden_size: int = 384
    num_layers: int = 6
    num_heads: int = 12
    intermediate_size: int = 1536
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_act: str = "gelu"
    initializer_range: float = 0.02
    # PEFT: LoRA on the attention projections, soft prompt tokens.
    lora_rank: int = 0
    lora_alpha: float = 16.0
    lora_targets: tuple[str, ...] = ("q", "v")
    num_prompt_tokens: int = 0

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size={self.hidden_size} is not divisible by num_heads={self.num_heads}"
            )
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(f"hidden_act={self.hidden_act!r}; choices: {sorted(ACTIVATIONS)}")
        if self.num_layers < 1:
            raise ValueError(f"num_layers={self.num_layers}; need at least 1")
        bad = [t for t in self.lora_targets if t not in LORA_TARGETS]
        if bad:
            raise ValueError(f"lora_targets={self.lora_targets}; choices: {LORA_TARGETS}")
        if self.lora_rank < 0 or self.num_prompt_tokens < 0:
            raise ValueError("lora_rank and num_prompt_tokens must be >= 0")

    @classmethod
    def from_hf(cls, hf_config: Any, **overrides: Any) -> EncoderConfig:
        """Reads a transformers ``BertConfig`` (or any object with its attributes).

        ``overrides`` set the PEFT fields or shrink the encoder, e.g.
        ``num_layers=2`` for a truncated student (never more layers than it has).
        """
        model_type = getattr(hf_config, "model_type", "bert")
        if model_type != "bert":
            raise ValueError(f"model_type={model_type!r} is not supported; choices: ['bert']")
        position_type = getattr(hf_config, "position_embedding_type", "absolute")
        if position_type != "absolute":
            raise ValueError(
                f"position_embedding_type={position_type!r}; choices: ['absolute']"
            )
        fields = dict(
            vocab_size=hf_config.vocab_size,
            hidden_size=hf_config.hidden_size,
            num_layers=hf_config.num_hidden_layers,
            num_heads=hf_config.num_attention_heads,
            intermediate_size=hf_config.intermediate_size,
            max_position_embeddings=hf_config.max_position_embeddings,
            type_vocab_size=hf_config.type_vocab_size,
            layer_norm_eps=hf_config.layer_norm_eps,
            hidden_act=hf_config.hidden_act,
            initializer_range=getattr(hf_config, "initializer_range", 0.02),
        )
        layers, has = overrides.get("num_layers", fields["num_layers"]), fields["num_layers"]
        if layers > has:  # else every missing tensor is listed when the weights load
            raise ValueError(f"config.encoder_layers={layers} is more than the checkpoint's "
                             f"num_hidden_layers={has}; use 1 to {has} (0: all)")
        fields.update(overrides)
        if "lora_targets" in fields:
            fields["lora_targets"] = tuple(fields["lora_targets"])
        return cls(**fields)

    def replace(self, **changes: Any) -> EncoderConfig:
        return dataclasses.replace(self, **changes)


class EncoderOutput(NamedTuple):
    """Token states ``[B, P+L, H]`` (P prompt tokens first), pooled ``[B, H]``,
    and the attention mask ``[B, P+L]`` that goes with the token states."""

    hidden: jax.Array
    pooled: jax.Array
    mask: jax.Array


class LoRA(nn.Module):
    """Low-rank update ``x A B * alpha / r``; B starts at zero so the update starts at zero."""

    features: int
    rank: int
    alpha: float

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        # The PEFT library's init for A (kaiming-uniform, a=sqrt(5)): variance 1/(3 fan_in).
        a = self.param(
            "lora_a", nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform"),
            (x.shape[-1], self.rank),
        )
        b = self.param("lora_b", nn.initializers.zeros, (self.rank, self.features))
        product = lambda lhs, rhs: jnp.matmul(lhs, rhs, preferred_element_type=jnp.float32)
        return (product(product(x, a).astype(x.dtype), b) * (self.alpha / self.rank)).astype(
            x.dtype)


class SelfAttention(nn.Module):
    """Multi-head self-attention with a fused QKV projection and optional LoRA."""

    cfg: EncoderConfig

    def _lora(self, target: str, x: jax.Array, features: int) -> jax.Array | None:
        cfg = self.cfg
        if cfg.lora_rank == 0 or target not in cfg.lora_targets:
            return None
        return LoRA(features, cfg.lora_rank, cfg.lora_alpha, name=f"lora_{target}")(x)

    @nn.compact
    def __call__(self, x: jax.Array, bias: jax.Array) -> jax.Array:
        cfg = self.cfg
        batch, length, width = x.shape
        heads, head_dim = cfg.num_heads, width // cfg.num_heads
        init = nn.initializers.normal(cfg.initializer_range)
        qkv = Dense(3 * width, kernel_init=init, name="qkv")(x)
        deltas = [self._lora(t, x, width) for t in ("q", "k", "v")]
        if any(d is not None for d in deltas):
            zero = jnp.zeros_like(x)
            qkv = qkv + jnp.concatenate([zero if d is None else d for d in deltas], axis=-1)
        qkv = qkv.reshape(batch, length, 3, heads, head_dim)
        q = qkv[:, :, 0] * (1.0 / math.sqrt(head_dim))
        k, v = qkv[:, :, 1], qkv[:, :, 2]
        # Both products accumulate in float32 and the softmax runs in float32 under
        # bfloat16 compute; with float32 operands these are the plain products.
        f32 = jnp.float32
        scores = jnp.einsum("bqhd,bkhd->bhqk", q, k, preferred_element_type=f32)
        probs = jax.nn.softmax(scores + bias[:, None, None, :], axis=-1).astype(v.dtype)
        context = jnp.einsum("bhqk,bkhd->bqhd", probs, v, preferred_element_type=f32)
        context = context.astype(v.dtype).reshape(batch, length, width)
        out = Dense(width, kernel_init=init, name="out")(context)
        delta = self._lora("o", context, width)
        return out if delta is None else out + delta


class Layer(nn.Module):
    """One post-LayerNorm transformer layer, as in BERT."""

    cfg: EncoderConfig

    @nn.compact
    def __call__(self, x: jax.Array, bias: jax.Array) -> jax.Array:
        cfg = self.cfg
        init = nn.initializers.normal(cfg.initializer_range)
        norm = lambda name: nn.LayerNorm(epsilon=cfg.layer_norm_eps, name=name)
        x = norm("attention_norm")(x + SelfAttention(cfg, name="attention")(x, bias))
        h = Dense(cfg.intermediate_size, kernel_init=init, name="intermediate")(x)
        h = ACTIVATIONS[cfg.hidden_act](h)
        h = Dense(cfg.hidden_size, kernel_init=init, name="output")(h)
        return norm("output_norm")(x + h)


class Embeddings(nn.Module):
    """Word + position + token-type embeddings, then LayerNorm.

    Soft prompt vectors (``num_prompt_tokens``) are placed before the first
    token at the word-embedding level; they get token type 0 and no position,
    so the real tokens keep the positions they were pretrained with.
    """

    cfg: EncoderConfig

    @nn.compact
    def __call__(self, input_ids: jax.Array, token_type_ids: jax.Array,
                 prompt: jax.Array | None) -> jax.Array:
        cfg = self.cfg
        init = nn.initializers.normal(cfg.initializer_range)
        embed = lambda n, name: nn.Embed(n, cfg.hidden_size, embedding_init=init, name=name)
        token_type = embed(cfg.type_vocab_size, "token_type_embeddings")
        positions = jnp.arange(input_ids.shape[1])
        x = (embed(cfg.vocab_size, "word_embeddings")(input_ids)
             + embed(cfg.max_position_embeddings, "position_embeddings")(positions)[None]
             + token_type(token_type_ids))
        if prompt is not None:
            prompt = prompt + token_type(jnp.zeros((1,), jnp.int32))
            prompt = jnp.broadcast_to(prompt[None], (x.shape[0], *prompt.shape))
            x = jnp.concatenate([prompt, x], axis=1)
        return nn.LayerNorm(epsilon=cfg.layer_norm_eps, name="layer_norm")(x)


class BertEncoder(nn.Module):
    """The BERT encoder: token ids -> contextual states and the pooled [CLS] vector."""

    cfg: EncoderConfig

    @nn.compact
    def __call__(self, input_ids: jax.Array, attention_mask: jax.Array | None = None,
                 token_type_ids: jax.Array | None = None) -> EncoderOutput:
        cfg = self.cfg
        batch, length = input_ids.shape
        if length > cfg.max_position_embeddings:
            raise ValueError(
                f"sequence length {length} > max_position_embeddings={cfg.max_position_embeddings}"
            )
        if attention_mask is None:
            attention_mask = jnp.ones((batch, length), jnp.int32)
        if token_type_ids is None:
            token_type_ids = jnp.zeros((batch, length), jnp.int32)
        prompt = None
        if cfg.num_prompt_tokens:
            # config.prompt_init='vocab' restarts it once the pretrained weights are in
            prompt = self.param("prompt", nn.initializers.normal(cfg.initializer_range),
                                (cfg.num_prompt_tokens, cfg.hidden_size))
            attention_mask = jnp.concatenate(
                [jnp.ones((batch, cfg.num_prompt_tokens), attention_mask.dtype), attention_mask],
                axis=1)
        x = Embeddings(cfg, name="embeddings")(input_ids, token_type_ids, prompt)
        bias = jnp.where(attention_mask > 0, 0.0, MASK_BIAS).astype(x.dtype)
        for i in range(cfg.num_layers):
            x = Layer(cfg, name=f"layer_{i}")(x, bias)
        cls = x[:, cfg.num_prompt_tokens]
        init = nn.initializers.normal(cfg.initializer_range)
        pooler = Dense(cfg.hidden_size, kernel_init=init, name="pooler")
        return EncoderOutput(x, jnp.tanh(pooler(cls)), attention_mask)


def vocab_sampled_prompt(prompt: jax.Array, word_embeddings: Any) -> jax.Array:
    """Soft prompt vectors restarted as the embeddings of vocabulary tokens drawn uniformly.

    Lester et al. (2021, sec. 3.2, fig. 3b) start prompts from sampled vocabulary rows,
    which beat a random start there, most of all for small models (PEFT's ``SAMPLE_VOCAB``
    draws ``randint(0, vocab_size)`` the same way); ``config.prompt_init='vocab'``. The
    random N(0, 0.02) start is a third of MiniLM's word-vector norm, so the token-type
    vector added before the embedding LayerNorm leaves its vectors 0.6 cosine-similar
    (sampled rows: 0.2).
    ``prompt`` ``[..., P, H]`` (leading run axes allowed) is that random init: its bits
    seed each run's draw, so a run draws the same tokens alone as vmapped with others.
    """
    runs = prompt.reshape(-1, *prompt.shape[-2:])
    table = jnp.asarray(word_embeddings)

    def draw(p: jax.Array) -> jax.Array:
        key = jax.random.key(jax.lax.bitcast_convert_type(p[0, 0].astype(jnp.float32),
                                                           jnp.uint32))
        return table[jax.random.randint(key, (p.shape[0],), 0, table.shape[0])].astype(p.dtype)

    return jax.vmap(draw)(runs).reshape(prompt.shape)


def mean_pool(hidden: jax.Array, mask: jax.Array) -> jax.Array:
    """Average of the token states where ``mask`` is set (the sentence-transformers pooling)."""
    weights = mask.astype(hidden.dtype)[..., None]
    return jnp.sum(hidden * weights, axis=1) / jnp.maximum(jnp.sum(weights, axis=1), 1e-9)
