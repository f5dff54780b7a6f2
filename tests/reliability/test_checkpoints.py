"""Corrupt, foreign and unwritable checkpoints; pruning; the file modes of reports."""

import json
import logging
import os
import stat

import jax.numpy as jnp
import pytest

from research import checkpoint, report, train
from tests.reliability import helpers


def test_corrupt_latest_checkpoint_falls_back(digits_config, tmp_path, caplog):
    first = train.train_and_evaluate(digits_config, str(tmp_path))
    latest = helpers.steps(tmp_path)[-1]
    helpers.corrupt(tmp_path / "checkpoints" / str(latest))
    with caplog.at_level(logging.WARNING):
        again = train.train_and_evaluate(digits_config, str(tmp_path))
    assert f"checkpoint step {latest}" in caplog.text and "unreadable" in caplog.text
    assert again["class_il"]["accuracy_matrix"] == first["class_il"]["accuracy_matrix"]
    assert again["final_loss"] == first["final_loss"]


def test_foreign_layout_version_is_refused(digits_config, tmp_path):
    train.train_and_evaluate(digits_config, str(tmp_path))
    for meta in (tmp_path / "checkpoints").glob("*/progress/metadata"):
        if meta.is_file():
            data = json.loads(meta.read_text())
            data["layout_version"] = 999
            meta.write_text(json.dumps(data))
    with pytest.raises(checkpoint.CheckpointError, match="layout version 999"):
        train.train_and_evaluate(digits_config, str(tmp_path))


def _two_steps(workdir) -> None:
    """Steps 1 and 2 of a small state, ``{"w": float32[4]}``."""
    with checkpoint.opened(str(workdir), 3) as mngr:
        for step in (1, 2):
            checkpoint.save(mngr, step, {"w": jnp.full(4, step, jnp.float32)}, {"step": step})


@pytest.mark.parametrize("like, found", [
    ({"w": jnp.zeros(6, jnp.float32)}, "w is float32[4] there, this run expects float32[6]"),
    ({"w": jnp.zeros(4, jnp.int32)}, "w is float32[4] there, this run expects int32[4]"),
    ({"w": jnp.zeros(4), "b": jnp.zeros(2)}, "b (float32[2]) is missing from it"),
])
def test_state_of_another_shape_is_refused_not_moved_aside(tmp_path, like, found):
    """A step that reads but does not fit the state (the code's layout changed) names the
    step and the first leaf that differs; moving every step aside would restart the run."""
    _two_steps(tmp_path)
    with checkpoint.opened(str(tmp_path), 3) as mngr:
        with pytest.raises(checkpoint.CheckpointError) as err:
            checkpoint.restore_latest(mngr, like)
    message = str(err.value)
    assert "checkpoint step 2" in message and found in message and "--overwrite" in message
    assert "\n" not in message
    assert helpers.steps(tmp_path) == [1, 2]
    assert not (tmp_path / "checkpoints_unreadable").exists()


def test_unreadable_state_metadata_falls_back(tmp_path, caplog):
    """A step whose state files are cut short is moved aside, and the one before it used."""
    _two_steps(tmp_path)
    helpers.corrupt(tmp_path / "checkpoints" / "2" / "state")
    with checkpoint.opened(str(tmp_path), 3) as mngr, caplog.at_level(logging.WARNING):
        state, progress = checkpoint.restore_latest(mngr, {"w": jnp.zeros(4, jnp.float32)})
    assert progress["step"] == 1 and state["w"].tolist() == [1.0] * 4
    assert "checkpoint step 2" in caplog.text and "unreadable" in caplog.text


def test_checkpoints_are_pruned(digits_config, tmp_path):
    digits_config.keep_checkpoints = 2
    train.train_and_evaluate(digits_config, str(tmp_path))
    assert len(helpers.steps(tmp_path)) == 2


def test_full_disk_during_save_keeps_previous(digits_config, tmp_path, monkeypatch):
    expected = train.train_and_evaluate(digits_config, str(tmp_path / "ref"))
    real_save, calls = checkpoint.manager, {"n": 0}

    def failing_manager(*args, **kwargs):
        mngr = real_save(*args, **kwargs)
        original = mngr.save

        def save(step, *a, **k):
            calls["n"] += 1
            if calls["n"] == 4:
                raise OSError(28, "No space left on device")
            return original(step, *a, **k)

        mngr.save = save
        return mngr

    monkeypatch.setattr(checkpoint, "manager", failing_manager)
    with pytest.raises(checkpoint.CheckpointError, match="No space left on device"):
        train.train_and_evaluate(digits_config, str(tmp_path / "run"))
    assert len(helpers.steps(tmp_path / "run")) == 3
    monkeypatch.setattr(checkpoint, "manager", real_save)
    resumed = train.train_and_evaluate(digits_config, str(tmp_path / "run"))
    assert resumed["class_il"]["accuracy_matrix"] == expected["class_il"]["accuracy_matrix"]


def test_write_failing_in_the_background_is_reported_and_resumes(digits_config, tmp_path,
                                                                 monkeypatch):
    """Saves finish on orbax's background thread: a failure there surfaces at the next save
    (or the end of the run) as a CheckpointError, and the steps before it stay usable."""
    from orbax.checkpoint._src.path import atomicity

    expected = train.train_and_evaluate(digits_config, str(tmp_path / "ref"))
    real_finalize = atomicity.AtomicRenameTemporaryPath.finalize

    def finalize(self, *args, **kwargs):
        if self.get_final().name == "3":  # the third checkpoint's rename into place
            raise OSError(28, "No space left on device")
        return real_finalize(self, *args, **kwargs)

    monkeypatch.setattr(atomicity.AtomicRenameTemporaryPath, "finalize", finalize)
    with pytest.raises(checkpoint.CheckpointError, match="No space left on device"):
        train.train_and_evaluate(digits_config, str(tmp_path / "run"))
    assert len(helpers.steps(tmp_path / "run")) == 2
    monkeypatch.setattr(atomicity.AtomicRenameTemporaryPath, "finalize", real_finalize)
    resumed = train.train_and_evaluate(digits_config, str(tmp_path / "run"))
    assert resumed["class_il"]["accuracy_matrix"] == expected["class_il"]["accuracy_matrix"]


def test_reports_get_the_mode_a_plain_file_gets(tmp_path, monkeypatch):
    """Written through a temporary file, which is created owner-only, yet readable by
    whoever the process's umask lets read its other files (a shared runs folder). The
    umask is set to the common 022, under which owner-only would be visible."""
    monkeypatch.setattr(report, "_UMASK", 0o022)
    earlier = os.umask(0o022)
    try:
        report.write_json(str(tmp_path / "results.json"), {"ACC": 1.0})
        with open(tmp_path / "plain.txt", "w") as f:
            f.write("x")
    finally:
        os.umask(earlier)
    mode = lambda name: stat.S_IMODE(os.stat(tmp_path / name).st_mode)
    assert mode("results.json") == mode("plain.txt") == 0o644
