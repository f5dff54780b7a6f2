"""Baselines on the four sentiment domains: majority, TF-IDF + logistic regression, VADER.

    python -m scripts.text_baselines --output=out/baselines

Writes ``baselines.md`` (accuracy / macro-F1 per domain) and ``baselines.json``
under ``--output``. Needs the corpus cached by ``python -m scripts.fetch_data``
and ``vaderSentiment`` (extra ``text``). Takes ~80 s on 2 CPU cores, mostly
TF-IDF + logistic regression.
"""

from __future__ import annotations

import pathlib

from absl import flags

from research import baselines, report, workdirs
from research.data import sentiment
from scripts import cli

_OUTPUT = flags.DEFINE_string("output", None, "Directory for baselines.md and baselines.json.")
_DOMAINS = flags.DEFINE_multi_enum(
    "domain", list(sentiment.DOMAINS), sentiment.DOMAINS, "Domains to score."
)
_BASELINES = flags.DEFINE_multi_enum(
    "baseline", list(baselines.BASELINES), baselines.BASELINES, "Baselines to run."
)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the train/val/test split.")
_THRESHOLDS = flags.DEFINE_list(
    "thresholds", ["-0.5", "0.5"], "Mean-rating cut points: negative below, positive above."
)
_MAX_EXAMPLES = flags.DEFINE_integer(
    "max_examples_per_domain", None, "Subsample each domain (stratified) for a quick run."
)
_CACHE_DIR = flags.DEFINE_string("cache_dir", None, "Sentiment cache (default: fetch_data's).")
flags.mark_flag_as_required("output")


def _thresholds() -> tuple[float, float]:
    try:
        low, high = (float(v) for v in _THRESHOLDS.value)
    except ValueError:
        raise ValueError(f"--thresholds needs two numbers, got {','.join(_THRESHOLDS.value)}"
                         ) from None
    return low, high


def _run() -> None:
    low, high = _thresholds()
    output = pathlib.Path(workdirs.writable_directory(_OUTPUT.value, "--output folder"))
    splits = sentiment.load_domains(
        _DOMAINS.value, _SEED.value, (low, high), _MAX_EXAMPLES.value, _CACHE_DIR.value
    )
    results = baselines.run_baselines(splits, _BASELINES.value, _SEED.value, progress=True)
    sizes = {d: {k: len(getattr(s, k).texts) for k in s._fields} for d, s in splits.items()}
    table = baselines.markdown_table(results)
    caption = (
        f"Test accuracy / macro-F1, labels by mean rating < {low} / > {high}, "
        f"split seed {_SEED.value}.\n\n"
    )
    # Written to a temporary file and renamed, as every report is (docs/reliability.md).
    report.atomic_write(str(output / "baselines.md"), caption + table)
    record = {
        "seed": _SEED.value,
        "thresholds": [low, high],
        "sizes": sizes,
        "results": results,
    }
    report.write_json(str(output / "baselines.json"), record)
    print(caption + table, end="")


def main(argv: list[str]) -> None:
    cli.no_arguments(argv)
    cli.run_guarded(_run)


if __name__ == "__main__":
    cli.main(main)
