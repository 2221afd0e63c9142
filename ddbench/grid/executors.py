"""Where a grid's units run: in this process (``--jobs 1``), in a local process pool, or as
Ray tasks. An executor only starts units and hands back their results; the driver
(:mod:`.driver`) owns the order, the retries of the local pool, and the run database."""

from __future__ import annotations

import os
import signal
import socket
import time
import uuid
from pathlib import Path
from typing import Any, Mapping

from ..errors import DDBenchError


class WorkerLost(Exception):
    """The process running a unit died (killed, out of memory); the unit may be retried."""


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class Executor:
    """Start units, collect their results."""

    name = "executor"
    #: units kept in flight at once
    slots = 1
    #: the driver retries a unit whose worker died (the local pool); Ray retries by itself
    driver_retries = True
    #: the cache root the workers use, and whether they check artifacts against manifests
    cache_root: Path
    verify = False
    home: Path | None = None
    signals = False

    def submit(self, payload: dict[str, Any]) -> Any:
        raise NotImplementedError

    def wait(self, handles: list[Any], timeout: float) -> list[tuple[Any, dict[str, Any] | None, BaseException | None]]:
        """The handles that finished within ``timeout``: (handle, result, exception)."""
        raise NotImplementedError

    def interrupt(self, handles: list[Any]) -> None:
        """Ask running units to stop and record themselves interrupted."""

    def close(self, now: bool = False) -> None:
        """Release the workers; ``now`` (after Ctrl-C) does not wait for stragglers."""

    def describe(self) -> str:
        return self.name


class InlineExecutor(Executor):
    """One unit at a time, in this process: ``--jobs 1``."""

    name = "local (in this process)"

    def __init__(self, cache_root: Path, threads: int = 0) -> None:
        self.cache_root, self.threads = cache_root, threads
        self._done: dict[int, dict[str, Any]] = {}
        self._n = 0

    def submit(self, payload: dict[str, Any]) -> Any:
        from .worker import run_unit

        self._n += 1
        self._done[self._n] = run_unit(payload)
        return self._n

    def wait(self, handles, timeout):
        return [(h, self._done.pop(h), None) for h in handles if h in self._done]


