"""The host CPU as a mapspace target: an :class:`Arch` built from what the OS reports.

``host_arch()`` reads

* cache sizes, levels and types from ``/sys/devices/system/cpu/cpu0/cache/index*/``
  (data/unified caches only; instruction caches are skipped);
* the usable cores from ``os.sched_getaffinity(0)`` (else ``os.cpu_count()``);
* the vector width from the ``/proc/cpuinfo`` flags: ``avx512f`` -> 512 bits (16 fp32
  lanes, 32 vector registers), ``avx``/``avx2`` -> 256 bits (8 lanes, 16 registers), else
  128 bits (4 lanes, 16 registers).

Levels, outermost first: ``DRAM`` -> ``L3`` (one, shared) -> ``L2`` -> ``L1`` ->
``Registers`` (one per core each).  The core fan-out sits below the last shared level
(``L3``, or ``DRAM`` when there is no L3); the vector-lane fan-out sits below
``Registers`` (compute = cores x lanes MACs).  Any level the OS does not report falls back
to a typical size (L1 32 KiB, L2 1 MiB, L3 none).  Caches get ``multiple_buffering = 2``:
a mapping's tiles may fill half of each (set conflicts, LRU replacement, and the packed
weight copy the emitter adds leave the rest).  Capacities are in *words* of the
problem's element width (``word_bits``: 32 for fp32, 8 for int8), so an int8 mapping may
hold four times as many elements in the same cache.  ``Registers`` holds the output
output accumulators *and* the current slice of both operands (a micro-kernel: per
reduction step, ``P_r`` broadcast inputs and ``M_r`` weight vectors feed ``P_r x M_r``
accumulators): all vector registers times the lanes, counted in accumulator words (the
lanes are those of 32-bit accumulators for every dtype: int8 products are widened to int32
before accumulating).

Energy table (pJ per access of one ``width``-bit block, and per MAC) -- an ESTIMATE, only
meant to rank mappings by orders of magnitude, from Horowitz, "Computing's energy
problem", ISSCC 2014 (45 nm): 64-bit reads cost ~10 pJ from an 8 KiB SRAM, ~20 pJ from
32 KiB, ~100 pJ from 1 MiB, 1.3-2.6 nJ from DRAM; an fp32 multiply 3.7 pJ + add 0.9 pJ, an
int8 multiply 0.2 pJ + int32 add 0.1 pJ.  We scale these per bit to each level's block
width: register file 0.1 pJ/bit-word-ish (1 pJ per 64 bits), L1 20 pJ/64 bits, L2
100 pJ/64 bits, L3 200 pJ/64 bits, DRAM 2000 pJ/64 bits.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mapspace.arch import ActionEnergy, Arch, ComputeUnit, StorageLevel
from mapspace.constraints import Constraints
from mapspace.constraints_yaml import constraints_from_list
from mapspace.problem import Problem
from targets.host import num_cores
from targets.tvm_common import op_spec

_SYS_CACHE = Path("/sys/devices/system/cpu/cpu0/cache")
_CPUINFO = Path("/proc/cpuinfo")

#: pJ per 64 bits accessed (Horowitz ISSCC 2014 orders of magnitude; see module doc)
PJ_PER_64_BITS = {"Registers": 1.0, "L1": 20.0, "L2": 100.0, "L3": 200.0, "DRAM": 2000.0}
#: pJ per MAC by element width
PJ_PER_MAC = {32: 4.6, 8: 0.3}
#: fallback cache sizes (bytes) when the OS reports none
FALLBACK_BYTES = {1: 32 * 1024, 2: 1024 * 1024}
LINE_BITS = 512
#: a cache's capacity divided by this is what one mapping's tiles may use (``multiple_buffering``)
CACHE_SHARE = 2.0


def read_text(path: Path) -> str | None:
    """Contents of a /sys or /proc file, ``None`` when missing (monkeypatched in tests)."""
    try:
        return path.read_text()
    except OSError:
        return None


def _size_bytes(text: str) -> int | None:
    t = text.strip().upper()
    mult = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}
    try:
        if t and t[-1] in mult:
            return int(t[:-1]) * mult[t[-1]]
        return int(t)
    except ValueError:
        return None


def cache_sizes(root: Path = _SYS_CACHE) -> dict[int, int]:
    """``{level: bytes}`` of cpu0's data/unified caches as /sys reports them."""
    out: dict[int, int] = {}
    for i in range(16):
        d = root / f"index{i}"
        level, ctype, size = (read_text(d / n) for n in ("level", "type", "size"))
        if level is None or size is None:
            continue
        if ctype is not None and ctype.strip() == "Instruction":
            continue
        b = _size_bytes(size)
        try:
            lv = int(level.strip())
        except ValueError:
            continue
        if b:
            out[lv] = b
    return out


