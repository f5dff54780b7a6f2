"""scripts.bench's choice of the peer's device and the targets it reads the ratios against."""

import pytest

from scripts import bench


def test_peer_runs_on_the_device_jax_computes_on():
    assert bench.peer_device("cpu", "auto") == ("cpu", "")
    assert bench.peer_device("gpu", "auto") == ("cuda", "")
    device, why = bench.peer_device("tpu", "auto")
    assert device is None and "no tpu device" in why
    assert bench.peer_device("tpu", "cpu") == ("cpu", "")  # asked for: compared anyway


@pytest.mark.parametrize("device, precision", [("cpu", "highest"), ("cuda", "high")])
def test_torch_matmul_precision_matches_jax_default_on_the_device(device, precision):
    assert bench._torch_device_args(device) == [
        f"--device={device}", f"--float32_matmul_precision={precision}"]


def _figures(ours_rate: float, peer_rate: float) -> tuple[dict, dict]:
    ours = {"steady_steps_per_second": ours_rate, "steady_turns": [ours_rate],
            "wall_seconds": 10.0, "class_il_ACC": 0.5}
    peer_run = {"seed": 0, bench.PEER_RATE: peer_rate}
    peer = {bench.PEER_RATE: peer_rate, "steady_steps_per_second": peer_rate,
            "class_il_ACC": 0.5, "wall_seconds": 50.0, "runs": [peer_run]}
    return ours, peer


@pytest.mark.parametrize("backend, target, met, e2e_target", [
    ("cpu", 4.0, True, 4.0), ("gpu", 20.0, False, None)])
def test_ratios_are_read_against_the_backend_targets(backend, target, met, e2e_target):
    ours, peer = _figures(2000.0, 400.0)  # 5x
    ratios = bench._ratios({"missing": [], "naive": ours}, {"naive": peer},
                           {"wall_seconds": 10.0, "cpu_seconds": 15.0}, backend)
    naive = ratios["steady"]["naive"]
    assert naive["ratio"] == pytest.approx(5.0)
    assert (naive["target"], naive["met"]) == (target, met)
    e2e = ratios["end_to_end"]
    assert e2e["target"] == e2e_target and e2e["ratio"] == pytest.approx(5.0)
    assert e2e["met"] is (None if e2e_target is None else True)
    line = bench._comparison_lines({"wall_seconds": 10.0, "cpu_seconds": 15.0,
                                    "rerun": {"wall_seconds": 5.0}}, e2e, 3)[2]
    assert line.endswith("(no target here)." if e2e_target is None else "(target 4x).")


def test_peer_is_skipped_with_the_reason_where_no_device_matches():
    peer = bench._Avalanche(1, ["naive"], 1, 0, (None, "PyTorch has no tpu device here"))
    peer.round(0)  # runs nothing
    assert peer.summary() == {"skipped": "PyTorch has no tpu device here"}
