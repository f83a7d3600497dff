"""Built-in targets: Timeloop-format architecture + energy table files shipped in this package.

``load_target(name)`` gives the :class:`~mapspace.arch.Arch`; ``default_constraints(name)``
its built-in mapspace constraints; ``list_targets()`` summarises each target (levels with
capacity and instances, PE count, DRAM bandwidth) for the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from mapspace.arch import Arch
from mapspace.arch_yaml import load_arch
from mapspace.constraints import Constraints
from mapspace.constraints_yaml import constraints_from_list, load_constraints
from mapspace.errors import MapspaceError

_ROOT = Path(__file__).resolve().parent


@dataclass(frozen=True)
class LevelInfo:
    """One storage level of a target: capacity in words per instance (``None`` = unbounded)."""

    name: str
    capacity_words: int | None
    word_bits: int
    instances: int


@dataclass(frozen=True)
class TargetInfo:
    """A built-in target and its key parameters."""

    name: str
    description: str
    folder: str
    levels: tuple[LevelInfo, ...]
    pes: int
    dram_bandwidth: float | None

    @property
    def arch_path(self) -> Path:
        return _ROOT / self.folder / "arch.yaml"

    @property
    def ert_path(self) -> Path:
        return _ROOT / self.folder / "ERT.yaml"


#: name -> (folder, description)
TARGETS: dict[str, tuple[str, str]] = {
    "gemmini": ("gemmini", "Gemmini-like 16x16 weight-stationary systolic array: 256 KiB "
                "scratchpad, 64 KiB accumulator, INT8 MACs"),
    "gemmini-acc128": ("gemmini_acc128", "Gemmini variant with a 128 KiB accumulator"),
    "gemmini-acc256": ("gemmini_acc256", "Gemmini variant with a 256 KiB accumulator and a "
                       "64 KiB scratchpad"),
    "eyeriss-like": ("eyeriss_like", "Eyeriss-like row-stationary 14x12 PE array "
                     "(timeloop-accelergy-exercises)"),
    "simba-like": ("simba_like", "Simba-like 16 PEs x 4 vector lanes x 4-wide MACs "
                   "(timeloop-accelergy-exercises)"),
    "cpu": ("cpu", "The host CPU, computed from /sys and /proc/cpuinfo (caches, cores, "
            "vector lanes); estimated energies (targets/cpu)"),
}

#: targets computed at load time rather than read from YAML: name -> module under targets/
COMPUTED = {"cpu": "targets.cpu"}


def _folder(name: str) -> str:
    if name not in TARGETS:
        raise MapspaceError(f"unknown target {name!r} (known targets are "
                            f"{', '.join(TARGETS)})", where="load_target")
    return TARGETS[name][0]


@cache
def load_target(name: str) -> Arch:
    """The :class:`Arch` of a built-in target (architecture + its energy table)."""
    folder = _ROOT / _folder(name)
    if name in COMPUTED:
        import importlib

        return importlib.import_module(COMPUTED[name]).host_arch()
    return load_arch(folder / "arch.yaml", folder / "ERT.yaml")


def target_info(name: str) -> TargetInfo:
    """Key parameters of one built-in target."""
    arch = load_target(name)
    dram = arch.levels[0]
    bw = dram.shared_bandwidth if dram.shared_bandwidth is not None else dram.read_bandwidth
    return TargetInfo(
        name=name, description=TARGETS[name][1], folder=_folder(name),
        levels=tuple(LevelInfo(lv.name, lv.capacity, lv.datawidth, lv.instances)
                     for lv in arch.levels),
        pes=arch.compute.instances, dram_bandwidth=bw,
    )


def list_targets() -> list[TargetInfo]:
    """Every built-in target, in registry order."""
    return [target_info(n) for n in TARGETS]


_ALL = ["Weights", "Inputs", "Outputs"]

#: keep/bypass directives of the timeloop-accelergy-exercises mappings of the eyeriss-like
#: and simba-like designs (their ``mapping:`` datatype entries); dummy levels keep nothing.
_DATATYPE_DEFAULTS: dict[str, list[tuple[str, list[str]]]] = {
    "eyeriss-like": [
        ("DRAM", _ALL), ("shared_glb", ["Inputs", "Outputs"]),
        ("inter_PE_column_spatial", []), ("inter_PE_spatial", []),
        ("ifmap_spad", ["Inputs"]), ("weights_spad", ["Weights"]), ("psum_spad", ["Outputs"]),
    ],
    "simba-like": [
        ("DRAM", _ALL), ("GlobalBuffer", ["Inputs", "Outputs"]), ("inter_PE_spatial", []),
        ("PEInputBuffer", ["Inputs"]), ("inter_distributed_buffers_spatial", []),
        ("PEWeightBuffer", ["Weights"]), ("PEAccuBuffer", ["Outputs"]),
        ("inter_reg_mac_spatial", []), ("PEWeightRegs", ["Weights"]),
    ],
}


@cache
def default_constraints(name: str) -> Constraints:
    """The built-in constraints of a target (``strict=False``: names a problem lacks are
    dropped when resolved).

    Gemmini and its variants: the ``architecture_constraints`` of their ``arch.yaml``
    (weights stationary in the PE registers, outputs in the accumulator, scratchpad fan-out
    over M only, accumulator fan-out over C only along Y).  Eyeriss-like and simba-like:
    keep/bypass per level as in their reference mappings, dummy levels keeping nothing.
    """
    folder = _ROOT / _folder(name)
    if name in COMPUTED:
        import importlib

        return importlib.import_module(COMPUTED[name]).cpu_constraints()
    if name in _DATATYPE_DEFAULTS:
        arch = load_target(name)
        keeps = dict(_DATATYPE_DEFAULTS[name])
        for lv in arch.levels:
            if lv.is_dummy:
                keeps.setdefault(lv.name, [])
        lst = [{"target": lvl, "type": "datatype", "keep": keep,
                "bypass": [t for t in _ALL if t not in keep]} for lvl, keep in keeps.items()]
        return constraints_from_list(lst, f"default constraints of {name!r}", strict=False)
    return load_constraints(folder / "arch.yaml", strict=False)
