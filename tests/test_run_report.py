"""research/report.run_markdown: the one-run summary a workdir's results.md holds."""

from research import report


def _results(steps_per_second: float) -> dict:
    return {"config": {"algorithm": "naive", "dataset": "sentiment"},
            "train_seconds": 122.1, "compile_seconds": 4.3, "num_compiles": 6,
            "steps_per_second": steps_per_second}


def test_slow_steps_keep_their_rate():
    """A text run's half a step per second is not printed as 0."""
    assert report.run_markdown(_results(0.4915)).endswith("6 compiles, 0.49 steps/s\n")
    assert report.run_markdown(_results(2565.4)).endswith("6 compiles, 2565 steps/s\n")
