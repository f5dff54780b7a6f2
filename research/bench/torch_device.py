"""The device the PyTorch references run on (a sibling module of the scripts that use it).

The reference scripts run under another interpreter (torch's own virtual
environment), as files, so they import this file by its name. On a GPU each
clock read waits for the device's queue first: PyTorch launches its kernels
asynchronously, and a clock read without a wait times their launch only.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable


def add_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--float32_matmul_precision", choices=("highest", "high"),
                        default="highest", help="torch's; 'high' allows TF32 on a GPU, as "
                        "JAX's default precision does")


def open_device(args: argparse.Namespace):
    """The torch device of --device, with --float32_matmul_precision set; a GPU torch
    cannot reach is refused with the reason. A GPU is started here (its context and
    cuBLAS, which torch opens at the first use), before any clock, as JAX's backend is
    up before our clocks start: else the first run's wall time would count it."""
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device=cuda: torch {torch.__version__} sees no CUDA device "
                         f"(built for CUDA {torch.version.cuda}); run with --device=cpu")
    torch.set_float32_matmul_precision(args.float32_matmul_precision)
    device = torch.device(args.device)
    if device.type == "cuda":
        ones = torch.ones(2, 2, device=device)
        ones @ ones
        synchronizer(device)()
    return device


def synchronizer(device) -> Callable[[], None]:
    """Waits for the device's queued work, so a clock read after it counts that work."""
    import torch

    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def describe(device) -> dict:
    """What the JSON line records of the device and its float32 matmul precision."""
    import torch

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {"device": name, "float32_matmul_precision": torch.get_float32_matmul_precision()}
