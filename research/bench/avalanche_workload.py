"""The bench's Split-Digits workload in Avalanche (PyTorch), for the speed comparison.

Run by scripts.bench under an interpreter that has torch and avalanche-lib
(possibly another virtual environment, so this file imports neither jax nor
our packages): the same 8x8 digits, 70/30 stratified split, 5 tasks of 2
classes, MLP 2x400 initialised as ours, batch 32, Adam 1e-3 with its state reset
at each experience as ours is, the same epochs per task, on
--device (``cuda`` on a GPU machine, where the clocks wait for the device's
queue). After each experience it evaluates every test experience, as our
comparison does (the accuracy matrix). Prints one JSON line per strategy and
seed: wall and train seconds (imports left out, as ours are), steps/s overall
and in steady state (over every experience, and over those after the first),
and the final class-IL accuracy. (Avalanche's LwF reads task labels, so the
datasets carry task label 0.)

  python research/bench/avalanche_workload.py --epochs=50 --strategies=naive,ewc --seeds=3 \
      [--first_seed=0] [--device=cuda]
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
import warnings
from collections.abc import Callable

import torch_device  # this file's sibling: the scripts run as files, under torch's interpreter


def _torchvision_without_its_kernels() -> None:
    """Lets torchvision import when its compiled ops cannot load (a CUDA wheel beside CPU torch).

    torchvision registers fake kernels for nms/qnms unconditionally; declaring
    their schemas first is enough, and Avalanche never calls them here.
    """
    import glob
    import importlib.util
    import os

    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return
    libs = glob.glob(os.path.join(os.path.dirname(spec.origin), "_C*.so"))
    try:
        if libs:
            torch.ops.load_library(libs[0])
            return
    except OSError:
        pass
    lib = torch.library.Library("torchvision", "FRAGMENT")
    for op in ("nms", "qnms"):
        lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _KEEP.append(lib)


_KEEP: list = []  # the Library fragment must outlive the call

# What a run imports, imported before any clock starts: ours are imported before our
# comparison is timed, so neither side's end to end counts its imports.
_RUN_IMPORTS = ("avalanche.benchmarks.scenarios.dataset_scenario",
                "avalanche.benchmarks.utils.classification_dataset", "avalanche.core",
                "avalanche.evaluation.metrics", "avalanche.training.plugins",
                "avalanche.training.supervised", "sklearn.datasets", "sklearn.model_selection")


def _stream(seed: int, num_tasks: int):
    import torch
    from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
    from avalanche.benchmarks.utils.classification_dataset import (
        _make_taskaware_tensor_classification_dataset as tensor_dataset,
    )
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.3, stratify=y,
                                              random_state=seed)
    per = 10 // num_tasks

    def task_set(xs, ys, t):
        keep = (ys >= t * per) & (ys < (t + 1) * per)
        return tensor_dataset(torch.tensor(xs[keep]), torch.tensor(ys[keep]), task_labels=0)

    train = [task_set(x_tr, y_tr, t) for t in range(num_tasks)]
    test = [task_set(x_te, y_te, t) for t in range(num_tasks)]
    return benchmark_from_datasets(train=train, test=test)


def _strategy(name: str, model, epochs: int, batch: int, lr: float, plugins: list, device):
    import torch
    from avalanche.training import supervised

    opt = torch.optim.Adam(model.parameters(), lr=lr)
    common = dict(model=model, optimizer=opt, criterion=torch.nn.CrossEntropyLoss(),
                  train_mb_size=batch, train_epochs=epochs, eval_mb_size=256,
                  device=device, evaluator=_accuracy_matrix_evaluator(), plugins=plugins)
    if name == "naive":
        return supervised.Naive(**common)
    if name == "ewc":
        return supervised.EWC(ewc_lambda=100.0, **common)
    if name == "si":
        return supervised.SynapticIntelligence(si_lambda=1.0, **common)
    if name == "lwf":
        return supervised.LwF(alpha=1.0, temperature=2.0, **common)
    if name == "replay":
        return supervised.Replay(mem_size=200, **common)
    raise ValueError(f"--strategies: unknown {name!r}; choices naive, ewc, si, lwf, replay")


# flax's lecun_normal: a normal truncated at 2 std, scaled by this to keep variance 1/fan_in.
_TRUNCATED_STD = 0.87962566103423978


def _mlp(hidden: int):
    """The MLP initialised as ours (flax's Dense): kernels lecun_normal, biases zero.
    torch's default (uniform, a third of that variance, and uniform biases) would start
    the peer from another scale than ours."""
    import math

    import torch
    model = torch.nn.Sequential(torch.nn.Linear(64, hidden), torch.nn.ReLU(),
                                torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
                                torch.nn.Linear(hidden, 10))
    for layer in model:
        if isinstance(layer, torch.nn.Linear):
            std = 1.0 / math.sqrt(layer.in_features) / _TRUNCATED_STD
            torch.nn.init.trunc_normal_(layer.weight, std=std, a=-2 * std, b=2 * std)
            torch.nn.init.zeros_(layer.bias)
    return model


def train_experience(strategy, experience) -> None:
    """``strategy.train`` on one experience with a fresh optimizer state, as ours starts
    each task (``config.reset_optimizer``): Avalanche otherwise carries Adam's moments
    and step count over from the last experience."""
    strategy.train(experience, reset_optimizer_state=True)


def _steady_clock(sync: Callable[[], None]):
    """A plugin timing every training epoch but each experience's first (its warm-up), so
    consolidation before and after an experience is left out: per experience, the
    steady epochs' seconds and iterations (``rate`` over any of them). ``sync`` waits for
    the device before each clock read."""
    from avalanche.core import SupervisedPlugin

    class SteadyClock(SupervisedPlugin):
        def __init__(self):
            super().__init__()
            self.by_experience: list[list[float]] = []  # [seconds, iterations] each
            self._epoch, self._tic, self._iters = 0, 0.0, 0

        def before_training_exp(self, strategy, **kwargs):
            self._epoch = 0
            self.by_experience.append([0.0, 0])

        def before_training_epoch(self, strategy, **kwargs):
            sync()
            self._tic, self._iters = time.perf_counter(), 0

        def after_training_iteration(self, strategy, **kwargs):
            self._iters += 1

        def after_training_epoch(self, strategy, **kwargs):
            sync()
            if self._epoch > 0:
                self.by_experience[-1][0] += time.perf_counter() - self._tic
                self.by_experience[-1][1] += self._iters
            self._epoch += 1

        def rate(self, first: int = 0) -> float:
            """Steady steps/s over the experiences from index ``first`` on."""
            seconds = sum(s for s, _ in self.by_experience[first:])
            return sum(i for _, i in self.by_experience[first:]) / max(seconds, 1e-9)

    return SteadyClock()


def _accuracy_matrix_evaluator():
    """Avalanche's own test accuracy per experience, no logger: ``strategy.eval`` on the test
    stream after each experience then gives the accuracy matrix a continual comparison
    reads (ours evaluates every task after each one, as scripts.compare runs it)."""
    from avalanche.evaluation.metrics import accuracy_metrics
    from avalanche.training.plugins import EvaluationPlugin

    return EvaluationPlugin(accuracy_metrics(experience=True), loggers=[])


def _class_il_accuracy(last_metrics: dict) -> float:
    """The mean over the test experiences of their accuracy over all 10 classes (class-IL
    ACC), from the last evaluation's metrics."""
    accs = [v for k, v in last_metrics.items() if k.startswith("Top1_Acc_Exp/eval_phase/")]
    if not accs:
        raise RuntimeError(f"no per-experience test accuracy among {sorted(last_metrics)}")
    return sum(accs) / len(accs)


def run(name: str, epochs: int, batch: int, lr: float, hidden: int, threads: int, device,
        seed: int = 0) -> dict:
    """Trains one strategy over the stream, evaluating every test experience after each
    experience: wall time of the whole run (stream, training, evaluation) and the CPU time
    it took (every thread's), time inside train() calls, and the steady-state step rate."""
    import torch

    wall_start, cpu_start = time.perf_counter(), time.process_time()
    torch.manual_seed(seed)
    if threads:
        torch.set_num_threads(threads)
    sync = torch_device.synchronizer(device)
    bench = _stream(seed, 5)
    model = _mlp(hidden)
    clock = _steady_clock(sync)
    strategy = _strategy(name, model, epochs, batch, lr, [clock], device)
    iterations, seconds = 0, 0.0
    for experience in bench.train_stream:
        start = time.perf_counter()
        train_experience(strategy, experience)
        sync()
        seconds += time.perf_counter() - start
        iterations += epochs * -(-len(experience.dataset) // batch)
        strategy.eval(bench.test_stream)
    accuracy = _class_il_accuracy(strategy.evaluator.get_last_metrics())
    return {"strategy": name, "seed": seed, "iterations": iterations, "train_seconds": seconds,
            "steps_per_second": iterations / seconds,
            "steady_steps_per_second": clock.rate(),
            # where a method's penalty, teacher or replay is live, as in our steady rate
            "steady_after_first_steps_per_second": clock.rate(first=1),
            "class_il_ACC": accuracy, "wall_seconds": time.perf_counter() - wall_start,
            "cpu_seconds": time.process_time() - cpu_start,
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            **torch_device.describe(device)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--hidden", type=int, default=400)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--strategies", default="naive,ewc,si,lwf,replay")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--first_seed", type=int, default=0)
    torch_device.add_flags(parser)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    _torchvision_without_its_kernels()
    for module in _RUN_IMPORTS:
        importlib.import_module(module)
    device = torch_device.open_device(args)
    for name in args.strategies.split(","):
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            print(json.dumps(run(name, args.epochs, args.batch_size, args.lr, args.hidden,
                                 args.threads, device, seed)), flush=True)


if __name__ == "__main__":
    main()
