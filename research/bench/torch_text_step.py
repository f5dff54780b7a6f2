"""The PyTorch reference for scripts.bench_text_step: one BertForSequenceClassification step.

Run by scripts.bench under an interpreter that has torch and transformers
(possibly another virtual environment, so this file imports neither jax nor
our packages): the same encoder weights, batch 32 x length 64 of random
token ids, 3 classes, AdamW (2e-5, weight decay 0.01), dropout off as in our
step, all parameters trained; with --bfloat16 the forward runs under
``torch.autocast`` in bfloat16 (PyTorch's mixed precision, float32 weights and
optimizer state), the counterpart of our ``--compute_dtype=bfloat16``. It
runs on --device (``cuda`` on a GPU machine; each step waits for the device). Prints
one JSON line: median wall and CPU seconds per step over --steps timed steps
after one warm-up step, and the float32 FLOP/s of a large matmul on the same
device in the same process.

  python research/bench/torch_text_step.py --model_dir=DIR [--steps=10 --threads=0 --bfloat16]
      [--device=cuda]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import time

import torch_device  # this file's sibling: the scripts run as files, under torch's interpreter


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _matmul_flops(torch, device, size: int, repeats: int = 5) -> float:
    """Best-of-repeats float32 FLOP/s of one large matmul: PyTorch's own peak on the device,
    at the float32 matmul precision the step runs at."""
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    sync = torch_device.synchronizer(device)
    a @ b
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - start)
    return 2.0 * size ** 3 / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0, help="0: torch's default")
    parser.add_argument("--bfloat16", action="store_true", help="autocast the forward")
    torch_device.add_flags(parser)
    parser.add_argument("--matmul_size", type=int, default=2048)
    args = parser.parse_args()

    import numpy as np
    import torch
    from transformers import BertForSequenceClassification

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch_device.open_device(args)
    model = BertForSequenceClassification.from_pretrained(
        args.model_dir, num_labels=3, local_files_only=True, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0).to(device)
    model.train()
    # decay on matrices only, as research/adam.adamw (biases and LayerNorm left out)
    matrices = [p for p in model.parameters() if p.ndim > 1]
    vectors = [p for p in model.parameters() if p.ndim <= 1]
    optimizer = torch.optim.AdamW([{"params": matrices}, {"params": vectors, "weight_decay": 0.0}],
                                  lr=2e-5, weight_decay=0.01)
    rng = np.random.default_rng(0)
    ids = torch.tensor(rng.integers(1000, model.config.vocab_size,
                                    (args.batch_size, args.length)), device=device)
    labels = torch.tensor(rng.integers(0, 3, args.batch_size), device=device)
    mask = torch.ones_like(ids)
    autocast = ((lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if args.bfloat16
                else contextlib.nullcontext)

    def step() -> float:
        optimizer.zero_grad()
        with autocast():
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        return float(loss)  # waits for the step's queued work on a GPU

    step()
    walls, cpus = [], []
    for _ in range(args.steps):
        wall, cpu = time.perf_counter(), _cpu_seconds()
        step()
        walls.append(time.perf_counter() - wall)
        cpus.append(_cpu_seconds() - cpu)
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                      "attention": model.config._attn_implementation,
                      "compute_dtype": "bfloat16" if args.bfloat16 else "float32",
                      "step_seconds_median": statistics.median(walls),
                      "step_seconds_min": min(walls),
                      "cpu_seconds_median": statistics.median(cpus),
                      **torch_device.describe(device),
                      "matmul_flops_per_second": _matmul_flops(torch, device,
                                                               args.matmul_size)}))


if __name__ == "__main__":
    main()
