"""Every notebook in ``notebooks/`` runs top to bottom without a cell error.

Each notebook is executed with nbclient on a temporary copy (the committed outputs are left
alone), in the temporary folder, with ``MAPSPACE_NB_SAMPLES=2000`` (the CI sample count of
01) and ``MAPSPACE_NB_BUDGET=500`` (the CI search budget per shape of 02, which also shortens
its sequence sweep); the committed outputs use the notebooks' own defaults.  300 s per cell
(a hang guard, not a speed check: speed is measured in ``benchmarks/``).  One test per
notebook, named after its file, so a failure says which notebook and which cell broke.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
CI_SAMPLES = "2000"
CI_BUDGET = "500"
TIMEOUT_S = 300


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    from nbclient.exceptions import CellExecutionError

    copy = tmp_path / path.name
    shutil.copy(path, copy)
    monkeypatch.setenv("MAPSPACE_NB_SAMPLES", CI_SAMPLES)
    monkeypatch.setenv("MAPSPACE_NB_BUDGET", CI_BUDGET)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(copy, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    try:
        client.execute()
    except CellExecutionError as e:
        pytest.fail(f"notebook {path.name}: a cell raised an error:\n{e}", pytrace=False)
    errors = [(i, o.get("ename"), o.get("evalue"))
              for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
              for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"notebook {path.name}: error outputs in cells {errors}"
