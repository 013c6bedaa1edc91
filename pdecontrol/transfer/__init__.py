"""Grid transfers: sparse ``P``/``R``, matrix-free batched transfers, and the Galerkin
restriction / prolongation of convolution stencils, for node-centred (``centring="node"``, the
default: d-linear interpolation, full weighting) and cell-centred grids (``centring="cell"``:
piecewise-constant injection, cell averaging); ``P = 2**d R.T`` in both families.

* :mod:`~pdecontrol.transfer.matrices` - ``prolongation_matrix``, ``restriction_matrix`` (CSR).
* :mod:`~pdecontrol.transfer.grids` - ``restrict``, ``prolong``, ``restrict_image`` (batched,
  zero outside the grid) and ``restrict_field``, ``prolong_field`` (parameter fields, extended by
  constants).
* :mod:`~pdecontrol.transfer.galerkin` - ``restrict_stencil``, ``prolong_stencil`` and the map.
"""

from .galerkin import (
    galerkin_restriction_matrix,
    prolong_stencil,
    restrict_stencil,
    restrict_stencil_transpose,
)
from .grids import prolong, prolong_field, restrict, restrict_field, restrict_image
from .matrices import (
    CENTRINGS,
    INTERPOLATION_WEIGHTS,
    PROLONGATION_WEIGHTS,
    prolongation_matrix,
    restriction_matrix,
)

__all__ = [
    "CENTRINGS",
    "INTERPOLATION_WEIGHTS",
    "PROLONGATION_WEIGHTS",
    "prolongation_matrix",
    "restriction_matrix",
    "restrict",
    "prolong",
    "restrict_image",
    "restrict_field",
    "prolong_field",
    "galerkin_restriction_matrix",
    "restrict_stencil",
    "restrict_stencil_transpose",
    "prolong_stencil",
]
