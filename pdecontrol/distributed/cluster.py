"""Connecting to a Dask cluster, and the client that problems distribute their functionals on.

:func:`start_client` starts a local cluster of ``workers`` processes on the loopback interface,
or connects to a running scheduler; either way every worker computes in one thread (serial
kernels, one BLAS / OpenMP thread: the processes are the parallelism). :func:`using` makes a
client *current* for a block, and
:func:`distribute` turns a serial :class:`~pdecontrol.control.ControlFunctional` into its
distributed twin when a client is current (and leaves it alone otherwise): a problem calls it
where it builds its functionals, and runs serially or on a cluster unchanged.
"""

from __future__ import annotations

from contextlib import contextmanager

from .._validation import check_int

__all__ = ["start_client", "using", "current_client", "distribute", "on_shards"]

_CURRENT = []


def start_client(workers: int | None = None, address: str | None = None, *,
                 retain_memory: bool = True):
    """A :class:`distributed.Client`: on a new local cluster of ``workers`` processes, or on the
    scheduler at ``address`` (e.g. ``"tcp://10.0.0.1:8786"``). Close it (and its cluster) with
    ``client.close()`` / ``client.cluster.close()``, or use it as a context manager.

    Every worker, and every worker that joins or restarts later, computes in one thread
    (:class:`~pdecontrol.distributed.plugins.OneComputeThread`), and with ``retain_memory`` keeps
    freed memory (:func:`pdecontrol.memory.retain_freed_memory`; Dask's default makes glibc
    return it at once, and each batch of states then page-faults its memory in again).
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError:  # pragma: no cover - depends on the installation
        raise ImportError("running on a cluster needs dask.distributed: pip install "
                          "'pdecontrol[distributed]'") from None
    if (workers is None) == (address is None):
        raise ValueError("give the number of local workers or the address of a scheduler "
                         "(one of them)")
    if address is not None:
        client = Client(address)
    else:
        workers = check_int(workers, "workers", 1)
        client = Client(LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                     host="127.0.0.1", dashboard_address="127.0.0.1:0"))
    from .plugins import OneComputeThread, RetainFreedMemory

    client.register_plugin(OneComputeThread())
    if retain_memory:
        client.register_plugin(RetainFreedMemory())
    return client


@contextmanager
def using(client):
    """``with using(client):`` :func:`distribute` and :func:`current_client` use ``client``."""
    _CURRENT.append(client)
    try:
        yield client
    finally:
        _CURRENT.remove(client)


def current_client():
    """The client of the innermost :func:`using` block, or ``None``."""
    return _CURRENT[-1] if _CURRENT else None


def distribute(functional, n_shards=None):
    """``functional``'s :class:`~pdecontrol.distributed.DistributedControlFunctional` twin when a
    client is current, else ``functional`` itself."""
    client = current_client()
    if client is None:
        return functional
    from .functional import DistributedControlFunctional

    return DistributedControlFunctional.from_functional(functional, client, n_shards)


def on_shards(functional, function) -> list:
    """``function`` applied to each shard of a distributed ``functional`` (on the workers, see
    :meth:`DistributedControlFunctional.map_shards`), or ``[function(functional)]`` for a
    serial one: e.g. to add up counts kept by the copies of a stepper on the workers."""
    map_shards = getattr(functional, "map_shards", None)
    return [function(functional)] if map_shards is None else map_shards(function)
