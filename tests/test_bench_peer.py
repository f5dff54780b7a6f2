"""The peer comparison's terms: the PyTorch device and the targets read on each backend."""

import argparse
import importlib
import json
import os
import subprocess
import sys
import types

import jax
import jax.numpy as jnp
import pytest

import research.bench
from models.mlp import MLP
from research.bench import peer


def test_peer_runs_on_the_device_jax_computes_on():
    assert peer.peer_device("cpu", "auto") == ("cpu", "")
    assert peer.peer_device("gpu", "auto") == ("cuda", "")
    device, why = peer.peer_device("tpu", "auto")
    assert device is None and "no tpu device" in why
    assert peer.peer_device("tpu", "cpu") == ("cpu", "")  # asked for: compared anyway


@pytest.mark.parametrize("device, precision", [("cpu", "highest"), ("cuda", "high")])
def test_torch_matmul_precision_matches_jax_default_on_the_device(device, precision):
    assert peer.torch_device_args(device) == [
        f"--device={device}", f"--float32_matmul_precision={precision}"]


def _figures(ours_rate: float, peer_rate: float) -> tuple[dict, dict]:
    ours = {"steady_steps_per_second": ours_rate, "steady_turns": [ours_rate],
            "wall_seconds": 10.0, "class_il_ACC": 0.5}
    run = {"seed": 0, peer.PEER_RATE: peer_rate}
    theirs = {peer.PEER_RATE: peer_rate, "steady_steps_per_second": peer_rate,
              "class_il_ACC": 0.5, "wall_seconds": 50.0, "runs": [run]}
    return ours, theirs


@pytest.mark.parametrize("backend, target, met, e2e_target", [
    ("cpu", 4.0, True, 4.0), ("gpu", 20.0, False, None)])
def test_ratios_are_read_against_the_backend_targets(backend, target, met, e2e_target):
    ours, theirs = _figures(2000.0, 400.0)  # 5x
    ratios = peer.ratios({"missing": [], "naive": ours}, {"naive": theirs},
                         {"wall_seconds": 10.0, "cpu_seconds": 15.0}, backend)
    naive = ratios["steady"]["naive"]
    assert naive["ratio"] == pytest.approx(5.0)
    assert (naive["target"], naive["met"]) == (target, met)
    e2e = ratios["end_to_end"]
    assert e2e["ratio"] == pytest.approx(5.0) and e2e["target"] == e2e_target
    assert e2e["met"] is (None if e2e_target is None else True)


def test_end_to_end_rounds_pair_the_peer_seed_with_our_cold_run_after_it():
    ours, theirs = _figures(2000.0, 400.0)
    theirs["runs"] = [{"seed": s, peer.PEER_RATE: 400.0, "wall_seconds": w}
                      for s, w in ((0, 30.0), (1, 36.0))]
    cold = [{"wall_seconds": 20.0}, {"wall_seconds": 18.0}, {"wall_seconds": 50.0}]
    ratios = peer.ratios({"missing": [], "naive": ours}, {"naive": theirs},
                         {"wall_seconds": 20.0, "cpu_seconds": 30.0, "cold_runs": cold}, "cpu")
    # two seeds: each round's peer wall counts twice, over our run right after it
    assert ratios["end_to_end"]["round_ratios"] == pytest.approx([3.0, 4.0])


class _FakeTorch:
    """What torch_device calls of torch, recording the GPU work it is given."""

    __version__, version = "0", types.SimpleNamespace(cuda="12")

    def __init__(self):
        self.calls: list[str] = []
        self.cuda = types.SimpleNamespace(is_available=lambda: True,
                                          synchronize=lambda: self.calls.append("synchronize"))

    def set_float32_matmul_precision(self, precision):
        self.calls.append(f"precision {precision}")

    def device(self, name):
        return types.SimpleNamespace(type=name)

    def ones(self, *shape, device):
        self.calls.append(f"ones on {device.type}")
        return _FakeTensor(self.calls)


class _FakeTensor:
    def __init__(self, calls):
        self.calls = calls

    def __matmul__(self, other):
        self.calls.append("matmul")
        return self


@pytest.mark.parametrize("device, started", [
    ("cuda", ["precision high", "ones on cuda", "matmul", "synchronize"]),
    ("cpu", ["precision high"])])
