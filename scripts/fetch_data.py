"""Set-up step: fetches and caches the data sets that do not ship as packages.

    python -m scripts.fetch_data                      # everything, default cache
    python -m scripts.fetch_data --cache_dir=DIR      # or set CONTINUAL_JAX_DATA

Today that is the human-rated sentiment corpus (``research/data/sentiment.py``):
pip downloads the ``vaderSentiment`` sdist, the corpus inside is verified by
SHA-256 and parsed into one ``.npz`` per domain. Nothing is fetched at run time.
Takes a few seconds; a second run finds the cache and does nothing.
"""

from __future__ import annotations

import os
import tarfile

from absl import flags

from research import workdirs
from research.data import sentiment
from scripts import cli

DATASETS = ("sentiment",)

_DATASETS = flags.DEFINE_multi_enum("dataset", list(DATASETS), DATASETS, "Data sets to fetch.")
_CACHE_DIR = flags.DEFINE_string(
    "cache_dir",
    None,
    "Where the sentiment cache goes (default: $CONTINUAL_JAX_DATA/sentiment "
    "or ~/.cache/continual_jax/sentiment).",
)
_SDIST = flags.DEFINE_string(
    "sdist", None, "Use this vaderSentiment-3.3.2.tar.gz instead of downloading it with pip."
)
_FORCE = flags.DEFINE_bool("force", False, "Fetch again even if the cache is there.")


def _fetch_sentiment() -> None:
    """Fetches the corpus; a bad --sdist is a one-line error, not tarfile's traceback."""
    sdist = _SDIST.value
    if sdist is not None and not os.path.isfile(sdist):
        raise FileNotFoundError(f"--sdist file {sdist!r} does not exist")
    if _FORCE.value or not sentiment.is_cached(_CACHE_DIR.value):  # it will be written
        where = _CACHE_DIR.value or str(sentiment.default_cache_dir())
        workdirs.writable_directory(os.path.expanduser(where),
                                    "--cache_dir" if _CACHE_DIR.value else "cache folder")
    try:
        target = sentiment.fetch(_CACHE_DIR.value, sdist_path=sdist, force=_FORCE.value)
    except tarfile.TarError as err:
        raise ValueError(f"--sdist file {sdist!r} is not a .tar.gz sdist ({err})") from None
    counts = {d: len(sentiment.read_domain(d, target).ids) for d in sentiment.DOMAINS}
    print(f"sentiment: cached in {target}: {counts}")


def main(argv: list[str]) -> None:
    cli.no_arguments(argv)
    if "sentiment" in _DATASETS.value:
        cli.run_guarded(_fetch_sentiment)


if __name__ == "__main__":
    cli.main(main)
