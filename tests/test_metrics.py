import numpy as np
import pytest

from research import metrics

R = np.array([[0.9, 0.1, 0.2],
              [0.5, 0.8, 0.1],
              [0.4, 0.6, 0.7]])
B = np.array([0.1, 0.15, 0.05])


def test_figures_match_hand_computation():
    s = metrics.summarize(R, B)
    assert s["ACC"] == pytest.approx((0.4 + 0.6 + 0.7) / 3)
    assert s["BWT"] == pytest.approx(((0.4 - 0.9) + (0.6 - 0.8)) / 2)
    assert s["FWT"] == pytest.approx(((0.1 - 0.15) + (0.1 - 0.05)) / 2)
    assert s["forgetting"] == pytest.approx(((0.9 - 0.4) + (0.8 - 0.6)) / 2)
    assert s["learning_accuracy"] == pytest.approx((0.9 + 0.8 + 0.7) / 3)


def test_single_task_has_no_transfer():
    s = metrics.summarize(np.array([[0.8]]), np.array([0.1]))
    assert (s["BWT"], s["FWT"], s["forgetting"]) == (0.0, 0.0, 0.0)


def test_mean_std():
    assert metrics.mean_std([1.0, 3.0]) == {"mean": 2.0, "std": 1.0}


def test_routing_summary_counts_rows_sent_to_their_own_stage():
    summary = metrics.routing_summary(np.array([[8.0, 2.0], [1.0, 9.0]]))
    assert summary["confusion"] == [[8, 2], [1, 9]]
    assert summary["routed_right"] == pytest.approx(17 / 20)
    assert summary["routed_right_per_task"] == [0.8, 0.9]
