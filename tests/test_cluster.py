"""cm-infer on Dask (infer/cluster.py): a LocalCluster of two worker processes writes the files
of a local run, reports a bad map without stopping, skips existing outputs, and survives a
worker killed mid-map."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from mars_cloudmask.infer import cluster
from mars_cloudmask.infer.cluster import (
    ClusterError,
    local_workers,
    map_task,
    run_on_dask,
    worker_model,
    worker_threads,
)
from mars_cloudmask.infer.engine import Stages, WorkItem, remove_stale_temporaries, run
from mars_cloudmask.infer.maps import find_maps
from mars_cloudmask.infer.netcdf import read_mask
from mars_cloudmask.infer.plan import InferOptions, resolve_plan
from mars_cloudmask.infer.records import RUN_RECORD
from mars_cloudmask.infer.runtime import ModelError, file_sha256, load_model
from tests.synthetic import write_map_tree

pytest.importorskip("distributed")


def masks(out: Path) -> dict[str, np.ndarray]:
    """``{path relative to out: mask}`` for every .ncdf under ``out``."""
    return {str(p.relative_to(out)): read_mask(p) for p in sorted(out.rglob("*.ncdf"))}


def hidden_files(out: Path) -> list[Path]:
    """Temporary (hidden) files left anywhere under ``out``."""
    return [p for p in out.rglob(".*") if p.is_file()]


def assert_same_masks(out: Path, reference: Path) -> None:
    got, expected = masks(out), masks(reference)
    assert sorted(got) == sorted(expected) and got
    for name, mask in expected.items():
        assert np.abs(got[name] - mask).max() < 1e-6, name
        np.testing.assert_array_equal(got[name] == -999, mask == -999)


@pytest.fixture(scope="module")
def two_workers():
    """A LocalCluster of two worker processes, one thread each (shared by the tests below)."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as lc:
        yield lc


@pytest.fixture(scope="module")
def maps_and_reference(tiny_model, tmp_path_factory):
    """Four synthetic maps and their masks from a plain local run (``engine.run``)."""
    root = tmp_path_factory.mktemp("dask") / "maps"
    write_map_tree(root, days=(1, 2, 3, 4))
    reference = root.parent / "local"
    report = run(find_maps(root), load_model(tiny_model, provider="cpu", threads=1), InferOptions(out=reference))
    assert report.counts()["done"] == 4
    return root, reference


# --------------------------------------------------------------------------- no cluster needed
def test_local_addresses_and_threads_per_worker():
    assert local_workers("local:3") == 3 and local_workers("local", cpus=4) == 4
    assert local_workers("tcp://10.0.0.1:8786") is None and local_workers("scheduler.json") is None
    for bad in ("local:0", "local:two", "local:"):
        with pytest.raises(ClusterError, match="local:N"):
            local_workers(bad)
    assert worker_threads(None, 2, cpus=2) == 1 and worker_threads(None, 1, cpus=2) == 2
    assert worker_threads(3, 2) == 3 and worker_threads(None, None) is None


