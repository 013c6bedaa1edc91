"""Running any control functional on a Dask cluster (``pip install 'pdecontrol[distributed]'``).

* :class:`DistributedControlFunctional` - a :class:`~pdecontrol.control.ControlFunctional`
  whose misfit, gradient and Gauss-Newton products are evaluated on example shards held by
  Dask workers (:mod:`~pdecontrol.distributed.functional`; importing it imports ``dask``);
* :func:`start_client`, :func:`using`, :func:`distribute`, :func:`on_shards` - a local cluster
  or a scheduler, the current client that problems distribute their functionals on, and
  per-shard queries
  (:mod:`~pdecontrol.distributed.cluster`; no ``dask`` needed until a client is started).

See ``docs/distributed.md``.
"""

from .cluster import (
    current_client,
    distribute,
    on_shards,
    start_client,
    using,
)

__all__ = [
    "DistributedControlFunctional",
    "TransferMeter",
    "start_client",
    "using",
    "current_client",
    "distribute",
    "on_shards",
]


def __getattr__(name):
    """The classes of :mod:`~pdecontrol.distributed.functional`, imported (with dask) on use."""
    if name in ("DistributedControlFunctional", "TransferMeter"):
        from . import functional

        return getattr(functional, name)
    raise AttributeError(f"module 'pdecontrol.distributed' has no attribute {name!r}")
