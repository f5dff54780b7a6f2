"""The continual-learning comparison: every method, three scenarios, seeds vmapped.

``run_suite`` runs class-IL and task-IL Split-Digits and domain-IL
Permuted-Digits with the shipped defaults and returns the markdown of
docs/results_continual.md, with the issue's acceptance checks and their outcome.
"""

from __future__ import annotations

import copy
import os

import algorithms
from research import compare, report
from research.configs import permuted_digits, split_digits

METHODS = ("naive", "joint", "cumulative", "ewc", "online_ewc", "si", "mas", "l2", "freeze",
           "lwf", "er", "er_balanced", "agem", "der", "derpp", "icarl", "clser",
           "generative_replay")
SCENARIOS = {  # name: (config module, scenario, results key)
    "class-IL Split-Digits": (split_digits, "class", "class_il"),
    "task-IL Split-Digits": (split_digits, "task", "task_il"),
    "domain-IL Permuted-Digits (10 tasks)": (permuted_digits, "domain", "domain_il"),
}
REGULARISERS = ("ewc", "online_ewc", "si", "mas")
REPLAY = ("er", "er_balanced", "der", "derpp", "clser")

NOTES = """
## How the methods read

- EWC / online EWC: diagonal Fisher from per-example gradients (empirical by
  default, `fisher_type=true` samples labels from the model), all of a task's
  rows (`fisher_samples=0`). Offline EWC keeps one Fisher and anchor per task.
  On a model made of dense layers alone (the MLP) the per-example squares are
  summed without forming each gradient: a dense layer's per-example gradient
  is the outer product of its input and output gradient, so the sum is one
  product per layer (`algorithms/dense_statistics.py`; the same values to
  5e-7, tested against per-example gradients). Other models (the CNN, the
  text encoder) take `jax.vmap` of `jax.grad`.
- SI integrates the task-loss gradient only; MAS uses per-example gradients of
  the squared L2 norm of the task-masked output (through the same identity on
  dense models).
- DER / DER++ store a row's logits at insertion, from the step's own forward
  pass, as in the paper.
- LwF distils the previous model within each old output head: in task-IL
  each finished task's classes apart, in class- and domain-IL the union of
  the old classes; its weight is the paper's lambda_o = 1 at T = 2 (a KL
  with no T^2 factor, as Avalanche and Mammoth have it).
- A-GEM's memory holds the earlier tasks only: a task's rows enter it (by
  reservoir sampling) when the task ends, so the first task trains
  unconstrained; the reference gradient takes up to `agem_ref_size` rows.
- Class-balanced ER keeps CBRS's rule: a class that has been the largest in
  the full buffer only ever replaces its own rows.
- iCaRL: herding exemplars, sigmoid distillation over the classes met so far,
  nearest-mean-of-exemplars prediction on the head's input features; class-
  and task-IL only.
- CLS-ER is evaluated with its stable EMA model.
- Generative replay: a VAE trained alongside on current and replayed inputs;
  replayed inputs are labelled by the previous model's softened scores (T=4)
  over the classes seen so far, weighted 1/t against the current task; in
  task-IL each old head is distilled apart and the heads averaged, as in van
  de Ven et al.'s code.
"""

def _table(rows: list[dict], key: str) -> str:
    body = [[r["algorithm"]] + [f"{r[m]:.3f} ± {r[m + '_std']:.3f}" for m in compare.METRICS]
            + [f"{r['train_seconds']:.1f}"] for r in rows if r["scenario"] == key]
    return report.markdown_table(["method", "ACC", "BWT", "forgetting", "train s"], body)


