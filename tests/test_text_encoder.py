"""The Flax BERT encoder: PyTorch agreement, loading errors, PEFT switches, heads."""

import functools
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("safetensors")

import chex  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

from models.text.bert import (  # noqa: E402
    BertEncoder,
    EncoderConfig,
    gelu_erf,
    vocab_sampled_prompt,
)
from models.text.heads import TextClassifier, TextCNN, TextCNNHead, init_classifier  # noqa: E402
from models.text.load import (  # noqa: E402
    hf_to_params,
    load_encoder,
    merge_pretrained,
    resolve_model_dir,
    tokenize,
)
from models.text.peft import param_labels  # noqa: E402
from models.text.sentence import embed  # noqa: E402

FIXTURE = Path(__file__).parent / "fixtures" / "minilm_reference.npz"
TINY = EncoderConfig(vocab_size=50, hidden_size=16, num_layers=1, num_heads=4,
                     intermediate_size=32, max_position_embeddings=24)


@pytest.fixture(scope="module")
def minilm():
    try:
        return load_encoder("minilm")
    except ValueError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def minilm_tensors(minilm):
    from safetensors.numpy import load_file

    return load_file(str(resolve_model_dir("minilm") / "model.safetensors"))


def _tokens(batch=2, length=8, seed=0, vocab=TINY.vocab_size):
    ids = jax.random.randint(jax.random.key(seed), (batch, length), 1, vocab)
    mask = jnp.ones((batch, length), jnp.int32).at[0, length // 2:].set(0)
    return {"input_ids": ids, "attention_mask": mask,
            "token_type_ids": jnp.zeros((batch, length), jnp.int32)}


def test_matches_pytorch_reference(minilm):
    cfg, params, tokenizer = minilm
    ref = np.load(FIXTURE)
    tokens = tokenize(tokenizer, [str(s) for s in ref["sentences"]], ref["input_ids"].shape[1])
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        np.testing.assert_array_equal(tokens[key], ref[key])
        assert tokens[key].dtype == np.int32
    out = _run(BertEncoder(cfg), params, **tokens)
    assert np.max(np.abs(out.hidden - ref["last_hidden_state"])) < 1e-4
    assert np.max(np.abs(out.pooled - ref["pooler_output"])) < 1e-4
    assert np.max(np.abs(embed(params, cfg, tokens) - ref["embeddings"])) < 1e-4


def test_missing_tensor_is_named(minilm, minilm_tensors):
    cfg = minilm[0]
    tensors = dict(minilm_tensors)
    del tensors["encoder.layer.3.attention.self.key.weight"]
    with pytest.raises(ValueError, match=r"missing .*encoder\.layer\.3\.attention\.self\.key"):
        hf_to_params(tensors, cfg)


def test_unexpected_tensor_is_named(minilm, minilm_tensors):
    tensors = dict(minilm_tensors, **{"classifier.weight": np.zeros((2, 384), np.float32)})
    with pytest.raises(ValueError, match=r"unexpected .*classifier\.weight"):
        hf_to_params(tensors, minilm[0])
    assert "layer_0" in hf_to_params(tensors, minilm[0], ignore_prefixes=("classifier.",))


def test_bert_prefix_and_truncation(minilm, minilm_tensors):
    prefixed = {f"bert.{k}": v for k, v in minilm_tensors.items()}
    student = hf_to_params(prefixed, minilm[0].replace(num_layers=2))
    assert sorted(k for k in student if k.startswith("layer_")) == ["layer_0", "layer_1"]
    chex.assert_trees_all_equal(student["layer_1"], minilm[1]["layer_1"])


def test_bert_for_pretraining_checkpoint_drops_its_heads(minilm, minilm_tensors):
    # bert-base-uncased's safetensors: the encoder under 'bert.', the MLM/NSP heads beside it.
    heads = {"cls.predictions.bias": np.zeros(30522, np.float32),
             "cls.seq_relationship.weight": np.zeros((2, 384), np.float32)}
    tensors = dict({f"bert.{k}": v for k, v in minilm_tensors.items()}, **heads)
    chex.assert_trees_all_equal(hf_to_params(tensors, minilm[0]), minilm[1])
    tensors["bert.encoder.layer.0.attention.self.extra"] = np.zeros(2, np.float32)
    with pytest.raises(ValueError, match=r"unexpected .*encoder\.layer\.0\.attention\.self\.extra"):
        hf_to_params(tensors, minilm[0])  # inside the encoder, a stray tensor is still an error


def test_config_shape_mismatch_is_named(minilm, minilm_tensors):
    with pytest.raises(ValueError, match="word_embeddings"):
        hf_to_params(minilm_tensors, minilm[0].replace(vocab_size=100))


@pytest.mark.parametrize("max_length", [0, 1])
def test_too_short_max_length_is_one_line(minilm, max_length):
    """Without room for [CLS] and [SEP], the tokenizer's rows came back ragged and numpy
    failed with 'setting an array element with a sequence'."""
    with pytest.raises(ValueError, match=f"max_length={max_length} is too short") as err:
        tokenize(minilm[2], ["good", "a bad movie"], max_length)
    assert "\n" not in str(err.value)
    assert tokenize(minilm[2], ["good", "a bad movie"], 2)["input_ids"].shape == (2, 2)


def test_resolve_model_dir_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        resolve_model_dir(tmp_path / "nowhere")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="model.safetensors, tokenizer.json"):
        resolve_model_dir(tmp_path)