def test_missing_dask_is_one_line_naming_the_extra(monkeypatch, tiny_model, map_tree, tmp_path):
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` raises ImportError
    with pytest.raises(ClusterError) as err:
        run_on_dask(find_maps(map_tree), tiny_model, InferOptions(out=tmp_path / "out"), "local:2")
    assert "mars-cloudmask[dask]" in str(err.value) and "\n" not in str(err.value)


def test_unreachable_scheduler_is_one_line(monkeypatch, tiny_model, map_tree, tmp_path):
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 1.0)
    with pytest.raises(ClusterError, match=r"tcp://127\.0\.0\.1:9: cannot start or reach") as err:
        run_on_dask(find_maps(map_tree), tiny_model, InferOptions(out=tmp_path / "out"), "tcp://127.0.0.1:9")
    assert "\n" not in str(err.value)


def test_a_task_loads_the_model_once_per_process_and_checks_its_hash(tiny_model, map_tree, tmp_path):
    jobs = find_maps(map_tree)
    plan = resolve_plan(InferOptions(out=tmp_path / "out"), load_model(tiny_model, provider="cpu"))
    sha = file_sha256(tiny_model)
    first, facts = map_task(WorkItem(0, jobs[0]), str(tiny_model), sha, "cpu", 1, plan)
    second, facts2 = map_task(WorkItem(1, jobs[1]), str(tiny_model), sha, "cpu", 1, plan)
    assert first.status == second.status == "done" and Path(second.output).is_file()
    assert worker_model(str(tiny_model), sha, "cpu", 1)[0] is worker_model(str(tiny_model), sha, "cpu", 1)[0]
    assert facts["worker"] == f"pid:{os.getpid()}" and facts["provider"] == "cpu" and facts["threads"] == 1
    assert facts2["model_loads"] == facts["model_loads"]  # no second load for the second map
    with pytest.raises(ModelError, match="differs from the client's"):
        worker_model(str(tiny_model), "0" * 64, "cpu", 1)


def test_stale_temporaries_of_one_map_are_removed_and_nothing_else(tiny_model, map_tree, tmp_path):
    jobs = find_maps(map_tree)
    options = resolve_plan(InferOptions(out=tmp_path / "out", copy_maps=True), load_model(tiny_model, provider="cpu"))
    out0, out1 = options.output_path(jobs[0]), options.output_path(jobs[1])
    out0.parent.mkdir(parents=True)
    mdgms = out0.parent.parent / "mdgms"
    mdgms.mkdir()
    stale = [
        out0.parent / f".{out0.name}.k3j9.tmp",
        out0.parent / f".{out0.stem}.png.x1y2.tmp",
        mdgms / f".{jobs[0].path.name}.abcd.tmp",
    ]
    kept = [out1.parent / f".{out1.name}.zzzz.tmp", out0.parent / f".{out0.name}.notes", out1]
    for p in stale + kept:
        p.write_bytes(b"partial")
    assert sorted(remove_stale_temporaries(jobs[0], options)) == sorted(stale)
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)


# --------------------------------------------------------------------------- real clusters
def test_local_2_writes_the_files_of_a_local_run_and_reports_a_bad_map(tiny_model, maps_and_reference, tmp_path):
    root, reference = maps_and_reference
    bad = root / "P" / "P01" / "P01_day05_zequat.jpg"  # no Ls row and not a JPEG
    seen, out = [], tmp_path / "out"
    bad.write_bytes(b"not a jpeg")
    try:
        jobs = find_maps(root)
        report = run_on_dask(
            jobs, tiny_model, InferOptions(out=out), "local:2", threads=1, provider="cpu", on_result=seen.append
        )
    finally:
        bad.unlink()
    assert report.counts() == {"done": 4, "skipped": 0, "failed": 1} and not report.ok
    assert len(seen) == 5 and sorted(r.name for r in seen) == [j.name for j in jobs]
    (failed,) = report.by_status("failed")
    assert str(bad) in failed.reason and "\n" not in failed.reason
    assert_same_masks(out, reference)
    assert hidden_files(out) == []

    record = json.loads((out / RUN_RECORD).read_text())
    assert record["counts"] == report.counts() and record["failures"] == [{"source": str(bad), "reason": failed.reason}]
    workers = record["dask"]["workers"]
    assert record["dask"]["workers_at_start"] == 2 and record["dask"]["address"] == "local:2"
    assert sum(w["maps"] for w in workers.values()) == 5
    assert all(w["model_loads"] == 1 and w["threads"] == 1 for w in workers.values())
    assert max(w["maps"] for w in workers.values()) >= 2  # one model load served several maps
    assert record["provider"] == "cpu" and record["model"]["sha256"] == file_sha256(tiny_model)
    assert cluster.summary_line(report).startswith("dask local:2: ")


def test_a_rerun_skips_existing_outputs(two_workers, tiny_model, maps_and_reference, tmp_path):
    root, _ = maps_and_reference
    jobs, out = find_maps(root)[:2], tmp_path / "out"
    first = run_on_dask(
        jobs, tiny_model, InferOptions(out=out), two_workers.scheduler_address, threads=1, provider="cpu"
    )
    assert first.counts() == {"done": 2, "skipped": 0, "failed": 0}
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.ncdf")}
    again = run_on_dask(
        jobs, tiny_model, InferOptions(out=out), two_workers.scheduler_address, threads=1, provider="cpu"
    )
    assert again.counts() == {"done": 0, "skipped": 2, "failed": 0} and again.ok
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.ncdf")} == stamps
    assert json.loads((out / RUN_RECORD).read_text())["counts"]["skipped"] == 2
    assert again.record["dask"]["workers"] == {} and "scheduler" not in again.record["dask"]  # no cluster needed
    assert cluster.summary_line(again).endswith("no map needed a worker")


def die_on_first_map(marker: str) -> None:
    """Installed on every worker: the first map anywhere leaves a partial temporary file
    beside its output, holding its write lock as a real writer does, and kills its worker
    process (os._exit), as a crash mid-write would."""
    import fcntl

    class DyingStages(Stages):
        def run_item(self, item):
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return super().run_item(item)
            os.write(fd, f"{os.getpid()} {item.job.name}".encode())
            os.close(fd)
            out = self.plan.output_path(item.job)
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp_fd, _ = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
            fcntl.flock(tmp_fd, fcntl.LOCK_EX)
            os.write(tmp_fd, b"CDF\x01 half a file")
            os._exit(1)

    cluster.Stages = DyingStages


def restore_process_job() -> None:
    from mars_cloudmask.infer import engine

    cluster.Stages = engine.Stages


def process_gone(pid: int, wait_s: float = 10.0) -> bool:
    """True once no process ``pid`` exists (its parent may take a moment to reap it)."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def test_a_killed_workers_map_is_completed_by_another(two_workers, tiny_model, maps_and_reference, tmp_path):
    from distributed import Client

    root, reference = maps_and_reference
    marker, out = tmp_path / "killed", tmp_path / "out"
    with Client(two_workers) as client:
        client.run(die_on_first_map, str(marker))
    try:
        report = run_on_dask(
            find_maps(root), tiny_model, InferOptions(out=out), two_workers.scheduler_address, threads=1, provider="cpu"
        )
    finally:
        with Client(two_workers) as client:
            client.run(restore_process_job)
    pid, killed_map = marker.read_text().split()
    assert process_gone(int(pid))
    assert report.counts() == {"done": 4, "skipped": 0, "failed": 0}
    assert killed_map in {r.name for r in report.by_status("done")}
    assert_same_masks(out, reference)
    assert hidden_files(out) == []  # the dead worker's partial file was cleaned by the rerun
    assert all(w["pid"] != int(pid) for w in report.record["dask"]["workers"].values())


def cli_has_dask_option() -> bool:
    import inspect

    from mars_cloudmask.infer import cli

    return "dask" in inspect.signature(cli.infer).parameters


@pytest.mark.skipif(not cli_has_dask_option(), reason="cm-infer --dask is not wired into infer/cli.py yet")
def test_cm_infer_dask_option(two_workers, tiny_model, maps_and_reference, tmp_path):
    from typer.testing import CliRunner

    from mars_cloudmask.infer.cli import EXIT_FATAL, app

    root, reference = maps_and_reference
    out = tmp_path / "out"
    args = [str(root), "--out", str(out), "--model", str(tiny_model), "--threads", "1", "--provider", "cpu"]
    result = CliRunner().invoke(app, args + ["--dask", two_workers.scheduler_address])
    assert result.exit_code == 0, result.output
    assert f"dask {two_workers.scheduler_address}: " in result.output and "done 4, skipped 0" in result.output
    assert_same_masks(out, reference)
    bad = CliRunner().invoke(app, args + ["--dask", "local:0"])
    assert bad.exit_code == EXIT_FATAL and "expected local or local:N" in bad.output


def test_a_channel_model_gets_one_composite_task_per_subphase_then_its_maps(two_workers, tmp_path):
    from mars_cloudmask.infer.background import read_netcdf
    from tests.tiny_model import make_tiny_unet_onnx

    five = make_tiny_unet_onnx(tmp_path / "five.onnx", seed=2, channels="rgb,bdiff10,bdiff50")
    root = tmp_path / "maps"
    write_map_tree(root, subphase="P01", days=(1, 2))
    write_map_tree(root, subphase="P02", days=(1, 2), seed=10)
    reference = tmp_path / "local"
    local = run(find_maps(root), load_model(five, provider="cpu", threads=1), InferOptions(out=reference))
    assert local.ok and len(local.composites) == 2, (
        local.counts(),
        local.input_errors,
        local.not_processed,
        local.record_error,
        [r.reason for r in local.by_status("failed")],
    )
    out = tmp_path / "out"
    report = run_on_dask(
        find_maps(root), five, InferOptions(out=out), two_workers.scheduler_address, threads=1, provider="cpu"
    )
    assert report.counts() == {"done": 4, "skipped": 0, "failed": 0}
    record = json.loads((out / RUN_RECORD).read_text())
    assert record["dask"]["background_tasks"] == 2
    assert [(Path(b["path"]).name, b["status"], b["n_maps"]) for b in record["backgrounds"]] == [
        ("background_P01.nc", "built", 2),
        ("background_P02.nc", "built", 2),
    ]
    assert_same_masks(out, reference)
    for sub in ("P01", "P02"):
        mine, theirs = (read_netcdf(o / "P" / sub / f"background_{sub}.nc") for o in (out, reference))
        np.testing.assert_array_equal(mine.count, theirs.count)
        np.testing.assert_array_equal(mine.plane(50), theirs.plane(50))
    assert {m["background"] for m in record["maps"]} == {
        str(out / "P" / sub / f"background_{sub}.nc") for sub in ("P01", "P02")
    }
    assert hidden_files(out) == []


def test_scheduler_addresses_parse_to_a_tcp_endpoint():
    from mars_cloudmask.infer.cluster import scheduler_endpoint

    assert scheduler_endpoint("tcp://10.0.0.1:8786") == ("10.0.0.1", 8786)
    assert scheduler_endpoint("tls://sched.example:9000") == ("sched.example", 9000)
    assert scheduler_endpoint("sched.example") == ("sched.example", 8786)
    assert scheduler_endpoint("tcp://[::1]:8786") == ("::1", 8786)
    assert scheduler_endpoint("inproc://x/1") is None
    with pytest.raises(ClusterError, match="port 'abc' is not a number"):
        scheduler_endpoint("tcp://host:abc")


def test_an_unreachable_scheduler_or_file_fails_when_the_executor_is_made(tmp_path):
    """Issue 32 item 15: checked before the run (and its records) starts."""
    from mars_cloudmask.infer.cluster import DaskExecutor

    with pytest.raises(ClusterError, match=r"^--dask tcp://127\.0\.0\.1:9: cannot start or reach .*refused"):
        DaskExecutor("tcp://127.0.0.1:9")
    with pytest.raises(ClusterError, match="no such scheduler file"):
        DaskExecutor(str(tmp_path / "scheduler.json"))
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ClusterError, match="not a Dask scheduler file with an address"):
        DaskExecutor(str(tmp_path / "bad.json"))
    (tmp_path / "dead.json").write_text(json.dumps({"address": "tcp://127.0.0.1:9"}))
    with pytest.raises(ClusterError, match=r"dead\.json: cannot start or reach"):
        DaskExecutor(str(tmp_path / "dead.json"))


def test_the_record_and_summary_say_the_precision_the_workers_ran():
    """Issue 32 item 9: with --dask the client checks the model on CPU fp32, the workers ran bf16."""
    from mars_cloudmask.infer.cluster import DaskExecutor, summary_line
    from mars_cloudmask.infer.engine import RunReport

    executor = DaskExecutor("local:1", provider="openvino", precision="auto")
    executor.workers = {
        "tcp://w1": {
            "provider": "openvino",
            "precision": "bf16",
            "session_providers": ["OpenVINO CPU"],
            "threads": 1,
            "model_load_s": 0.5,
        },
    }
    record = {"timings": {}, "provider": "cpu", "precision": "fp32", "model": {"provider": "cpu", "precision": "fp32"}}
    executor.add_to_record(record)
    assert record["provider"] == "openvino" and record["precision"] == "bf16"
    assert record["model"]["precision"] == "bf16" and record["model"]["requested"]["precision"] == "auto"
    line = summary_line(RunReport([], record, None))
    assert "provider OPENVINO bf16" in line
