"""Running ``cm-infer`` on a Dask cluster: one task per map, the model loaded once per worker.

The client (this process) finds the maps, skips those whose output exists, and submits one
task per remaining map to a Dask ``distributed`` scheduler.  Each worker process loads the
ONNX model once (cached per process, keyed by file, SHA-256, provider and threads) and calls
:func:`pipeline.process_job`, so the files are exactly those of a local run: same values,
same names, atomic writes, a failed map reported and the run going on.  Results stream back
as they finish (``on_result`` drives the progress bar) and the same run record as
:func:`pipeline.run_jobs` is written, plus a ``dask`` section (workers, providers, model loads).

A worker that dies mid-map (killed, out of memory) loses only its maps in flight: the
scheduler reruns them on another worker (``distributed.scheduler.allowed-failures``, 3 by
default), and the rerun first deletes the temporary files the dead worker left beside the
map's output.  Exceptions inside a task are retried ``retries`` times.

Maps, the model and ``--out`` must be readable (and ``--out`` writable) at the same paths on
the client and on every worker (a shared filesystem on a cluster).

Dask is an optional dependency (``pip install "mars-cloudmask[dask]"``): it is imported only
inside the functions here.

Example::

    from pathlib import Path
    from mars_cloudmask.infer.cluster import run_on_dask
    from mars_cloudmask.infer.pipeline import InferOptions, find_jobs

    jobs, errors = find_jobs(["data/P"])
    report = run_on_dask(jobs, "model.onnx", InferOptions(out=Path("out")), "local:2")
    print(report.counts(), report.record["dask"]["workers"])
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from .maps import MapJob
from .pipeline import (
    RUN_RECORD,
    InferOptions,
    MapResult,
    RunReport,
    _result,
    ensure_output_root,
    failure_reason,
    output_path,
    process_job,
    quicklook_writer,
    remove_stale_temporaries,
    run_record,
    split_existing,
    with_model_defaults,
    write_json_atomic,
)
from .runtime import CloudModel, load_model, thread_settings

LOCAL = "local"
INSTALL_HINT = 'pip install "mars-cloudmask[dask]"'
CONNECT_TIMEOUT_S = 30.0


class ClusterError(RuntimeError):
    """Dask is missing, the address is malformed, or the scheduler cannot be reached (one line)."""


# --------------------------------------------------------------------------- addresses
def local_workers(address: str, cpus: int | None = None) -> int | None:
    """Worker processes for ``local`` / ``local:N`` (``local`` = one per usable CPU); None otherwise.

    Raises:
        ClusterError: ``local:`` followed by anything but a positive integer.
    """
    if address != LOCAL and not address.startswith(LOCAL + ":"):
        return None
    if address == LOCAL:
        return max(1, cpus or usable_cpus())
    count = address[len(LOCAL) + 1 :]
    if not count.isdigit() or int(count) < 1:
        raise ClusterError(f"--dask {address}: expected local or local:N with N >= 1 worker processes")
    return int(count)


def usable_cpus() -> int:
    """CPUs this process may run on."""
    return thread_settings()["usable_cpus"] or 1


def worker_threads(threads: int | None, n_local: int | None, cpus: int | None = None) -> int | None:
    """onnxruntime threads per worker: ``threads`` if given; for ``local:N`` the CPUs shared
    evenly (at least 1); else None (onnxruntime's default on each worker: all its cores)."""
    if threads:
        return int(threads)
    if n_local is not None:
        return max(1, (cpus or usable_cpus()) // n_local)
    return None


def _distributed():
    try:
        import distributed
    except ImportError:
        raise ClusterError(f"--dask needs Dask distributed, which is not installed: {INSTALL_HINT}") from None
    return distributed


def check_address(address: str) -> None:
    """Fail early (before loading anything) when Dask is missing or ``local:N`` is malformed.

    Raises:
        ClusterError: one line saying what to install or what to write.
    """
    _distributed()
    local_workers(address)


@contextmanager
def dask_client(address: str, connect_timeout_s: float | None = None) -> Iterator[Any]:
    """A ``distributed.Client`` for ``address``, closed (with its local cluster) on exit.

    ``address``: ``local`` / ``local:N`` (a ``LocalCluster`` of N worker processes, one task
    thread each, started here), a scheduler address (``tcp://host:8786``), or a scheduler
    JSON file (``dask scheduler --scheduler-file``, dask-mpi, dask-jobqueue).
    ``connect_timeout_s``: None = :data:`CONNECT_TIMEOUT_S`.

    Raises:
        ClusterError: Dask missing, bad ``local:N``, or the scheduler cannot be reached.
    """
    distributed = _distributed()
    n_local = local_workers(address)
    timeout = connect_timeout_s or CONNECT_TIMEOUT_S
    cluster = None
    try:
        if n_local is not None:
            cluster = distributed.LocalCluster(
                n_workers=n_local, threads_per_worker=1, processes=True, dashboard_address=None
            )
            client = distributed.Client(cluster)
        elif address.endswith(".json") and Path(address).is_file():
            client = distributed.Client(scheduler_file=address, timeout=timeout)
        else:
            client = distributed.Client(address, timeout=timeout)
    except (OSError, TimeoutError, ValueError) as exc:
        if cluster is not None:
            cluster.close()
        msg = " ".join(str(exc).split()) or type(exc).__name__
        raise ClusterError(f"--dask {address}: cannot start or reach the Dask scheduler ({msg})") from None
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


# --------------------------------------------------------------------------- worker side
_MODELS: dict[tuple[str, str, str, int | None], tuple[CloudModel, float]] = {}
_MODELS_LOCK = threading.Lock()


def worker_model(path: str, sha256: str, provider: str, threads: int | None) -> tuple[CloudModel, float]:
    """This process's model for ``(path, sha256, provider, threads)``, loaded on first use.

    Returns the model and the seconds its loading (with the Numba warm-up) took.

    Raises:
        ModelError, ProviderError: the model cannot be loaded here, or the file here is not
        the one the client checked (different SHA-256).
    """
    key = (path, sha256, provider, threads)
    with _MODELS_LOCK:  # a worker may run several tasks at once (nthreads > 1)
        if key not in _MODELS:
            from . import stitch
            from .runtime import ModelError

            t0 = time.perf_counter()
            model = load_model(path, provider=provider, threads=threads)
            if model.sha256 != sha256:
                raise ModelError(
                    f"{path}: the file on this worker differs from the client's (sha256 {model.sha256[:12]} "
                    f"!= {sha256[:12]})"
                )
            stitch.warm_up()
            _MODELS[key] = (model, time.perf_counter() - t0)
        return _MODELS[key]


def model_loads() -> int:
    """How many models this process has loaded (1 per worker in a normal run)."""
    return len(_MODELS)


def worker_facts(model: CloudModel, load_s: float) -> dict[str, Any]:
    """Who ran a task: worker address, host, pid, provider, threads, model loads of the process."""
    import socket

    try:
        from distributed import get_worker

        address = get_worker().address
    except (ImportError, ValueError):  # called outside a Dask worker
        address = f"pid:{os.getpid()}"
    return {
        "worker": address,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "provider": model.provider,
        "session_providers": list(model.providers),
        "threads": model.threads,
        "model_load_s": load_s,
        "model_loads": model_loads(),
    }


def map_task(
    job: MapJob, model_path: str, sha256: str, provider: str, threads: int | None, options: InferOptions
) -> tuple[MapResult, dict[str, Any]]:
    """One Dask task: one map through :func:`pipeline.process_job` with this worker's model."""
    model, load_s = worker_model(model_path, sha256, provider, threads)
    return process_job(job, model, options), worker_facts(model, load_s)


# --------------------------------------------------------------------------- client side
def task_failure(job: MapJob, exc: BaseException) -> str:
    """One line for a task that ended in an exception (after retries) or killed its workers."""
    if type(exc).__name__ == "KilledWorker":
        return f"{job.path}: every Dask worker that ran this map died (KilledWorker: out of memory, or killed?)"
    return failure_reason(job, exc)


def summary_line(report: RunReport) -> str:
    """One line for the end-of-run summary: workers used, their providers and threads."""
    dask = report.record.get("dask", {})
    workers = dask.get("workers", {})
    if not workers:
        return f"dask {dask.get('address')}: no map needed a worker"
    providers = sorted({w["provider"] for w in workers.values()})
    threads = sorted({str(w["threads"] or "default") for w in workers.values()})
    return (
        f"dask {dask.get('address')}: {len(workers)} worker processes ran maps "
        f"({dask.get('workers_at_start')} at start), provider {'+'.join(providers).upper()}, "
        f"onnxruntime threads {'/'.join(threads)}"
    )


def map_results(
    client: Any, todo: Sequence[tuple[int, MapJob]], options: InferOptions, task: dict[str, Any], retries: int
) -> Iterator[tuple[int, MapResult, dict[str, Any] | None]]:
    """Submit one :func:`map_task` per ``(index, job)``; yield ``(index, result, worker facts)``
    as tasks finish (facts None for a task that failed outside ``process_job``)."""
    from distributed import as_completed

    run_id = uuid.uuid4().hex[:8]
    futures = client.map(
        map_task,
        [job for _, job in todo],
        options=options,
        key=[f"cm-infer-{job.name}-{run_id}-{i}" for i, job in todo],
        pure=False,
        retries=retries,
        **task,
    )
    index = {fut.key: item for fut, item in zip(futures, todo)}
    for fut in as_completed(futures):
        i, job = index.pop(fut.key)
        if fut.status == "finished":
            result, facts = fut.result()
            yield i, result, facts
        else:
            remove_stale_temporaries(job, options)
            yield i, _result(job, options, "failed", reason=task_failure(job, fut.exception())), None
        fut.release()


def run_on_dask(
    jobs: Sequence[MapJob],
    model: str | Path | CloudModel,
    options: InferOptions,
    address: str,
    *,
    threads: int | None = None,
    provider: str = "auto",
    on_result: Callable[[MapResult], None] | None = None,
    roots: Sequence[str | Path] = (),
    input_errors: Sequence[str] = (),
    write_record: bool = True,
    retries: int = 2,
) -> RunReport:
    """Process every job on a Dask cluster; the twin of :func:`pipeline.run_jobs`.

    ``model``: the ONNX file (or a model loaded here, only used for its path and metadata);
    the client checks it (CPU session, 1 thread) and every worker loads it once with
    ``provider`` and ``threads`` (None: ``local:N`` shares the CPUs evenly, a remote worker
    uses onnxruntime's default).  ``address``: see :func:`dask_client`.  ``on_result`` is
    called in the calling thread as each map finishes (maps skipped because their output
    exists first).  ``retries``: reruns of a task that raised (a dead worker's maps are rerun
    by the scheduler anyway).  Returns a :class:`RunReport` in job order; its record (written
    to ``OUT/cm-infer-run.json``) has a ``dask`` section.

    Raises:
        ClusterError: Dask missing or the scheduler unreachable.
        ModelError: the model file cannot be used.  OutputError: ``options.out`` not writable.
    """
    check_address(address)  # fail first, before any work
    started = datetime.now(timezone.utc)
    t_start = time.perf_counter()
    options = replace(options, out=Path(options.out).resolve())  # workers may start elsewhere
    ensure_output_root(options.out)
    if options.quicklook:
        quicklook_writer()
    checked = model if isinstance(model, CloudModel) else load_model(Path(model).resolve(), provider="cpu", threads=1)
    options = with_model_defaults(options, checked)  # the same polar offset on every worker
    model_path = str(checked.path.resolve())
    n_local = local_workers(address)
    per_worker = worker_threads(threads, n_local)

    results: dict[int, MapResult] = {}
    workers: dict[str, dict[str, Any]] = {}

    def finish(i: int, r: MapResult) -> None:
        results[i] = r
        if on_result is not None:
            on_result(r)

    todo = split_existing(jobs, options, finish)

    dask_facts: dict[str, Any] = {"address": address, "retries": retries, "threads_per_worker": per_worker}
    interrupted = False
    with dask_client(address) if todo else nullcontext() as client:  # nothing to do: no cluster
        try:
            if client is not None:
                dask_facts["scheduler"] = client.scheduler.address
                dask_facts["workers_at_start"] = len(client.scheduler_info().get("workers", {}))
                task = {"model_path": model_path, "sha256": checked.sha256, "provider": provider, "threads": per_worker}
                for i, result, facts in map_results(client, todo, options, task, retries):
                    if facts is not None:
                        seen = workers.setdefault(facts["worker"], dict(facts, maps=0))
                        seen.update(model_loads=facts["model_loads"], maps=seen["maps"] + 1)
                    finish(i, result)
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            ordered = [results[i] for i in sorted(results)]
            record = run_record(
                ordered, jobs, checked, options, started=started, wall_s=time.perf_counter() - t_start,
                warmup_s=max((w["model_load_s"] for w in workers.values()), default=0.0),
                interrupted=interrupted, roots=roots, input_errors=input_errors,
            )
            record["dask"] = dict(dask_facts, workers=workers)
            if workers:
                record["provider"] = "+".join(sorted({w["provider"] for w in workers.values()}))
                record["model"].update(
                    provider=record["provider"],
                    session_providers=sorted({p for w in workers.values() for p in w["session_providers"]}),
                    threads=per_worker,
                )
            record_path = write_json_atomic(Path(options.out) / RUN_RECORD, record) if write_record else None
    return RunReport(ordered, record, record_path, list(input_errors))
