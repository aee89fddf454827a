"""The Dask executor of the run engine: one task per map, the model loaded once per worker.

For a model whose channels need a background, one task per subphase comes first
(:func:`composite_task`: reuse or build its composite, :mod:`.composites`); the maps are
submitted once every composite is settled, and the maps of a subphase without one fail
with one line naming its folder.

The client (this process) does what every run does in :func:`mars_cloudmask.infer.engine.run`:
the plan resolved once, the triage of existing outputs, the cleanup, the run record.  This
module only schedules: :class:`DaskExecutor` submits one task per map to a Dask
``distributed`` scheduler; each worker process loads the ONNX model once (cached per
process, keyed by file, SHA-256, provider and threads) and runs the map through the same
:class:`~mars_cloudmask.infer.engine.Stages` as a local run, so the files are exactly those
of a local run.  Results stream back as they finish, and the run record gets a ``dask``
section (workers, providers, model loads).

A worker that dies mid-map (killed, out of memory) loses only its maps in flight: the
scheduler reruns them on another worker (``distributed.scheduler.allowed-failures``, 3 by
default), and the rerun first deletes the temporary files the dead worker left (their write
lock died with it).  Exceptions inside a task are retried ``retries`` times.

Maps, the model and ``--out`` must be readable (and ``--out`` writable) at the same paths on
the client and on every worker (a shared filesystem on a cluster).

Dask is an optional dependency (``pip install "mars-cloudmask[dask]"``): it is imported only
inside the functions here.

Example::

    from mars_cloudmask.infer.cluster import run_on_dask
    from mars_cloudmask.infer.maps import find_jobs
    from mars_cloudmask.infer.plan import InferOptions

    jobs, errors = find_jobs(["data/P"])
    report = run_on_dask(jobs, "model.onnx", InferOptions(out="out"), "local:2")
    print(report.counts(), report.record["dask"]["workers"])
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from .composites import CompositeResult, CompositeTask, prepare_composite
from .engine import MapResult, RunReport, Stages, WorkItem, failure_reason, remove_stale_temporaries, result_for, run
from .maps import MapJob
from .plan import InferOptions, RunPlan, as_plan
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


DEFAULT_SCHEDULER_PORT = 8786
PROBE_TIMEOUT_S = 5.0
"""Seconds :func:`check_reachable` waits for the scheduler's port to accept a connection."""


