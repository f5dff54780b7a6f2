"""Bench reports side by side: loading, the table, the ratios plot and the command."""

import json
import subprocess
import sys

import pytest

from research.bench import peer, runs


def _report(backend: str, ours_rate: float, peer_rate: float, avalanche: bool = True) -> dict:
    """A bench.json as scripts.bench writes it, its ratios made by peer.ratios itself."""
    ours = {"missing": [], "naive": {"steady_steps_per_second": ours_rate,
                                     # rounds above the ratio of the medians
                                     "steady_turns": [ours_rate * 1.1, ours_rate * 1.2],
                                     "wall_seconds": 10.0, "class_il_ACC": 0.2}}
    theirs = {"naive": {peer.PEER_RATE: peer_rate, "steady_steps_per_second": peer_rate,
                        "class_il_ACC": 0.19, "wall_seconds": 50.0,
                        "runs": [{"seed": s, peer.PEER_RATE: peer_rate} for s in (0, 1)]}}
    comparison = {"wall_seconds": 10.0, "cpu_seconds": 15.0, "rerun": {"wall_seconds": 7.0}}
    ratios = peer.ratios(ours, theirs if avalanche else {"skipped": "no torch"},
                         comparison, backend)
    return {"machine": {"cpu_model": "EPYC", "cpu_count": 2, "backend": backend,
                        "devices": [f"{backend}:0"], "jax": "0.10.2"},
            "config": {"seeds": 5}, "ours": ours, "comparison": comparison,
            "step_efficiency": {"matmul_flops_per_second": 2e11, "fraction_of_matmul": 0.45},
            "ratios": ratios, "text_step": {"float32": {"skipped": "--notext_step"}}}


def _write(directory, result: dict) -> str:
    directory.mkdir()
    (directory / "bench.json").write_text(json.dumps(result))
    return str(directory)


def test_load_takes_an_output_directory_or_its_json(tmp_path):
    path = _write(tmp_path / "cpu_run", _report("cpu", 2000.0, 400.0))
    label, result = runs.load(path)
    assert label == "cpu_run" and result["machine"]["backend"] == "cpu"
    assert runs.load(path + "/bench.json")[0] == "cpu_run"


def test_load_names_the_file_and_what_is_wrong(tmp_path):
    with pytest.raises(runs.BenchFileError, match="missing.json: cannot be read"):
        runs.load(str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(runs.BenchFileError, match="bad.json: not JSON"):
        runs.load(str(tmp_path / "bad.json"))
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(runs.BenchFileError, match="binary.json: not JSON"):
        runs.load(str(tmp_path / "binary.json"))
    (tmp_path / "other.json").write_text(json.dumps({"machine": {}, "ours": {}}))
    with pytest.raises(runs.BenchFileError, match="lacks the field.s. step_efficiency, ratios"):
        runs.load(str(tmp_path / "other.json"))


def test_table_sets_runs_side_by_side_with_their_targets():
    table = runs.figures_table([("cpu", _report("cpu", 2000.0, 400.0)),
                                ("gpu", _report("gpu", 2000.0, 400.0)),
                                ("no peer", _report("cpu", 2000.0, 400.0, avalanche=False))])
    lines = {line.split(" | ")[0].strip("| "): line.split(" | ")[1:]
             for line in table.splitlines()}
    assert lines["figure"] == ["cpu", "gpu", "no peer", "target |"]
    # 5x meets the CPU's 4x (bold), not the GPU's 20x; the run without Avalanche has none.
    assert lines["naive: steady steps/s, ours / Avalanche"] == [
        "**5.00x** = 2000 / 400.0", "5.00x = 2000 / 400.0", "-", "4x / 20x |"]
    assert lines["end to end, compile included (s)"][0] == "**5.00x** = 10.0 / 50.0 s"
    assert lines["naive step, share of matmul"] == ["45.0%", "45.0%", "45.0%", "50% |"]
    assert lines["5 seeds, vmapped / separate (s)"] == ["-", "-", "-", " |"]
    assert lines["naive: class-IL ACC, ours / Avalanche"][0] == "0.200 / 0.190"


def test_ratios_figure_is_drawn_only_where_avalanche_ran(tmp_path):
    path = tmp_path / "ratios.png"
    assert runs.ratios_figure([("cpu", _report("cpu", 2000.0, 400.0)),
                               ("no peer", _report("cpu", 2000.0, 400.0, avalanche=False))],
                              str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not runs.ratios_figure([("no peer", _report("cpu", 1.0, 1.0, avalanche=False))],
                                  str(tmp_path / "none.png"))
    assert not (tmp_path / "none.png").exists()


def test_command_prints_the_table_and_refuses_bad_input_in_one_line(tmp_path):
    path = _write(tmp_path / "run_a", _report("cpu", 2000.0, 400.0))
    (tmp_path / "gpu").mkdir()
    same_name = _write(tmp_path / "gpu" / "run_a", _report("gpu", 9000.0, 400.0))
    plot = tmp_path / "ratios.png"
    done = subprocess.run([sys.executable, "-m", "scripts.bench_compare", path, same_name,
                           f"--plot={plot}"], capture_output=True, text=True, check=True)
    # Folders of the same name are told apart by the paths given.
    assert f"| figure | {path} | {same_name} | target |" in done.stdout and plot.exists()
    failed = subprocess.run([sys.executable, "-m", "scripts.bench_compare",
                             str(tmp_path / "nowhere")], capture_output=True, text=True)
    assert failed.returncode == 2
    assert failed.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'nowhere'}: cannot be read (No such file or directory)"]


def test_share_of_matmul_is_read_against_the_cpu_target_only():
    fast_cpu = _report("cpu", 2000.0, 400.0)
    fast_cpu["step_efficiency"]["fraction_of_matmul"] = 0.55
    rows = lambda table: {line.split(" | ")[0].strip("| "): line.split(" | ")[1:]
                          for line in table.splitlines()}
    cpu = rows(runs.figures_table([("cpu", fast_cpu), ("slow", _report("cpu", 2000.0, 400.0))]))
    assert cpu["naive step, share of matmul"] == ["**55.0%**", "45.0%", "50% |"]
    # On a GPU there is no target (bench.md says so), and nothing is met.
    fast_gpu = _report("gpu", 2000.0, 400.0)
    fast_gpu["step_efficiency"]["fraction_of_matmul"] = 0.55
    gpu = rows(runs.figures_table([("gpu", fast_gpu)]))
    assert gpu["naive step, share of matmul"] == ["55.0%", "- |"]


def test_plot_path_is_checked_before_the_reports_and_a_missing_folder_is_made(tmp_path):
    """--plot under a file was a traceback, or an error naming the temporary file the
    plot goes through; it is one line naming --plot, before any report is read (the
    missing report is not the one reported). A missing folder is created."""
    (tmp_path / "a_file").write_text("")
    failed = subprocess.run([sys.executable, "-m", "scripts.bench_compare",
                             str(tmp_path / "nowhere"), f"--plot={tmp_path / 'a_file' / 'r.png'}"],
                            capture_output=True, text=True)
    assert failed.returncode == 2
    assert failed.stderr.strip().splitlines() == [
        f"error: cannot create --plot folder '{tmp_path / 'a_file'}': File exists"]
    path = _write(tmp_path / "run_a", _report("cpu", 2000.0, 400.0))
    plot = tmp_path / "new" / "folder" / "ratios.png"
    done = subprocess.run([sys.executable, "-m", "scripts.bench_compare", path, f"--plot={plot}"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-500:]
    assert plot.exists()
