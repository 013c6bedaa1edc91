"""Numba's CPU features as pdecontrol.ops sets them on import (512-bit vectors), fresh processes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import llvmlite.binding as llvm
import pytest

from pdecontrol.ops._codegen import NO_256_BIT_PREFERENCE

HOST_FEATURES = llvm.get_host_cpu_features()
AVX512 = pytest.mark.skipif(
    not HOST_FEATURES.get("avx512f", False),
    reason="host CPU lacks avx512f: pdecontrol.ops leaves Numba's vector width alone here",
)

# ``before`` runs ahead of ``import pdecontrol.ops``; then a saxpy loop is compiled and its
# assembly searched for 512-bit (zmm) registers
SCRIPT = """
import json, logging, sys
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
exec(sys.argv[1])
import numpy as np
from numba import njit
from numba.core import config
import pdecontrol.ops
from pdecontrol.ops import _codegen

@njit(fastmath=True)
def saxpy(a, x, y):
    for i in range(x.size):
        y[i] += a * x[i]

saxpy(np.float32(2), np.ones(256, np.float32), np.ones(256, np.float32))
asm = "".join(saxpy.inspect_asm().values())
print(json.dumps({"status": _codegen.CODEGEN_STATUS, "features": config.CPU_FEATURES,
                  "zmm": "zmm" in asm}))
"""


def run_fresh(before: str = "", **environment) -> tuple[dict, str]:
    """Run SCRIPT in a new interpreter without the user's NUMBA_CPU_* settings (plus
    ``environment``); return its JSON line and its stderr."""
    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CPU_FEATURES", "NUMBA_CPU_NAME")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    env.update(environment)
    result = subprocess.run([sys.executable, "-c", SCRIPT, before], env=env, check=True,
                            capture_output=True, text=True, timeout=300)
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


@AVX512
def test_import_turns_off_the_256_bit_preference_on_an_avx512_host():
    report, log = run_fresh()
    assert report["status"] == "applied"
    assert report["features"] == f"{HOST_FEATURES.flatten()},{NO_256_BIT_PREFERENCE}"
    assert report["zmm"], "Numba code compiled after the import uses no 512-bit registers"
    assert "512-bit vectors for Numba (pdecontrol.ops): applied" in log


def test_user_set_numba_cpu_features_win():
    user_features = HOST_FEATURES.flatten()  # the host's own: LLVM's default preference
    report, _ = run_fresh(NUMBA_CPU_FEATURES=user_features)
    assert report["features"] == user_features
    assert report["status"].startswith("NUMBA_CPU_FEATURES or NUMBA_CPU_NAME set by the user")


@AVX512
def test_an_existing_codegen_is_left_alone_and_the_reason_logged():
    report, log = run_fresh("from numba import njit; njit(lambda: 1)")
    assert report["features"] is None
    assert not report["status"] == "applied"
    assert "code generator was created before pdecontrol.ops was imported" in log
