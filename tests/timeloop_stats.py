"""Parser for ``timeloop-model.stats.txt`` into typed records (for conformance tests).

Only the "Buffer and Arithmetic Levels" section and "Summary Stats" are read.  Counts are
as Timeloop prints them: per tensor, scalar reads/fills/updates are *per instance*;
energies are pJ; the summary energy is in uJ (rounded by Timeloop to 2 decimals).
Levels that Timeloop hides (dummy levels) simply do not appear.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class TensorStats:
    """One tensor at one storage level."""

    utilized_capacity: int
    utilized_instances: int
    reads: int
    fills: int
    updates: int
    energy_pj: float
    #: sparse runs (Sparseloop): gated/skipped scalar accesses per instance; None if dense
    gated: dict[str, int] | None = None
    skipped: dict[str, int] | None = None


@dataclass(frozen=True)
class LevelStats:
    """A storage level: a few specs and per-tensor stats (tensors it does not hold are absent)."""

    name: str
    level: int
    cycles: int
    size: int | None
    word_bits: int
    block_size: int
    instances: int
    vector_access_energy_pj: float
    tensors: dict[str, TensorStats] = field(default_factory=dict)


@dataclass(frozen=True)
class ComputeStats:
    """The arithmetic level."""

    name: str
    instances: int
    word_bits: int
    utilized_instances: int
    computes: int
    cycles: int
    energy_pj: float
    #: sparse runs: algorithmic/gated/skipped computes (``computes`` is the actual ones)
    algorithmic_computes: int | None = None
    gated_computes: int | None = None
    skipped_computes: int | None = None


@dataclass(frozen=True)
class Summary:
    """The "Summary Stats" block; ``fj_per_compute`` includes the ``Total`` row."""

    cycles: int
    energy_uj: float
    utilization: float
    computes: int
    fj_per_compute: dict[str, float]


@dataclass(frozen=True)
class TimeloopStats:
    """``levels`` in file order (innermost first), by name."""

    compute: ComputeStats
    levels: dict[str, LevelStats]
    summary: Summary


_KV = re.compile(r"^\s*([^:=]+?)\s*:\s*(.*?)\s*$")


def _num(text: str) -> float:
    m = re.match(r"[-+0-9.eE]+", text.strip())
    if not m:
        raise ValueError(f"no number in {text!r}")
    return float(m.group(0))


def _int(text: str) -> int:
    return int(_num(text))


def _block(lines: list[str]) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """Key/values of a level block: (level-wide, per tensor)."""
    top: dict[str, str] = {}
    tensors: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    in_stats = False
    for line in lines:
        s = line.strip()
        if s == "STATS":
            in_stats = True
            continue
        if not s or set(s) == {"-"} or s == "SPECS":
            continue
        indent = len(line) - len(line.lstrip())
        if in_stats and indent == 4 and s.endswith(":") and ":" not in s[:-1]:
            current = tensors.setdefault(s[:-1], {})
            continue
        m = _KV.match(line)
        if not m:
            continue
        k, v = m.group(1), m.group(2)
        if in_stats and current is not None and indent >= 8:
            current[k] = v
        else:
            top.setdefault(("stats:" if in_stats else "") + k, v)
    return top, tensors


def _tensor(kv: dict[str, str]) -> TensorStats:
    """Dense ("Scalar reads") or sparse ("Actual scalar reads", gated, skipped) fields."""
    sparse = "Actual scalar reads (per-instance)" in kv
    pre = "Actual scalar" if sparse else "Scalar"
    ops = ("reads", "fills", "updates")
    return TensorStats(
        utilized_capacity=_int(kv.get("Utilized capacity")
                               or kv["Max utilized data storage capacity"]),
        utilized_instances=_int(kv["Utilized instances (max)"]),
        reads=_int(kv[f"{pre} reads (per-instance)"]),
        fills=_int(kv[f"{pre} fills (per-instance)"]),
        updates=_int(kv[f"{pre} updates (per-instance)"]),
        energy_pj=_num(kv["Energy (total)"]),
        gated={o: _int(kv[f"Gated scalar {o} (per-instance)"]) for o in ops} if sparse else None,
        skipped={o: _int(kv[f"Skipped scalar {o} (per-instance)"]) for o in ops}
        if sparse else None)


def parse_stats(path: str | Path) -> TimeloopStats:
    """Parse one ``timeloop-model.stats.txt``."""
    lines = Path(path).read_text().splitlines()
    end = next(i for i, s in enumerate(lines) if s.strip() == "Networks")
    blocks: list[tuple[int, str, list[str]]] = []
    level = -1
    for s in lines[:end]:
        if s.startswith("Level "):
            level = int(s.split()[1])
        m = re.match(r"^=== (.+) ===$", s)
        if m:
            blocks.append((level, m.group(1), []))
        elif blocks:
            blocks[-1][2].append(s)
    compute: ComputeStats | None = None
    levels: dict[str, LevelStats] = {}
    for lvl, name, body in blocks:
        top, tens = _block(body)
        sparse = "stats:Actual Computes (total)" in top
        if "stats:Computes (total)" in top or sparse:
            opt = (lambda k, top=top: _int(top[k]) if k in top else None)  # noqa: E731
            compute = ComputeStats(
                name=name, instances=_int(top["Instances"]), word_bits=_int(top["Word bits"]),
                utilized_instances=_int(top.get("stats:Utilized instances")
                                        or top["stats:Utilized instances (max)"]),
                computes=_int(top["stats:Actual Computes (total)" if sparse
                                  else "stats:Computes (total)"]),
                cycles=_int(top["stats:Cycles"]), energy_pj=_num(top["stats:Energy (total)"]),
                algorithmic_computes=opt("stats:Algorithmic Computes (total)"),
                gated_computes=opt("stats:Gated Computes (total)"),
                skipped_computes=opt("stats:Skipped Computes (total)"))
            continue
        size = top.get("Size", top.get("Data storage size", "-"))
        levels[name] = LevelStats(
            name=name, level=lvl, cycles=_int(top["stats:Cycles"]),
            size=None if size.strip() == "-" else _int(size),
            word_bits=_int(top.get("Word bits") or top["Data word bits"]),
            block_size=_int(top.get("Block size") or top["Data block size"]),
            instances=_int(top["Instances"]),
            vector_access_energy_pj=_num(top.get("Vector access energy")
                                         or top["Vector read energy"]),
            tensors={t: _tensor(kv) for t, kv in tens.items()})
    if compute is None:
        raise ValueError(f"{path}: no arithmetic level found")
    start = max(i for i, s in enumerate(lines) if s.strip() == "Summary Stats")
    summ: dict[str, str] = {}
    fj: dict[str, float] = {}
    in_fj = False
    for s in lines[start:]:
        if s.strip() in ("fJ/Compute", "fJ/Algorithmic-Compute") and not fj:
            in_fj = True
            continue
        if in_fj:
            m = re.match(r"^\s+(.+?)\s*=\s*(\S+)\s*$", s)
            if m:
                fj[m.group(1)] = float(m.group(2))
                continue
            if s.strip():
                break
            continue
        m = re.match(r"^(.+?)\s*[:=]\s*(.+)$", s)
        if m:
            summ.setdefault(m.group(1).strip(), m.group(2))
    summary = Summary(cycles=_int(summ["Cycles"]), energy_uj=_num(summ["Energy"]),
                      utilization=_num(summ["Utilization"]) / 100.0,
                      computes=_int(summ.get("Computes") or summ["Algorithmic Computes"]),
                      fj_per_compute=fj)
    return TimeloopStats(compute=compute, levels=levels, summary=summary)