def acceptance(acc: dict[str, dict[str, float]]) -> list[tuple[str, bool]]:
    """(check, passed) for the targets of the issue, from {scenario: {method: ACC}}."""
    checks = []
    cls, task, dom = (acc.get(k, {}) for k in SCENARIOS)
    if {"naive", "ewc", "er", "derpp", "agem", "joint"} <= set(cls):
        checks.append(("class-IL: replay with 200 examples reaches ACC >= 0.85",
                       cls["er"] >= 0.85))
        checks.append(("class-IL: DER++ >= ER", cls["derpp"] >= cls["er"]))
        checks.append(("class-IL: A-GEM >= naive", cls["agem"] >= cls["naive"]))
        checks.append(("class-IL: joint is the upper bound",
                       all(cls["joint"] >= v for v in cls.values())))
        checks.append(("class-IL: regularisers stay near naive (within 0.1)",
                       all(abs(cls[m] - cls["naive"]) <= 0.1 for m in REGULARISERS if m in cls)))
    if {"naive", "er"} <= set(dom) and set(REGULARISERS) <= set(dom):
        best = max(dom[m] for m in REGULARISERS)
        for m in REGULARISERS:
            checks.append((f"domain-IL: {m} >= naive + 0.1", dom[m] >= dom["naive"] + 0.1))
        checks.append(("domain-IL: ER >= best regulariser + 0.05", dom["er"] >= best + 0.05))
    if "naive" in task:
        low = [m for m, v in task.items() if v < task["naive"] - 0.01]
        checks.append(("task-IL: no method more than 0.01 below naive"
                       + (f" (below: {', '.join(low)})" if low else ""), not low))
    return checks


def command_line(workdir: str, num_seeds: int, methods=METHODS, results: str = "") -> str:
    """The scripts.suite command line that runs ``run_suite`` with these arguments and
    writes the markdown to ``results`` (--overwrite left out: it changes no figure)."""
    picked = "" if list(methods) == list(METHODS) else f" --methods={','.join(methods)}"
    written = f" --results={results}" if results else ""
    return f"python -m scripts.suite --workdir={workdir} --num_seeds={num_seeds}{picked}{written}"


def run_suite(workdir: str, num_seeds: int, methods=METHODS, overwrite: bool = False,
              results: str = "") -> str:
    """Runs (or resumes) every scenario and returns the results markdown; ``overwrite``
    discards a method's earlier run of another config (another ``num_seeds``).
    ``results``: where the caller writes the markdown, for its 'Generated by' line."""
    sections, acc = [], {}
    for title, (module, scenario, key) in SCENARIOS.items():
        config = module.get_config()
        config.scenario = scenario
        config.num_seeds = num_seeds  # config.progress stays on: each method shows its bar
        runnable = [m for m in methods if scenario in algorithms.load(m).COMPATIBILITY]
        if not runnable:  # e.g. --methods=icarl in domain-IL
            sections.append(f"## {title}\n\nNone of the methods run supports it.\n")
            continue
        summary = compare.compare(copy.deepcopy(config), runnable,
                                  os.path.join(workdir, f"{config.dataset}_{scenario}"),
                                  overwrite)
        rows = summary["rows"]
        acc[title] = {r["algorithm"]: r["ACC"] for r in rows if r["scenario"] == key}
        sections.append(f"## {title}\n\n{_table(rows, key)}\n")
    checks = acceptance(acc)
    lines = [f"- {'PASS' if ok else 'FAIL'}: {text}" for text, ok in checks]
    text = (
        "# Continual-learning methods: measured\n\n"
        f"mean ± std over {num_seeds} seeds (vmapped in one program per method); "
        "MLP 2x400, Adam 1e-3, batch 32, 20 epochs per task, each method's default "
        "hyper-parameters (its HPARAMS), replay buffers of 200 examples. "
        "'train s' is wall time of all seeds together, compile time excluded, "
        "on the machine that ran it.\n\n"
        f"Generated by:\n\n    {command_line(workdir, num_seeds, methods, results)}\n\n"
        + "\n".join(sections)
        + "\n## Acceptance checks\n\n" + "\n".join(lines) + "\n" + NOTES)
    return text