def scheduler_endpoint(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of a scheduler address (``tcp://host:port``, ``tls://...``, ``host:port``;
    port 8786 when none is given); None for a scheme that is not TCP (``inproc``, ``ucx``).

    Raises:
        ClusterError: an address with no host.
    """
    scheme, sep, rest = address.partition("://")
    if not sep:
        scheme, rest = "tcp", address
    if scheme not in ("tcp", "tls", "ws", "wss"):
        return None
    rest = rest.split("/", 1)[0]
    if rest.startswith("["):  # [IPv6]:port
        host, _, tail = rest[1:].partition("]")
        port_text = tail.lstrip(":")
    else:
        host, _, port_text = rest.rpartition(":") if ":" in rest else (rest, "", "")
    if not host:
        raise ClusterError(f"--dask {address}: no scheduler host (expected tcp://HOST:PORT)")
    if port_text and not port_text.isdigit():
        raise ClusterError(f"--dask {address}: port {port_text!r} is not a number (expected tcp://HOST:PORT)")
    return host, int(port_text) if port_text else DEFAULT_SCHEDULER_PORT


def scheduler_file_address(path: str) -> str:
    """The ``address`` a Dask scheduler JSON file holds.

    Raises:
        ClusterError: the file is missing, unreadable, not JSON or has no address (one line).
    """
    import json

    try:
        data = json.loads(Path(path).read_text())
        return str(data["address"])
    except FileNotFoundError:
        raise ClusterError(f"--dask {path}: no such scheduler file") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        msg = " ".join(str(exc).split()) or type(exc).__name__
        raise ClusterError(f"--dask {path}: not a Dask scheduler file with an address ({msg})") from None


def check_reachable(address: str, timeout_s: float | None = None) -> None:
    """Fail before anything is written when the scheduler of ``address`` does not accept a TCP
    connection (``local`` / ``local:N`` start their own: nothing to check).

    Raises:
        ClusterError: ``--dask ADDRESS: cannot start or reach the Dask scheduler (reason)``.
    """
    import socket

    if local_workers(address) is not None:
        return
    target = scheduler_file_address(address) if address.endswith(".json") else address
    endpoint = scheduler_endpoint(target)
    if endpoint is None:
        return
    try:
        socket.create_connection(endpoint, timeout=timeout_s or PROBE_TIMEOUT_S).close()
    except OSError as exc:
        msg = " ".join(str(exc.strerror or exc).split()) or type(exc).__name__
        raise ClusterError(f"--dask {address}: cannot start or reach the Dask scheduler ({target}: {msg})") from None


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
_MODELS: dict[tuple[str, str, str, int | None, str], tuple[CloudModel, float]] = {}
_MODELS_LOCK = threading.Lock()


def worker_model(
    path: str, sha256: str, provider: str, threads: int | None, precision: str = "auto"
) -> tuple[CloudModel, float]:
    """This process's model for ``(path, sha256, provider, threads)``, loaded on first use.

    Returns the model and the seconds its loading (with the Numba warm-up) took.

    Raises:
        ModelError, ProviderError: the model cannot be loaded here, or the file here is not
        the one the client checked (different SHA-256).
    """
    key = (path, sha256, provider, threads, precision)
    with _MODELS_LOCK:  # a worker may run several tasks at once (nthreads > 1)
        if key not in _MODELS:
            from . import stitch
            from .runtime import ModelError

            t0 = time.perf_counter()
            model = load_model(path, provider=provider, threads=threads, precision=precision)
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
        "precision": model.precision,
        "session_providers": list(model.providers),
        "threads": model.threads,
        "model_load_s": load_s,
        "model_loads": model_loads(),
    }


def map_task(
    item: WorkItem,
    model_path: str,
    sha256: str,
    provider: str,
    threads: int | None,
    plan: RunPlan,
    precision: str = "auto",
) -> tuple[MapResult, dict[str, Any]]:
    """One Dask task: one item through the engine's :class:`Stages` with this worker's model.

    A task rerun after its worker died first removes the temporaries the dead worker left.
    """
    model, load_s = worker_model(model_path, sha256, provider, threads, precision)
    remove_stale_temporaries(item.job, plan)
    return Stages(model, plan).run_item(item), worker_facts(model, load_s)


def composite_task(task: CompositeTask) -> CompositeResult:
    """One Dask task of the first pass: one subphase's background composite (no model needed)."""
    return prepare_composite(task)


# --------------------------------------------------------------------------- client side
def task_failure(job: MapJob, exc: BaseException) -> str:
    """One line for a task that ended in an exception (after retries) or killed its workers."""
    if type(exc).__name__ == "KilledWorker":
        return f"{job.path}: every Dask worker that ran this map died (KilledWorker: out of memory, or killed?)"
    return failure_reason(job, exc)


def ran_on(workers: dict[str, dict[str, Any]]) -> tuple[str, str]:
    """``(provider, precision)`` the workers really ran (``+``-joined when they differ):
    what the run record and the summary say, not the client's checking session."""
    providers = sorted({str(w["provider"]) for w in workers.values()})
    precisions = sorted({str(w.get("precision") or "unknown") for w in workers.values()})
    return "+".join(providers), "+".join(precisions)


def summary_line(report: RunReport) -> str:
    """One line for the end-of-run summary: workers used, their providers and threads."""
    dask = report.record.get("dask", {})
    workers = dask.get("workers", {})
    if not workers:
        return f"dask {dask.get('address')}: no map needed a worker"
    provider, precision = ran_on(workers)
    threads = sorted({str(w["threads"] or "default") for w in workers.values()})
    return (
        f"dask {dask.get('address')}: {len(workers)} worker processes ran maps "
        f"({dask.get('workers_at_start')} at start), provider {provider.upper()} {precision}, "
        f"onnxruntime threads {'/'.join(threads)}"
    )


class DaskExecutor:
    """Runs the engine's work items as Dask tasks (see the module docstring).

    ``address``: see :func:`dask_client`; ``threads``: onnxruntime threads per worker (None:
    ``local:N`` shares the CPUs evenly, a remote worker uses onnxruntime's default);
    ``provider``: what each worker loads; ``retries``: reruns of a task that raised.
    After :meth:`run`, :attr:`facts` holds the ``dask`` section of the run record.
    """

    name = "dask"

    def __init__(
        self,
        address: str,
        *,
        threads: int | None = None,
        provider: str = "auto",
        precision: str = "auto",
        retries: int = 2,
    ):
        check_address(address)  # fail first, before any work
        check_reachable(address)  # and before the run writes anything (records, OUT)
        self.address = address
        self.provider = provider
        self.precision = precision
        self.retries = retries
        self.threads = worker_threads(threads, local_workers(address))
        self.workers: dict[str, dict[str, Any]] = {}
        self.facts: dict[str, Any] = {"address": address, "retries": retries, "threads_per_worker": self.threads}

    def run(self, stages: Stages, items: Sequence[WorkItem], finish: Callable[[int, MapResult], None]) -> None:
        if not items:  # nothing to do: no cluster
            return
        from distributed import as_completed

        plan = stages.plan
        with dask_client(self.address) as client:
            self.facts["scheduler"] = client.scheduler.address
            self.facts["workers_at_start"] = len(client.scheduler_info().get("workers", {}))
            run_id = uuid.uuid4().hex[:8]

            def build(tasks: list[CompositeTask]) -> list[CompositeResult]:
                """The composites, one task per subphase, all settled before any map starts."""
                if not tasks:
                    return []
                pending = client.map(
                    composite_task,
                    tasks,
                    key=[f"cm-infer-background-{Path(t.path).stem}-{run_id}-{k}" for k, t in enumerate(tasks)],
                    pure=False,
                    retries=self.retries,
                )
                results = []
                for fut, task in zip(pending, tasks, strict=True):
                    try:
                        results.append(fut.result())
                    except Exception as exc:  # the task raised (after retries) or killed its workers
                        msg = " ".join(str(exc).split()) or type(exc).__name__
                        results.append(
                            CompositeResult(
                                task.folder, task.path, "failed", reason=f"background composite of {task.folder}: {msg}"
                            )
                        )
                    fut.release()
                self.facts["background_tasks"] = len(tasks)
                return results

            items = stages.composite_pass(items, finish, build)
            if not items or stages.state.stop.is_set():
                return
            futures = client.map(
                map_task,
                list(items),
                model_path=plan.model_path,
                sha256=plan.model_sha256,
                provider=self.provider,
                threads=self.threads,
                plan=plan,
                precision=self.precision,
                key=[f"cm-infer-{it.job.name}-{run_id}-{it.index}" for it in items],
                pure=False,
                retries=self.retries,
            )
            index = {fut.key: item for fut, item in zip(futures, items, strict=True)}
            try:
                for fut in as_completed(futures):
                    item = index.pop(fut.key)
                    if fut.status == "finished":
                        result, facts = fut.result()
                        seen = self.workers.setdefault(facts["worker"], dict(facts, maps=0))
                        seen.update(model_loads=facts["model_loads"], maps=seen["maps"] + 1)
                    else:
                        remove_stale_temporaries(item.job, plan)
                        result = result_for(item.job, plan, "failed", reason=task_failure(item.job, fut.exception()))
                    fut.release()
                    finish(item.index, result)
                    if stages.state.stop.is_set():
                        break
            finally:
                client.cancel([f for f in futures if f.key in index])

    def add_to_record(self, record: dict[str, Any]) -> None:
        """The ``dask`` section, and the providers the workers really ran."""
        record["dask"] = dict(self.facts, workers=self.workers)
        record["timings"]["jit_warmup_s"] = max((w["model_load_s"] for w in self.workers.values()), default=0.0)
        if self.workers:
            ran = ran_on(self.workers)
            record["provider"], record["precision"] = ran
            record["model"].update(
                provider=ran[0],
                precision=ran[1],
                requested={"provider": self.provider, "precision": self.precision},
                session_providers=sorted({p for w in self.workers.values() for p in w["session_providers"]}),
                threads=self.threads,
            )


def run_on_dask(
    jobs: Sequence[MapJob],
    model: str | Path | CloudModel,
    options: InferOptions | RunPlan,
    address: str,
    *,
    threads: int | None = None,
    provider: str = "auto",
    precision: str = "auto",
    on_result: Callable[[MapResult], None] | None = None,
    roots: Sequence[str | Path] = (),
    input_errors: Sequence[str] = (),
    write_record: bool = True,
    retries: int = 2,
) -> RunReport:
    """Process every job on a Dask cluster: :func:`engine.run` with a :class:`DaskExecutor`.

    ``model``: the ONNX file (or a model loaded here, used for its path, hash and metadata);
    the client checks it on a CPU session and every worker loads it once with ``provider``
    and ``threads``.  Returns the :class:`RunReport`; its record has a ``dask`` section.

    Raises:
        ClusterError: Dask missing or the scheduler unreachable.  ModelError: the model file
        cannot be used.  OutputError: ``OUT`` not writable.  PlanError: a bad option.
    """
    executor = DaskExecutor(address, threads=threads, provider=provider, precision=precision, retries=retries)
    checked = model if isinstance(model, CloudModel) else load_model(Path(model).resolve(), provider="cpu", threads=1)
    plan = as_plan(options, checked)
    return run(
        jobs,
        checked,
        plan,
        executor=executor,
        on_result=on_result,
        roots=roots,
        input_errors=input_errors,
        write_record=write_record,
        record_extra=executor.add_to_record,
    )