def test_config_rejects_other_architectures():
    class Roberta:
        model_type = "roberta"

    with pytest.raises(ValueError, match="roberta"):
        EncoderConfig.from_hf(Roberta())
    with pytest.raises(ValueError, match="lora_targets"):
        TINY.replace(lora_targets=("x",))


def test_more_layers_than_the_checkpoint_has_is_one_line():
    """Asking a 6-layer MiniLM for 12 layers listed ~96 missing tensors at load time."""
    import types

    six = types.SimpleNamespace(vocab_size=50, hidden_size=16, num_hidden_layers=6,
                                num_attention_heads=4, intermediate_size=32,
                                max_position_embeddings=24, type_vocab_size=2,
                                layer_norm_eps=1e-12, hidden_act="gelu")
    with pytest.raises(ValueError) as err:
        EncoderConfig.from_hf(six, num_layers=12)
    assert str(err.value) == ("config.encoder_layers=12 is more than the checkpoint's "
                              "num_hidden_layers=6; use 1 to 6 (0: all)")
    assert EncoderConfig.from_hf(six, num_layers=6).num_layers == 6
    assert EncoderConfig.from_hf(six, num_layers=2).num_layers == 2


@functools.partial(jax.jit, static_argnums=0)
def _run(module, params, *args, **kwargs):
    """Jitted apply, cached per module: one compile beats op-by-op dispatch."""
    return module.apply({"params": params}, *args, **kwargs)


@functools.partial(jax.jit, static_argnums=0)
def _init(module, rng, *args, **kwargs):
    return module.init(rng, *args, **kwargs)["params"]


def _base_and(cfg):
    """Random base params, and ``cfg``'s params with that base merged in."""
    tokens = _tokens()
    base = _init(BertEncoder(TINY), jax.random.key(1), **tokens)
    fresh = _init(BertEncoder(cfg), jax.random.key(2), **tokens)
    return tokens, base, merge_pretrained(fresh, base)


def test_lora_starts_as_identity_and_is_wired():
    cfg = TINY.replace(lora_rank=4, lora_targets=("q", "k", "v", "o"))
    tokens, base, params = _base_and(cfg)
    attention = params["layer_0"]["attention"]
    assert set(attention) == {"qkv", "out", "lora_q", "lora_k", "lora_v", "lora_o"}
    assert set(attention["lora_v"]) == {"lora_a", "lora_b"}
    want = _run(BertEncoder(TINY), base, **tokens)
    got = _run(BertEncoder(cfg), params, **tokens)
    chex.assert_trees_all_close(got, want, atol=1e-6)
    params["layer_0"]["attention"]["lora_v"]["lora_b"] = jnp.ones((4, TINY.hidden_size))
    moved = _run(BertEncoder(cfg), params, **tokens)
    assert np.max(np.abs(moved.hidden - want.hidden)) > 1e-3


