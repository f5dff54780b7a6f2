"""The peer comparison's terms: the PyTorch device and the targets read on each backend."""

import argparse
import sys
import types

import pytest

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