def test_a_gpu_is_started_before_the_references_clocks(monkeypatch, device, started):
    # torch opens a GPU's context and cuBLAS at their first use: inside the first run's
    # wall time unless open_device has used them (JAX's backend is up before our clocks).
    from research.bench import torch_device

    fake = _FakeTorch()
    monkeypatch.setitem(sys.modules, "torch", fake)
    args = argparse.Namespace(device=device, float32_matmul_precision="high")
    assert torch_device.open_device(args).type == device
    assert fake.calls == started


def test_end_to_end_of_some_methods_sums_their_walls_in_our_comparison():
    # Avalanche ran naive only: ours is naive's part of the comparison, not all of it, and
    # neither the rounds nor the CPU time (both of the whole comparison) are set against it.
    naive, theirs = _figures(2000.0, 400.0)
    ewc = {**naive, "wall_seconds": 30.0}
    theirs["runs"][0]["cpu_seconds"] = 60.0
    comparison = {"wall_seconds": 40.0, "cpu_seconds": 70.0, "cold_runs": [{"wall_seconds": 40.0}]}
    e2e = peer.ratios({"missing": [], "naive": naive, "ewc": ewc}, {"naive": theirs},
                      comparison, "cpu")["end_to_end"]
    assert (e2e["methods"], e2e["ours_wall_seconds"], e2e["ratio"]) == (["naive"], 10.0, 5.0)
    assert "round_ratios" not in e2e and "ours_cpu_seconds" not in e2e


def _avalanche_workload(monkeypatch):
    """research/bench/avalanche_workload.py as its interpreter imports it (a file beside
    torch_device.py); torch and avalanche are imported only inside its functions."""
    monkeypatch.syspath_prepend(os.path.dirname(research.bench.__file__))
    return importlib.import_module("avalanche_workload")


def test_the_peer_resets_its_optimizer_at_each_experience_as_ours_does(monkeypatch):
    # Ours starts each task with a fresh Adam (config.reset_optimizer); Avalanche keeps
    # its moments and step count across experiences unless train() is told otherwise.
    calls = []
    strategy = types.SimpleNamespace(train=lambda *args, **kwargs: calls.append((args, kwargs)))
    _avalanche_workload(monkeypatch).train_experience(strategy, "experience 1")
    assert calls == [(("experience 1",), {"reset_optimizer_state": True})]


_PEER_MODEL_AND_OPTIMIZER = """
import json, sys, warnings
warnings.filterwarnings("ignore")
import avalanche_workload as aw, torch
aw._torchvision_without_its_kernels()
torch.manual_seed(0)
model = aw._mlp(400)
layers = [m for m in model if isinstance(m, torch.nn.Linear)]
start = {"std": [float(m.weight.std()) for m in layers],
         "bias": [float(m.bias.abs().max()) for m in layers]}
strategy = aw._strategy("naive", model, 1, 32, 1e-3, [], torch.device("cpu"))
for experience in list(aw._stream(0, 5).train_stream)[:2]:
    aw.train_experience(strategy, experience)
steps = float(next(iter(strategy.optimizer.state.values()))["step"])
print(json.dumps({**start, "adam_steps": steps}))
"""


@pytest.mark.skipif(not os.environ.get("BENCH_TORCH_PYTHON"),
                    reason="BENCH_TORCH_PYTHON names no interpreter with torch and avalanche-lib")
def test_the_peer_model_starts_at_our_scale_and_adam_restarts_per_experience():
    proc = subprocess.run([os.environ["BENCH_TORCH_PYTHON"], "-c", _PEER_MODEL_AND_OPTIMIZER],
                          cwd=os.path.dirname(research.bench.__file__), capture_output=True,
                          text=True, check=True)
    peer_figures = json.loads(proc.stdout.splitlines()[-1])
    ours = MLP(num_classes=10).init(jax.random.PRNGKey(0), jnp.ones((1, 64)))["params"]
    our_std = [float(jnp.std(ours[k]["kernel"])) for k in ("Dense_0", "Dense_1", "head")]
    assert peer_figures["std"] == pytest.approx(our_std, rel=0.05)
    assert peer_figures["bias"] == [0.0, 0.0, 0.0]
    assert peer_figures["adam_steps"] == 8  # the second experience's 8 steps alone