def test_prompt_tokens_extend_sequence():
    cfg = TINY.replace(num_prompt_tokens=3)
    tokens, _, params = _base_and(cfg)
    out = _run(BertEncoder(cfg), params, **tokens)
    chex.assert_shape(out.hidden, (2, 8 + 3, TINY.hidden_size))
    np.testing.assert_array_equal(out.mask[:, :3], 1)
    np.testing.assert_array_equal(out.mask[:, 3:], tokens["attention_mask"])
    assert params["prompt"].shape == (3, TINY.hidden_size)


def test_prompt_starts_as_sampled_vocabulary_embeddings():
    # Lester et al. 2021 sec. 3.2 (PEFT's SAMPLE_VOCAB): each prompt vector is the pretrained
    # embedding of a token drawn at random, not a fresh N(0, 0.02) vector.
    cfg = TINY.replace(num_prompt_tokens=6)
    base = _init(BertEncoder(TINY), jax.random.key(1), **_tokens())
    table = np.asarray(base["embeddings"]["word_embeddings"]["embedding"])
    model = TextClassifier(cfg, num_classes=3)
    drawn = [np.asarray(vocab_sampled_prompt(
        init_classifier(model, jax.random.key(seed), 8, base)["encoder"]["prompt"], table))
        for seed in (0, 1)]
    for prompt in drawn:
        rows = [np.flatnonzero((table == row).all(axis=1)) for row in prompt]
        assert all(len(r) == 1 for r in rows), "every prompt vector is one vocabulary row"
    assert not np.array_equal(drawn[0], drawn[1])  # each seed draws its own tokens


def test_param_labels_train_only_the_chosen_groups():
    cfg = TINY.replace(lora_rank=2, num_prompt_tokens=2)
    model = TextClassifier(cfg, num_classes=3)
    params = init_classifier(model, jax.random.key(0), max_length=8)
    labels = param_labels(params, ("lora",))
    flat = {jax.tree_util.keystr(p): v for p, v in jax.tree_util.tree_leaves_with_path(labels)}
    trained = sorted(k for k, v in flat.items() if v == "train")
    assert trained and all("lora_" in k for k in trained)
    assert len(trained) == 2 * 2 * cfg.num_layers  # a and b, for q and v, in each layer
    opt = optax.multi_transform({"train": optax.adam(1e-2), "freeze": optax.set_to_zero()},
                                labels)
    grads = jax.tree.map(jnp.ones_like, params)
    updates, _ = jax.jit(opt.update)(grads, jax.jit(opt.init)(params), params)
    assert np.all(updates["encoder"]["layer_0"]["attention"]["qkv"]["kernel"] == 0)
    assert np.any(updates["encoder"]["layer_0"]["attention"]["lora_q"]["lora_b"] != 0)
    with pytest.raises(ValueError, match="choices"):
        param_labels(params, ("everything",))
    chex.assert_shape(_run(model, params, _tokens()), (2, 3))


# 'cls' runs in the param-labels test and 'mean' in the truncated-student test.
@pytest.mark.parametrize("head,width", [("cnn", 3), ("regression", 1)])
def test_text_classifier_heads(head, width):
    model = TextClassifier(TINY, num_classes=3, head=head)
    params = init_classifier(model, jax.random.key(0), max_length=8)
    assert set(params) == {"encoder", "head"}
    logits = _run(model, params, _tokens())
    chex.assert_shape(logits, (2, width))
    chex.assert_tree_all_finite(logits)


