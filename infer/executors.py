"""Executors: *how* the stages are scheduled (:class:`SequentialExecutor`, one map after another;
:class:`ThreadedExecutor`, decoding and writing overlapped with inference; ``cluster.DaskExecutor``)."""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from .results import LoadedMap, MapResult, WorkItem
from .stages import Finish, Stages


class Executor(Protocol):
    """Runs work items through the stages, calling ``finish(index, result)`` in the calling
    thread as each ends; stops starting new items once ``stages.state.stop`` is set."""

    name: str

    def run(self, stages: Stages, items: Sequence[WorkItem], finish: Finish) -> None: ...


class SequentialExecutor:
    """One map after another in the calling thread (cm-bench's staged timings)."""

    name = "sequential"

    def run(self, stages: Stages, items: Sequence[WorkItem], finish: Finish) -> None:
        for item in stages.composite_pass(items, finish):
            if stages.state.stop.is_set():
                return
            with stages.state.critical():  # a signal stops the run after the map in hand is counted
                result, written = stages.run_item_with_mask(item)
                finish(item.index, result)
            if written is not None:
                stages.saved(*written)


class ThreadedExecutor:
    """A reader thread decodes the next maps, the calling thread runs the model, a writer thread
    saves (onnxruntime, Numba, the JPEG decoder and zlib release the GIL).

    ``prefetch``: maps decoded ahead and masks waiting to be written.  On an interrupt the
    masks already predicted are still written and reported (the writes are short).
    """

    name = "threads"

    def __init__(self, prefetch: int = 1):
        self.prefetch = max(1, prefetch)

    def run(self, stages: Stages, items: Sequence[WorkItem], finish: Finish) -> None:
        stop = stages.state.stop
        items = stages.composite_pass(items, finish)  # the composites first, one at a time
        loaded_q: queue.Queue = queue.Queue(maxsize=self.prefetch)
        quit_reader = threading.Event()

        def reader() -> None:
            for item in items:
                if stop.is_set() or quit_reader.is_set():
                    break
                t = time.perf_counter()
                payload: Any
                try:
                    payload = stages.load(item.job) if item.kind == "map" else None
                except Exception as exc:
                    payload = exc
                loaded_q.put((item, payload, time.perf_counter() - t))
            loaded_q.put(None)

        read_thread = threading.Thread(target=reader, name="cm-infer-reader", daemon=True)
        writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cm-infer-writer")
        pending: deque[tuple[WorkItem, Any, Any, Future, dict[str, float], Any]] = deque()

        def settle(block: bool) -> None:
            while pending and (block or pending[0][3].done() or len(pending) > self.prefetch):
                wait(pending[0][3:4])  # a signal here leaves the item pending for the final settle
                with stages.state.critical():  # taken off the queue and counted, or neither
                    item, loaded, tiles, fut, timings, mask = pending.popleft()
                    try:
                        out = fut.result()
                    except Exception as exc:
                        finish(item.index, stages.failed(item, exc, timings))
                    else:
                        if isinstance(out, MapResult):
                            finish(item.index, out)
                        else:
                            timings["write_s"] = out
                            finish(item.index, stages.done(item, loaded, tiles, timings))
                            stages.saved(loaded, mask)

        def timed_save(loaded: LoadedMap, mask: np.ndarray) -> float:
            t = time.perf_counter()
            stages.save(loaded, mask)
            return time.perf_counter() - t

        read_thread.start()
        try:
            while (got := loaded_q.get()) is not None:
                item, payload, read_s = got
                if stop.is_set():
                    break
                if item.kind == "extras":
                    pending.append((item, None, None, writer.submit(stages.run_extras, item), {}, None))
                    settle(block=False)
                    continue
                if isinstance(payload, BaseException):
                    finish(item.index, stages.failed(item, payload, {"read_s": read_s}))
                    continue
                t = time.perf_counter()
                try:
                    mask, tiles = stages.predict(payload)
                except Exception as exc:
                    finish(item.index, stages.failed(item, exc, {"read_s": read_s}))
                    continue
                timings = {"read_s": read_s, "predict_s": time.perf_counter() - t}
                pending.append((item, payload, tiles, writer.submit(timed_save, payload, mask), timings, mask))
                settle(block=False)
        finally:
            quit_reader.set()
            while read_thread.is_alive():  # unblock the reader so it sees the flag
                try:
                    loaded_q.get(timeout=0.05)
                except queue.Empty:
                    pass
            try:
                settle(block=True)  # masks already predicted are written and reported
            finally:
                writer.shutdown(wait=True)


EXECUTORS: dict[str, Callable[[], Executor]] = {"sequential": SequentialExecutor, "threads": ThreadedExecutor}