def _init_local_worker(threads: int) -> None:
    # before torch is imported in this process; idle workers ignore Ctrl-C (a running unit
    # turns it into KeyboardInterrupt, see worker._interruptible)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    os.environ["DDBENCH_QUIET"] = "1"
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class LocalExecutor(Executor):
    """A pool of ``jobs`` worker processes (spawned, not forked: torch and fork do not mix)."""

    signals = True

    def __init__(self, cache_root: Path, jobs: int, threads: int) -> None:
        self.cache_root, self.slots, self.threads = cache_root, jobs, threads
        self.name = f"local ({jobs} processes × {threads} thread{'s' if threads > 1 else ''})"
        self._pool = None

    def _get_pool(self):
        if self._pool is None:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(max_workers=self.slots, mp_context=mp.get_context("spawn"),
                                             initializer=_init_local_worker, initargs=(self.threads,))
        return self._pool

    def submit(self, payload):
        from concurrent.futures.process import BrokenProcessPool

        from .worker import run_unit

        try:
            return self._get_pool().submit(run_unit, payload)
        except BrokenProcessPool:  # a worker died since the last submit: start a fresh pool
            self._discard()
            return self._get_pool().submit(run_unit, payload)

    def wait(self, handles, timeout):
        from concurrent.futures import FIRST_COMPLETED
        from concurrent.futures import wait as fwait
        from concurrent.futures.process import BrokenProcessPool

        done, _ = fwait(handles, timeout=timeout, return_when=FIRST_COMPLETED)
        out = []
        broken = False
        for f in done:
            try:
                out.append((f, f.result(), None))
            except BrokenProcessPool as e:
                broken = True
                out.append((f, None, WorkerLost(f"a worker process died ({e})")))
            except BaseException as e:  # noqa: BLE001
                out.append((f, None, e))
        if broken:
            self._discard()
        return out

    def _discard(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def interrupt(self, handles):
        for f in handles:
            f.cancel()
        pool = self._pool
        for proc in list(getattr(pool, "_processes", {}).values()) if pool is not None else []:
            try:
                os.kill(proc.pid, signal.SIGINT)
            except (ProcessLookupError, PermissionError):
                pass

    def close(self, now=False):
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if not now:
            pool.shutdown(wait=True, cancel_futures=True)
            return
        procs = list(getattr(pool, "_processes", {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        deadline = time.time() + 5
        for proc in procs:  # a worker still busy after the grace period: its checkpoints stay, the OS frees its locks
            proc.join(max(0.0, deadline - time.time()))
            if proc.is_alive():
                proc.kill()


# ---------------------------------------------------------------------------- Ray


def _import_ray():
    try:
        import ray
    except ImportError:
        raise DDBenchError("--executor ray needs Ray, which is not installed: pip install 'ddbench[ray]'") from None
    return ray


def _check_reachable(address: str) -> None:
    """Fail fast (seconds, not Ray's minute of retries) when nothing listens at ADDRESS."""
    target = address.split("://", 1)[-1]
    if target in ("auto", "local", "") or ":" not in target:
        return
    host, _, port = target.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=5):
            pass
    except ValueError:
        raise DDBenchError(f"cannot parse the Ray address {address!r}: give HOST:PORT (e.g. 10.0.0.1:6379), "
                           "ray://HOST:10001 or auto") from None
    except OSError as e:
        raise DDBenchError(f"cannot reach the Ray cluster at {address} ({e.strerror or e}); start it with "
                           f"`ray start --head` on that machine, or check the address and port (default 6379)") from None


def _read_token(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


class RayExecutor(Executor):
    """Each unit is a Ray task declaring its CPUs (``--threads``) and GPUs (1 with
    ``--device cuda``); Ray retries a task whose worker died (``max_retries``)."""

    driver_retries = False
    verify = True

    def __init__(self, address: str | None, storage: Path, threads: int, device: str, retries: int,
                 jobs: int | None = None) -> None:
        ray = _import_ray()
        self.ray = ray
        self._started = False
        if address:
            _check_reachable(address)
        if not ray.is_initialized():
            import logging

            try:
                if address:
                    ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
                else:
                    ray.init(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
            except Exception as e:  # ConnectionError, TimeoutError, RuntimeError …: one line
                text = " ".join(str(e).split())[:300]
                raise DDBenchError(f"cannot connect to the Ray cluster at {address or 'a new local Ray'} "
                                   f"({type(e).__name__}: {text}); check the address, or leave --address out to "
                                   "start Ray on this machine") from None
            self._started = True
        self.address = address or "local"
        self.home = Path(storage)
        self.cache_root = self.home / "cache"
        self.threads = threads
        gpus = 1 if device.startswith("cuda") else 0
        resources = ray.cluster_resources()
        if gpus and resources.get("GPU", 0) < 1:
            self.close()
            raise DDBenchError(f"--device {device} but the Ray cluster at {self.address} has no GPU "
                               "(ray.cluster_resources() lists none); start its workers on GPU machines, or use "
                               "--device cpu")
        cpus = int(resources.get("CPU", 1))
        if threads > cpus:
            self.close()
            raise DDBenchError(f"--threads {threads} asks for more CPUs per run than the Ray cluster at "
                               f"{self.address} has ({cpus}); lower --threads")
        self.slots = jobs or max(1, int(resources.get("GPU", 0)) if gpus else cpus // max(1, threads))
        from .worker import run_unit

        self._task = ray.remote(run_unit).options(num_cpus=threads, num_gpus=gpus, max_retries=retries,
                                                  retry_exceptions=False)
        self.name = f"ray at {self.address} ({self.slots} at once, {threads} CPU{'s' if threads > 1 else ''}" + \
                    (f" + {gpus} GPU" if gpus else "") + " per run)"
        try:
            self.check_storage()
        except BaseException:
            self.close()
            raise

    def check_storage(self, timeout: float = 180.0) -> None:
        """Every node must read a token the driver writes into the storage folder."""
        ray = self.ray
        try:
            self.home.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DDBenchError(f"cannot create the storage folder {self.home} ({e.strerror}); give --storage a "
                               "folder every Ray node mounts at the same path") from None
        token = uuid.uuid4().hex
        where = _write_token(self.home, token)
        try:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            nodes = [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0]
            reader = ray.remote(_read_token)
            refs = {n.get("NodeManagerAddress", n["NodeID"]): reader.options(
                num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(
                str(self.home / ".ddbench-storage-check" / token)) for n in nodes}
            try:
                seen = dict(zip(refs, ray.get(list(refs.values()), timeout=timeout)))
            except Exception as e:  # GetTimeoutError and friends
                raise DDBenchError(f"could not check the storage folder {self.home} on the Ray nodes within "
                                   f"{timeout:.0f} s ({type(e).__name__}); are the workers up?") from None
        finally:
            try:
                where.unlink()
            except OSError:
                pass
        blind = [node for node, text in seen.items() if text != token]
        if blind:
            raise DDBenchError(f"the storage path {self.home} is not shared: Ray node {blind[0]} cannot read a file "
                               "the driver wrote there; give --storage a folder every node mounts at the same path "
                               "(NFS, a cluster file system)")

    def submit(self, payload):
        return self._task.remote(payload)

    def wait(self, handles, timeout):
        ray = self.ray
        ready, _ = ray.wait(handles, num_returns=len(handles), timeout=timeout, fetch_local=True)
        out = []
        for ref in ready:
            try:
                out.append((ref, ray.get(ref), None))
            except Exception as e:  # WorkerCrashedError after the retries, TaskCancelledError, …
                out.append((ref, None, WorkerLost(f"{type(e).__name__}: {' '.join(str(e).split())[:300]}")))
        return out

    def interrupt(self, handles):
        for ref in handles:
            try:
                self.ray.cancel(ref)
            except Exception:  # noqa: BLE001 - already finished
                pass

    def close(self, now=False):
        if self._started:
            self._started = False
            self.ray.shutdown()


def _write_token(home: Path, token: str) -> Path:
    folder = home / ".ddbench-storage-check"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / token
    path.write_text(token)
    return path


def local(cache_root: Path, jobs: int | None, threads: int | None) -> Executor:
    cores = cpu_count()
    if jobs is None:
        jobs = max(1, cores // threads) if threads else cores
    if threads is None:
        threads = max(1, cores // jobs)
    if jobs == 1:
        ex: Executor = InlineExecutor(cache_root, threads)
        ex.name = f"local (this process, {threads} thread{'s' if threads > 1 else ''})"
        ex.threads = threads
        return ex
    return LocalExecutor(cache_root, jobs, threads)


def wait_briefly(executor: Executor, handles: list[Any], seconds: float) -> list[tuple[Any, Any, Any]]:
    """Collect what finishes within ``seconds`` (after an interrupt)."""
    out, deadline = [], time.time() + seconds
    pending = list(handles)
    while pending and time.time() < deadline:
        got = executor.wait(pending, timeout=min(1.0, max(0.05, deadline - time.time())))
        out.extend(got)
        done = {id(h) for h, _, _ in got}
        pending = [h for h in pending if id(h) not in done]
    return out


def payload_for(executor: Executor, spec: Mapping[str, Any], plugins: list, env: Mapping[str, str]) -> dict[str, Any]:
    return {"spec": dict(spec), "cache": str(executor.cache_root), "verify": executor.verify,
            "home": str(executor.home) if executor.home else None, "threads": getattr(executor, "threads", 0),
            "plugins": plugins, "env": dict(env), "signals": executor.signals}