def cpu_flags() -> set[str]:
    """The ``flags`` of the first processor in /proc/cpuinfo (empty when unreadable)."""
    text = read_text(_CPUINFO) or ""
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


@dataclass(frozen=True)
class VectorUnit:
    bits: int
    registers: int

    @property
    def lanes(self) -> int:
        """32-bit lanes (fp32, or the int32 accumulators of int8)."""
        return self.bits // 32


def vector_unit(flags: set[str] | None = None) -> VectorUnit:
    f = cpu_flags() if flags is None else flags
    if "avx512f" in f:
        return VectorUnit(512, 32)
    if "avx2" in f or "avx" in f:
        return VectorUnit(256, 16)
    return VectorUnit(128, 16)


def llvm_mcpu(flags: set[str] | None = None) -> str | None:
    """An LLVM ``-mcpu`` for the host from its flags (``None``: plain llvm)."""
    f = cpu_flags() if flags is None else flags
    if "avx512f" in f:
        return "cascadelake" if "avx512_vnni" in f else "skylake-avx512"
    if "avx2" in f and "fma" in f:
        return "haswell"
    return None


def _level(name: str, size_bits: int | None, width: int, word_bits: int, instances: int,
           cls: str) -> StorageLevel:
    depth = None if size_bits is None else max(1, size_bits // width)
    e = PJ_PER_64_BITS[name] * width / 64
    # caches: half the capacity usable by one tile set (set conflicts, LRU, packed copies)
    mb = CACHE_SHARE if cls == "SRAM" else 1.0
    return StorageLevel(name=name, cls=cls, instances=instances, mesh_x=instances, mesh_y=1,
                        depth=depth, width=width, datawidth=word_bits, multiple_buffering=mb,
                        energy=ActionEnergy(read=e, write=e, update=e))


def host_arch(word_bits: int = 32) -> Arch:
    """The host CPU (see module doc); capacities in ``word_bits``-bit words."""
    caches = cache_sizes()
    cores = num_cores()
    vec = vector_unit()
    l1 = caches.get(1, FALLBACK_BYTES[1])
    l2 = caches.get(2, FALLBACK_BYTES[2])
    l3 = caches.get(3)
    line = max(LINE_BITS, word_bits)
    levels = [_level("DRAM", None, line, word_bits, 1, "DRAM")]
    if l3:
        levels.append(_level("L3", l3 * 8, line, word_bits, 1, "SRAM"))
    levels.append(_level("L2", l2 * 8, line, word_bits, cores, "SRAM"))
    levels.append(_level("L1", l1 * 8, line, word_bits, cores, "SRAM"))
    # the vector register file: `registers` vectors of `lanes` 32-bit words (accumulator
    # width), counted in word_bits
    acc_bits = vec.registers * vec.bits
    reg_width = max(word_bits, vec.lanes * word_bits)
    levels.append(_level("Registers", acc_bits * word_bits // 32, reg_width, word_bits,
                         cores, "regfile"))
    mac = PJ_PER_MAC.get(word_bits, PJ_PER_MAC[32])
    compute = ComputeUnit(name="FMA", instances=cores * vec.lanes, mesh_x=cores * vec.lanes,
                          mesh_y=1, datawidth=word_bits, energy=mac)
    return Arch(name="cpu", levels=tuple(levels), compute=compute, cycle_seconds=1 / 2.5e9)


_REDUCTION = ("C", "R", "S")
_ALL = ["Weights", "Inputs", "Outputs"]


def constraints_list(vector_dim: str | None = None, word_bits: int = 32,
                     wide: bool = False, resident: bool = False) -> list[dict]:
    """The CPU constraints as a Timeloop-style list (see :func:`cpu_constraints`)."""
    arch = host_arch(word_bits)
    names = arch.level_names
    core_level = names[names.index("L2") - 1]
    lst: list[dict] = []
    for n in names:
        lst.append({"target": n, "type": "datatype", "keep": _ALL, "bypass": []})
    # parallel loops carry no reduction
    lst.append({"target": core_level, "type": "spatial", "factors": "C=1 R=1 S=1"})
    for n in names:
        if n not in (core_level, "Registers"):
            lst.append({"target": n, "type": "spatial",
                        "factors": " ".join(f"{d}=1" for d in "CMRSNPQ")})
    lanes = [d for d in "CMRSNPQ" if d != (vector_dim or "")] if vector_dim else \
        ["C", "R", "S", "N", "Q"]
    lst.append({"target": "Registers", "type": "spatial",
                "factors": " ".join(f"{d}=1" for d in lanes)})
    # the register tile is an output tile (no reduction inside it); the reduction runs
    # innermost in L1 so the accumulators stay in registers across it
    reg = "C=1 R=1 S=1" + (f" {vector_dim}>=2" if wide and vector_dim else "")
    lst.append({"target": "Registers", "type": "temporal", "factors": reg})
    if resident:
        # the whole reduction directly around the register tile: L1 loops only over it,
        # L2 runs its reduction loops innermost, nothing above L2 splits it
        lst.append({"target": "L1", "type": "temporal", "permutation": "CSR",
                    "factors": "N=1 M=1 P=1 Q=1"})
        lst.append({"target": "L2", "type": "temporal", "permutation": "CSR"})
        for n in names[:names.index("L2")]:
            lst.append({"target": n, "type": "temporal", "factors": "C=1 R=1 S=1"})
    else:
        lst.append({"target": "L1", "type": "temporal", "permutation": "CSR"})
    return lst


def cpu_constraints(problem: Problem | None = None, word_bits: int = 32,
                    vector_dim: str | None = None) -> Constraints:
    """Constraints suited to a CPU.

    * every level keeps every tensor (registers: the micro-kernel's operands and sums);
    * the core fan-out (below the last shared level) only over output dims, so parallel
      loops carry no reduction;
    * the vector lanes only over the innermost contiguous output dim: ``M`` for a
      matmul/bmm, ``P`` for a conv (without a problem: any of ``M``/``P``); ``vector_dim``
      overrides it (``"M"`` for a conv whose weights have the output channels innermost,
      as the TVM plug-in lays them out: the lanes then span output channels);
    * no reduction inside the register tile, and ``C``, ``S``, ``R`` innermost in L1;
    * when the vector dim spans at least 4 vectors: the register tile is at least two
      vectors wide (``Registers`` temporal factor >= 2 on it).  The model prices reads per
      ``width``-bit block, so it counts a scalar broadcast of an input as 1/lanes of a
      load; on a CPU it is a full load, and a one-vector-wide tile spends one broadcast per
      FMA (measured 62 ms vs 44 ms on bert-base/ffn1, 2 AVX2 cores);
    * a conv vectorised over ``M`` (``vector_dim="M"``) also keeps its whole reduction
      directly around the register tile (L1 loops only over ``C``/``R``/``S``, L2 runs
      them innermost, no level above L2 splits them), so the accumulators never leave the
      registers: otherwise :func:`targets.cpu.emit.apply_mapping` has no register tile and
      accumulates in the NCHW output, one strided scatter per FMA (measured 49 ms against
      3.7 ms on a 128x28x28 3x3 conv).
    """
    vdim = None
    if problem is not None:
        try:
            kind = op_spec(problem).kind
        except Exception:  # noqa: BLE001 - not an emittable op: generic constraints
            kind = None
        vdim = {"matmul": "M", "bmm": "M", "conv2d": "P",
                "depthwise_conv2d": "P"}.get(kind or "")
        if vdim is not None and vector_dim:
            vdim = vector_dim
    lanes = vector_unit().lanes
    sizes = dict(zip(problem.dims, problem.sizes, strict=True)) if problem else {}
    wide = vdim is not None and sizes[vdim] >= 4 * lanes
    resident = vdim == "M" and "R" in sizes and "S" in sizes
    return constraints_from_list(constraints_list(vdim, word_bits, wide, resident),
                                 "default constraints of 'cpu'", strict=False)


__all__ = ["cpu_constraints", "host_arch", "llvm_mcpu", "vector_unit", "cache_sizes",
           "cpu_flags", "num_cores", "read_text"]
