"""The peer comparison's terms: which PyTorch device the references run on, which of
our methods each Avalanche strategy is set against, and the targets the ratios are
read against on each backend (the issue's, on a 2-core CPU and on a GPU)."""

from __future__ import annotations

from research.bench import measure

OURS_FOR = {"naive": "naive", "ewc": "ewc", "si": "si", "lwf": "lwf", "replay": "er"}
# The targets on the 2-core CPU, and on a GPU, against the peer on the same GPU.
TARGETS = {"cpu": {"naive": 4.0, "ewc": 8.0, "si": 8.0, "replay": 5.0},
           "gpu": {"naive": 20.0, "ewc": 20.0, "si": 20.0, "lwf": 20.0, "replay": 20.0}}
# The peer's steady rate over the experiences after the first: ours is taken on the
# second task, with the method's penalty, teacher or replay live; over every
# experience the peer's would count its first, where they are not (no Fisher, no
# teacher, an empty buffer), and its replay trains on half as many rows there.
PEER_RATE = "steady_after_first_steps_per_second"
END_TO_END_TARGET = {"cpu": 4.0}
# torch's float32 matmul precision on each torch device, matching JAX's default there:
# JAX's float32 dots may use TF32 on a recent NVIDIA GPU, torch's by default do not.
TORCH_MATMUL_PRECISION = {"cpu": "highest", "cuda": "high"}


def peer_device(backend: str, requested: str) -> tuple[str | None, str]:
    """The torch device of the references for JAX's ``backend``, or None and why: the
    ratios compare the two libraries on the same hardware."""
    if requested != "auto":
        return requested, ""
    device = {"cpu": "cpu", "gpu": "cuda"}.get(backend)
    if device is None:
        return None, (f"PyTorch has no {backend} device here to run the same workload on; "
                      "pass --peer_device to compare with another device anyway")
    return device, ""


def torch_device_args(device: str) -> list[str]:
    """The reference scripts' device flags: the device, and torch's float32 matmul
    precision set to match JAX's default on that kind of device."""
    return [f"--device={device}", f"--float32_matmul_precision={TORCH_MATMUL_PRECISION[device]}"]


def end_to_end_round_ratios(cold_runs: list[dict], peer_runs: list[dict]) -> list[float]:
    """Per round i: the peer's whole comparison as its seed-i runs would take it (their
    wall time times the number of seeds) over our comparison's cold run i, which ran
    right after them."""
    seeds = sorted({r["seed"] for r in peer_runs})
    return [len(seeds) * sum(r["wall_seconds"] for r in peer_runs if r["seed"] == seed)
            / cold_runs[seed]["wall_seconds"] for seed in seeds if seed < len(cold_runs)]


def ratios(ours: dict, peer: dict, comparison: dict, backend: str) -> dict:
    """Steady-state step-rate ratios per method, and the whole comparison end to end, with
    the targets on this backend."""
    out: dict = {"steady": {}}
    for name in OURS_FOR:
        mine = ours.get(OURS_FOR[name])
        if mine and name in peer:
            ratio = mine["steady_steps_per_second"] / peer[name][PEER_RATE]
            target = TARGETS.get(backend, {}).get(name)
            out["steady"][name] = {
                "ours_steps_per_second": mine["steady_steps_per_second"],
                "avalanche_steps_per_second": peer[name][PEER_RATE],
                "avalanche_every_task_steps_per_second": peer[name]["steady_steps_per_second"],
                "ratio": ratio, "target": target,
                "round_ratios": measure.round_ratios(mine["steady_turns"], peer[name]["runs"],
                                                     PEER_RATE),
                "met": None if target is None else ratio >= target,
                "ours_ACC": mine.get("class_il_ACC"), "avalanche_ACC": peer[name]["class_il_ACC"]}
    both = [n for n in OURS_FOR if OURS_FOR[n] in ours and n in peer]
    if both:
        compared = {OURS_FOR[n] for n in both} == {k for k in ours if k != "missing"}
        mine = (comparison["wall_seconds"] if compared
                else sum(ours[OURS_FOR[n]]["wall_seconds"] for n in both))
        theirs = sum(peer[n]["wall_seconds"] for n in both)
        target = END_TO_END_TARGET.get(backend)
        out["end_to_end"] = {"methods": both, "ours_wall_seconds": mine,
                             "avalanche_wall_seconds": theirs, "ratio": theirs / mine,
                             "target": target,
                             "met": None if target is None else theirs / mine >= target}
        runs = [r for n in both for r in peer[n]["runs"]]
        if compared and "cold_runs" in comparison:
            out["end_to_end"]["round_ratios"] = end_to_end_round_ratios(
                comparison["cold_runs"], runs)
        if compared and all("cpu_seconds" in r for r in runs):
            out["end_to_end"].update(ours_cpu_seconds=comparison["cpu_seconds"],
                                     avalanche_cpu_seconds=sum(r["cpu_seconds"] for r in runs))
    return out
