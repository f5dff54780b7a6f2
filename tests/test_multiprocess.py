"""Two processes on localhost joined by jax.distributed (gloo) compute what one does."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import chex
import numpy as np
import pytest

from tests.reliability import helpers
from tests.test_distributed import (
    PROGRAM,
    ROOT,
    assert_runs_agree,
    expected_grad,
    run_args,
    subprocess_env,
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run_pair(command: list[str], extra_env: dict | None = None,
              id_flag: bool = False, returncode: int = 0) -> list[str]:
    """Starts process 1 then process 0 of a 2-process job; both must exit with
    ``returncode``. Returns their stdouts (their stderrs, when they are to fail)."""
    port = _free_port()
    procs = []
    for pid in (1, 0):
        env = {**subprocess_env(1), **(extra_env or {}),
               "CHECK_COORDINATOR": f"127.0.0.1:{port}", "CHECK_PROCESS_ID": str(pid)}
        args = command + ([f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2",
                           f"--process_id={pid}"] if id_flag else [])
        procs.append(subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    outs = []
    for proc in reversed(procs):
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == returncode, err[-3000:]
        outs.append(out if returncode == 0 else err)
    return outs


def test_two_processes_share_a_sharded_step():
    outs = _run_pair([sys.executable, "-c", PROGRAM])
    for out in outs:
        result = json.loads(out.strip().splitlines()[-1])
        assert result["devices"] == 2 and result["replicated"] and result["all_reduce"]
        chex.assert_trees_all_close(np.asarray(result["grad"]), expected_grad(), atol=1e-5)


def test_a_workdir_refused_by_process_0_fails_every_process_in_one_line(tmp_path):
    workdir = tmp_path / "w"
    workdir.mkdir()
    (workdir / "config.json").write_text(json.dumps({"learning_rate": 1.0}))
    (workdir / "results.json").write_text("{}")  # a run of another config is here
    errs = _run_pair(run_args(workdir), id_flag=True, returncode=2)
    for err in errs:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "holds a run of a different config" in lines[0], err[-2000:]


@pytest.mark.parametrize("flags,env", [
    (["--num_processes=2", "--process_id=1"], {}),
    ([], {"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "1"})])
def test_a_process_given_its_id_but_no_coordinator_fails_in_one_line(tmp_path, flags, env):
    """Not run alone as a process 0 that trains and writes the reports."""
    workdir = tmp_path / "w"
    proc = subprocess.run(run_args(workdir, epochs=1) + flags, env={**subprocess_env(1), **env},
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1 and "coordinator_address" in lines[0], proc.stderr[-2000:]
    assert not (workdir / "results.json").exists()


@pytest.mark.slow
def test_two_process_finetune_matches_single_process(tmp_path):
    """scripts.finetune joins processes as scripts.run does: each one used to fine-tune
    alone and write the reports."""
    command = [sys.executable, "-m", "scripts.finetune",
               "--config=research/configs/sentiment_finetune.py:runlocal"]
    subprocess.run(command + [f"--workdir={tmp_path / 'single'}"], env=subprocess_env(1),
                   cwd=ROOT, capture_output=True, text=True, timeout=600, check=True)
    outs = _run_pair(command + [f"--workdir={tmp_path / 'pair'}"], id_flag=True)
    single = json.loads((tmp_path / "single" / "results.json").read_text())
    pair = json.loads((tmp_path / "pair" / "results.json").read_text())
    assert (single["num_processes"], pair["num_processes"]) == (1, 2)
    np.testing.assert_allclose(pair["domain_il"]["accuracy_matrix"],
                               single["domain_il"]["accuracy_matrix"], atol=0.01)
    assert [json.loads(o.strip().splitlines()[-1])["test_accuracy"] for o in outs] == [
        json.loads(outs[0].strip().splitlines()[-1])["test_accuracy"]] * 2


@pytest.mark.slow
def test_two_process_run_matches_single_process(tmp_path):
    single = tmp_path / "single"
    subprocess.run(run_args(single), env=subprocess_env(1), cwd=ROOT, capture_output=True,
                   text=True, timeout=600, check=True)
    _run_pair(run_args(tmp_path / "pair"), id_flag=True)
    assert_runs_agree(single, tmp_path / "pair")
    assert (tmp_path / "pair" / "checkpoints").is_dir()  # orbax wrote from both processes
    # --overwrite: process 0 alone clears the workdir, the other waits; the rerun still agrees
    (tmp_path / "pair" / "stale.txt").write_text("from the last run")
    _run_pair(run_args(tmp_path / "pair") + ["--overwrite"], id_flag=True)
    assert not (tmp_path / "pair" / "stale.txt").exists()
    assert_runs_agree(single, tmp_path / "pair")
    # a corrupt newest step: both processes fall back to the same older one, process 0
    # alone moves it aside, and the retrained end agrees
    newest = helpers.steps(tmp_path / "pair")[-1]
    helpers.corrupt(tmp_path / "pair" / "checkpoints" / str(newest))
    _run_pair(run_args(tmp_path / "pair"), id_flag=True)
    assert len(list((tmp_path / "pair" / "checkpoints_unreadable").iterdir())) == 1
    assert_runs_agree(single, tmp_path / "pair")
    # each process builds only its own devices' rows of the training pool
    _run_pair(run_args(tmp_path / "rows") + ["--config.shard_data=True"], id_flag=True)
    assert_runs_agree(single, tmp_path / "rows")
    # batches streamed from host memory: each process sends its devices their slices
    streamed = ["--config.stream_chunk_steps=4"]
    subprocess.run(run_args(tmp_path / "stream_single") + streamed, env=subprocess_env(1),
                   cwd=ROOT, capture_output=True, text=True, timeout=600, check=True)
    _run_pair(run_args(tmp_path / "stream_pair") + streamed, id_flag=True)
    assert_runs_agree(tmp_path / "stream_single", tmp_path / "stream_pair")


@pytest.mark.slow
def test_two_processes_split_the_runs(tmp_path):
    """2 seeds with config.shard_runs: each process trains one; the results are the
    single-process run's."""
    seeds = ["--config.num_seeds=2"]
    subprocess.run(run_args(tmp_path / "single") + seeds, env=subprocess_env(1), cwd=ROOT,
                   capture_output=True, text=True, timeout=600, check=True)
    _run_pair(run_args(tmp_path / "pair") + seeds + ["--config.shard_runs=True"],
              id_flag=True)
    assert_runs_agree(tmp_path / "single", tmp_path / "pair")
