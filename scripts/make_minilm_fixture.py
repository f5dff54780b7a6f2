"""Writes the PyTorch reference outputs our Flax encoder is tested against.

Runs in an environment with torch and transformers (not the project's own,
which has no torch): the encoder of ``--model_dir`` (all-MiniLM-L6-v2 by
default in tests) on a few fixed sentences, padded to one length so the
padding mask is exercised too. Saves token arrays, ``last_hidden_state``,
``pooler_output`` and the sentence-transformers embeddings (mask mean-pooled,
L2-normalised) to ``tests/fixtures/minilm_reference.npz``.

    python -m scripts.make_minilm_fixture --model_dir=DIR \
        [--output=tests/fixtures/minilm_reference.npz]
"""

from __future__ import annotations

from absl import app, flags

SENTENCES = (
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "Continual learning keeps old skills while it learns new ones!",
)
MAX_LENGTH = 16

_MODEL_DIR = flags.DEFINE_string("model_dir", None, "Hugging Face BERT directory.", required=True)
_OUTPUT = flags.DEFINE_string("output", "tests/fixtures/minilm_reference.npz", "Where to write.")


def main(argv: list[str]) -> None:
    del argv
    import numpy as np
    import torch
    from transformers import AutoTokenizer, BertModel

    tokenizer = AutoTokenizer.from_pretrained(_MODEL_DIR.value, local_files_only=True)
    model = BertModel.from_pretrained(_MODEL_DIR.value, local_files_only=True,
                                      attn_implementation="eager").eval()
    batch = tokenizer(list(SENTENCES), padding="max_length", truncation=True,
                      max_length=MAX_LENGTH, return_tensors="pt")
    with torch.no_grad():
        out = model(**batch)
    mask = batch["attention_mask"].unsqueeze(-1).float()
    mean = (out.last_hidden_state * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    embeddings = torch.nn.functional.normalize(mean, p=2, dim=1)
    np.savez_compressed(
        _OUTPUT.value,
        sentences=np.array(SENTENCES),
        input_ids=batch["input_ids"].numpy().astype(np.int32),
        attention_mask=batch["attention_mask"].numpy().astype(np.int32),
        token_type_ids=batch["token_type_ids"].numpy().astype(np.int32),
        last_hidden_state=out.last_hidden_state.numpy().astype(np.float32),
        pooler_output=out.pooler_output.numpy().astype(np.float32),
        embeddings=embeddings.numpy().astype(np.float32),
    )
    print(f"wrote {_OUTPUT.value}")


if __name__ == "__main__":
    app.run(main)
