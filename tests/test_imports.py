"""TVM (and numba's compiled kernels) are imported lazily: the core packages and the CLI
module load without them, so ``import mapspace`` stays fast and works where TVM is absent."""

import subprocess
import sys

import pytest

HEAVY = ("tvm", "tvm_ffi", "onnx", "ortools", "matplotlib", "torch", "onnxruntime")


@pytest.mark.parametrize("modules", ["mapspace", "mapspace, cost_models",
                                     "mapspace, cost_models, targets", "compiler.cli"])
def test_core_imports_leave_heavy_libraries_unloaded(modules):
    code = (f"import sys; import {modules}; "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "", f"importing {modules} loaded {out}"


def test_import_mapspace_without_tvm_installed():
    """A meta-path hook that refuses ``tvm`` stands in for an environment without it."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('tvm', 'tvm_ffi'):\n"
        "            raise ImportError('no tvm here')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import mapspace, cost_models, targets, compiler.cli\n"
        "from mapspace import matmul\n"
        "from targets.tvm_common import op_spec\n"
        "print(op_spec(matmul(4, 4, 4)).kind)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "matmul"
