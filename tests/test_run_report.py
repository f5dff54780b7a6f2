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


def test_a_sweep_reports_each_swept_value_apart(digits_config, tmp_path):
    """Figures pooled over lambda 0 and 1e4 would mix two methods' results: each value gets
    its own summary (over its seeds), its own rows in results.md and its own panels."""
    import json

    import numpy as np

    from research import train

    digits_config.algorithm, digits_config.num_tasks = "ewc", 2
    digits_config.num_seeds, digits_config.plots = 2, True
    digits_config.sweep.ewc_lambda = "0.0,10000.0"
    results = train.train_and_evaluate(digits_config, str(tmp_path))
    runs = results["class_il"]["runs"]
    groups = results["class_il"]["by_hp"]
    assert [g["hp"] for g in groups] == [{"ewc_lambda": 0.0}, {"ewc_lambda": 10000.0}]
    assert [g["seeds"] for g in groups] == [[0, 1], [0, 1]]
    for group, own in zip(groups, (runs[:2], runs[2:]), strict=True):
        assert group["summary"]["ACC"]["mean"] == np.mean([r["ACC"] for r in own])
        np.testing.assert_allclose(group["accuracy_matrix"],
                                   np.mean([r["accuracy_matrix"] for r in own], 0), atol=1e-6)
    assert groups[0]["summary"]["BWT"] != groups[1]["summary"]["BWT"]
    table = (tmp_path / "results.md").read_text()
    assert "| class_il | ewc_lambda=0 |" in table and "| class_il | ewc_lambda=10000 |" in table
    assert "## task_il accuracy matrix (ewc_lambda=10000, mean over its seeds)" in table
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk["task_il"]["by_hp"][1]["hp"] == {"ewc_lambda": 10000.0}
    assert (tmp_path / "accuracy_matrix_class_il.png").exists()


def test_a_run_without_a_sweep_has_no_groups(digits_config, tmp_path):
    from research import train

    digits_config.num_tasks = 2
    results = train.train_and_evaluate(digits_config, str(tmp_path))
    assert "by_hp" not in results["class_il"]
    assert "| scenario | ACC |" in (tmp_path / "results.md").read_text()
