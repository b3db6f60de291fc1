"""The Ray runner: items flow through a Ray Data pipeline into a pool of actors, one model per actor.

The items (small JSON rows) become a dataset of one block per item; ``map_batches`` hands them one
at a time to :class:`~.worker.RayItemWorker` actors (``ActorPoolStrategy``: ``workers`` actors, each
reserving ``threads_per_worker`` CPUs and ``gpus_per_worker`` GPUs and building its model once). Each
actor writes its items' outputs into the output folder itself (storage every node sees) and returns
the status record only, so the driver holds a few hundred bytes per item, never masks.

Fault tolerance is Ray Data's default for actor pools: an actor whose process dies (SIGKILL, out of
memory, a lost node) is restarted and the item it was running is sent again; the temporary folder of
the dead attempt is removed when the item starts again. An item whose workers died on it more than
``max_retries`` times is recorded as failed by its next attempt (the attempt count lives in the
output folder, see :mod:`.staging`), and one that Ray gives up on first is recorded as failed by the
driver (``DataContext.max_errored_blocks = -1``); the other items go on.

Where Ray runs: an address (``options.ray``) or ``RAY_ADDRESS`` joins that cluster, after checking
that it can be reached at all; otherwise a local instance is started for the run, bound to
127.0.0.1 (nothing listens on other addresses) and shut down at the end, also on Ctrl-C. A Ray
connection the caller opened already (``ray.init`` before the run) is used as is and left open.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys

from .items import BatchInputError
from .records import write_status
from .worker import RayItemWorker

__all__ = ["WorkerStartError", "check_ray", "check_reachable", "connect", "run_on_ray"]

_DEFAULT_PORTS = {"ray": 10001, "": 6379}  # Ray Client, GCS
# Ray Data settings for the run (the caller's are restored after): our own progress bar, and an item
# whose worker keeps dying fails alone instead of stopping the run.
_CONTEXT = {"enable_progress_bars": False, "print_on_execution_start": False, "max_errored_blocks": -1}


class WorkerStartError(RuntimeError):
    """The Ray workers could not start (their model did not build); the message has the cause."""


def _import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise BatchInputError(
            "running on Ray needs Ray Data: pip install 'masklet[ray]' (or pip install 'ray[data]')"
        ) from None
    return ray


def check_ray(options) -> None:
    """BatchInputError when Ray Data is not installed or the cluster to join does not answer."""
    _import_ray()
    if options.address:
        check_reachable(options.address)


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """BatchInputError in one line when nothing answers at a ``host:port`` or ``ray://host:port``."""
    if address == "auto":
        return  # ray.init looks for a cluster started on this machine and says so when there is none
    scheme, _, rest = address.rpartition("://")
    host, colon, port = rest.rstrip("/").rpartition(":")
    if not colon:
        host, port = rest, str(_DEFAULT_PORTS.get(scheme, 6379))
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except (OSError, ValueError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
        raise BatchInputError(
            f"cannot reach the Ray cluster at {address} ({why}); start it (ray start --head on its head "
            "node), correct the address, or give --ray without an address for a local Ray instance"
        ) from None


@contextlib.contextmanager
def _loopback_only(ray):
    """Make a new local instance advertise and bind 127.0.0.1 instead of this machine's network IP.

    Ray picks a node's IP through ``ENABLE_RAY_CLUSTER`` (its switch for laptops, where it uses the
    loopback address); its servers then listen on that address only.
    """
    constants = ray._private.ray_constants
    before = constants.ENABLE_RAY_CLUSTER
    constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        constants.ENABLE_RAY_CLUSTER = before


def connect(options) -> bool:
    """Connect to Ray as ``options`` say; True when this call connected (and the run must disconnect)."""
    ray = _import_ray()
    address = options.address
    if address:
        check_reachable(address)
    if ray.is_initialized():
        return False
    if address:
        try:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise BatchInputError(f"cannot join the Ray cluster at {address}: {_last_line(exc)}") from None
        return True
    threads = options.threads_per_worker or 1
    cpus = max(os.cpu_count() or 1, options.workers * threads)
    with _loopback_only(ray):
        ray.init(
            address="local",
            num_cpus=cpus,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,  # a one-machine instance for this run: no notices about clusters
        )
    return True


def _check_resources(ray, options, local: bool) -> None:
    """A local instance without room for every worker is an error (its size is fixed); a cluster may
    still grow (an autoscaler adds nodes while Ray Data works with the workers it has): a note."""
    total = ray.cluster_resources()
    cpus, gpus = total.get("CPU", 0.0), total.get("GPU", 0.0)
    threads, per_gpu = options.threads_per_worker or 1, options.gpus_per_worker
    fit = min(cpus // threads, gpus // per_gpu if per_gpu else options.workers)
    if fit >= options.workers:
        return
    has = f"{cpus:g} CPUs and {gpus:g} GPUs"
    needs = f"{threads} CPU(s) and {per_gpu:g} GPU(s)"
    if local:
        raise BatchInputError(
            f"this machine has {has}: room for {int(fit)} of {options.workers} workers needing {needs} "
            "each; use fewer workers or a smaller --gpus-per-worker, or join a cluster with --ray ADDRESS"
        )
    print(
        f"note: the Ray cluster has {has} now, room for {int(fit)} of {options.workers} workers ({needs} "
        "each); the others start when nodes join (Ctrl-C to stop)",
        file=sys.stderr,
    )


def _last_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def run_on_ray(job, model, out, todo, options, on_status) -> None:
    """Run ``todo`` (items) on a pool of Ray actors; ``on_status(record)`` is called as each finishes."""
    started = connect(options)
    ray = _import_ray()
    from ray.data import DataContext

    ctx = DataContext.get_current()
    saved = {name: getattr(ctx, name, None) for name in _CONTEXT}
    for name, value in _CONTEXT.items():
        setattr(ctx, name, value)
    data_logger = logging.getLogger("ray.data")
    level = data_logger.level
    data_logger.setLevel(logging.CRITICAL)  # failures are reported per item, not as Ray Data tracebacks
    try:
        _check_resources(ray, options, local=started and options.address is None)
        seen = set()
        for row in _pipeline(ray, job, model, out, todo, options).iter_rows():
            status = json.loads(row["status"])
            seen.add(status["item"])
            on_status(status)
        for item in todo:
            if item.key not in seen:
                on_status(_lost(out, item.key, options.max_retries))
    except ray.exceptions.RayActorError as exc:
        raise WorkerStartError(f"a Ray worker could not start: {_last_line(exc)}") from None
    finally:
        data_logger.setLevel(level)
        for name, value in saved.items():
            setattr(ctx, name, value)
        if started:
            ray.shutdown()


def _pipeline(ray, job, model, out, todo, options):
    from ray.data import ActorPoolStrategy

    rows = [{"item": item.to_json()} for item in todo]
    ds = ray.data.from_items(rows, override_num_blocks=len(rows))
    gpus = options.gpus_per_worker or None
    return ds.map_batches(
        RayItemWorker,
        fn_constructor_kwargs={
            "job": job,
            "model": model,
            "out": str(out),
            "threads": options.threads_per_worker or 1,
            "max_retries": options.max_retries,
        },
        batch_size=1,
        # one item at a time per actor: a long video never holds back a queued short one
        compute=ActorPoolStrategy(size=options.workers, max_tasks_in_flight_per_actor=1),
        num_cpus=options.threads_per_worker or 1,
        num_gpus=gpus,
    )


def _lost(out, key: str, retries: int) -> dict:
    """The failed record of an item whose worker died on every attempt (written by the driver)."""
    status = {
        "item": key,
        "state": "failed",
        "error": f"Ray gave up on it after its worker died {retries + 1} or more times (killed, out of "
        "memory, or a crash in native code); see the Ray worker logs",
        "frames": 0,
        "masks": 0,
        "outputs": [],
    }
    write_status(out, key, status)
    return status