def test_truncated_pretrained_student_runs(minilm):
    cfg, params, tokenizer = minilm
    student_cfg = cfg.replace(num_layers=2)
    model = TextClassifier(student_cfg, num_classes=2, head="mean")
    student = init_classifier(model, jax.random.key(0), 16,
                              pretrained={k: v for k, v in params.items()
                                          if k not in {f"layer_{i}" for i in range(2, 6)}})
    assert "layer_2" not in student["encoder"]
    chex.assert_trees_all_equal(student["encoder"]["layer_1"], params["layer_1"])
    logits = _run(model, student, tokenize(tokenizer, ["good", "bad movie"], 16))
    chex.assert_shape(logits, (2, 2))


def test_merge_pretrained_rejects_foreign_leaves():
    params = {"layer_0": {"kernel": np.zeros((2, 3))}, "head": {"bias": np.ones(3)}}
    merged = merge_pretrained(params, {"layer_0": {"kernel": np.ones((2, 3))}})
    np.testing.assert_array_equal(merged["layer_0"]["kernel"], 1)
    np.testing.assert_array_equal(merged["head"]["bias"], 1)
    with pytest.raises(ValueError, match="layer_9"):
        merge_pretrained(params, {"layer_9": {}})
    with pytest.raises(ValueError, match=r"layer_0/kernel: pretrained shape \(3, 2\)"):
        merge_pretrained(params, {"layer_0": {"kernel": np.ones((3, 2))}})


def test_textcnn_ignores_padding():
    head = TextCNNHead(num_classes=2, widths=(2, 3), features=4)
    hidden = jax.random.normal(jax.random.key(0), (1, 5, 6))
    mask = jnp.array([[1, 1, 1, 0, 0]])
    params = _init(head, jax.random.key(1), hidden, mask)
    short = _run(head, params, hidden[:, :3], mask[:, :3])
    noisy = hidden.at[:, 3:].set(100.0)  # whatever sits under the padding must not matter
    chex.assert_trees_all_close(_run(head, params, noisy, mask), short, atol=1e-5)


def test_standalone_textcnn_student():
    model = TextCNN(vocab_size=TINY.vocab_size, num_classes=4, embed_dim=8, features=5)
    params = _init(model, jax.random.key(0), _tokens())
    assert set(params) == {"embed", "head"}
    chex.assert_shape(_run(model, params, _tokens()), (2, 4))


def test_gelu_is_the_exact_erf_form():
    # Equal to jax's erfc form up to float32 rounding; only the far negative tail, where
    # GELU is below 1e-6, differs in relative terms.
    x = jnp.linspace(-6.0, 6.0, 1001)
    np.testing.assert_allclose(gelu_erf(x), jax.nn.gelu(x, approximate=False), atol=1e-6)


def test_checkpoint_without_pooler_gets_a_fresh_one(minilm, minilm_tensors, caplog):
    """A BertModel saved with add_pooling_layer=False loads; its pooler starts as
    transformers initialises one, the same at every load."""
    tensors = {k: v for k, v in minilm_tensors.items() if not k.startswith("pooler.")}
    with caplog.at_level("WARNING"):
        params = hf_to_params(tensors, minilm[0])
    assert "no pooler" in caplog.text
    chex.assert_trees_all_equal(params["layer_5"], minilm[1]["layer_5"])
    kernel = params["pooler"]["kernel"]
    assert kernel.shape == (384, 384) and abs(float(kernel.std()) - 0.02) < 1e-3
    chex.assert_trees_all_equal(params["pooler"]["bias"], np.zeros(384, np.float32))
    chex.assert_trees_all_equal(hf_to_params(tensors, minilm[0])["pooler"], params["pooler"])
    del tensors["embeddings.LayerNorm.bias"]
    with pytest.raises(ValueError, match=r"missing .*embeddings\.LayerNorm\.bias"):
        hf_to_params(tensors, minilm[0])


def test_a_text_command_prints_no_pytorch_advice():
    """transformers gives only the tokenizer here: its import-time advice that PyTorch is
    missing went to every text command's stderr."""
    import subprocess
    import sys

    code = ("from models.text import load; "
            "load.load_tokenizer(load.resolve_model_dir(load.MINILM))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=str(Path(__file__).resolve().parents[1]))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "PyTorch was not found" not in done.stderr
