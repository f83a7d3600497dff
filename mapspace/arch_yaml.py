"""Timeloop architecture YAML (+ Accelergy ERT) <-> :class:`~mapspace.arch.Arch`.

Rules adopted from NVlabs/timeloop (``src/model/topology.cpp``, ``src/model/buffer.cpp``):

* The tree is walked through ``subtree`` (one child per node, as Timeloop requires); a node
  name ``X[a..b]`` multiplies the instance count of everything below it by ``b - a + 1``; a
  component ``Name[1..N]`` has ``N x`` (enclosing multiplier) instances unless it has an
  ``instances`` attribute.  Attributes of enclosing nodes are inherited (timeloopfe does
  this; ``instances``/``meshX``/``meshY`` are not).  Within a ``local`` list, the first
  component is the outermost.
* Class (then ``subclass``) containing ``dummy``, ``DRAM``, ``SRAM``, ``regfile``,
  ``smartbuffer`` or ``storage`` -> a storage level; containing ``mac`` or ``compute`` ->
  the compute unit; anything else is ignored, except that the last leaf becomes the compute
  unit when no compute class was found.  ``StorageLevel.cls`` keeps the ``subclass`` when
  given (``smartbuffer_RF``), else the ``class``.  A ``dummy_storage`` level is kept as an
  ordinary level at its place (as Timeloop's nest analysis does), with its attributes as
  written (typically width = depth = datawidth = 1) and ``cls="dummy_storage"``; its
  energies come from the ERT like any level's (zeros without a table).
* Word bits: ``word-bits`` | ``word_width`` | ``datawidth`` (default 16).  Block size
  (words per access): ``block-size`` | ``block_size`` | ``n_words``, else ``width /
  (word bits x cluster-size)`` when ``cluster-size`` is given, else ``width / word bits``,
  else 1.  Size in words: ``entries``, else ``depth`` x block, else ``sizeKB``; none means
  unbounded (``depth=None``).  ``StorageLevel.width`` is stored as block x word bits.
* Mesh (``BufferLevel::ValidateTopology``): only instances -> ``meshX = instances,
  meshY = 1``; one of meshX/meshY -> the other is ``instances / it``.
* ``bandwidth`` (deprecated) -> read = write = bandwidth / 2; ``read_bandwidth``,
  ``write_bandwidth``, ``shared_bandwidth``; ``multiple-buffering`` (default 1).
* ERT (``Topology::Specs::ParseAccelergyERT``): a table matches the level named by the last
  dotted component of its name, ``[..]`` stripped; an action listed several times (different
  arguments) costs its **maximum** energy.  Storage read = ``random_read`` | ``read``; write
  (fill) = ``random_fill`` | ``random_write`` | ``fill`` | ``write``; update =
  ``random_update`` | ``random_write`` | ``update`` | ``write``; compute = ``mac_random`` |
  ``mult_random`` | ``mac`` | ``mult`` | ``compute``.  Levels without a table get zero
  energies (Timeloop would fall back on its built-in estimator).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mapspace.arch import MAX_ENERGY, ActionEnergy, Arch, ComputeUnit, StorageLevel
from mapspace.errors import MapspaceError
from mapspace.yamlio import describe, expect, load_yaml, lookup, optional, relocate

_BUFFER = ("DRAM", "SRAM", "regfile", "smartbuffer", "storage")
_COMPUTE = ("mac", "compute")
_NO_INHERIT = {"instances", "meshX", "meshY", "name"}
_RANGE = re.compile(r"\[\s*(-?\d+)\s*\.\.\s*(-?\d+)\s*\]\s*$")
_STORAGE_ACTIONS = {
    "read": ("random_read", "read"),
    "write": ("random_fill", "random_write", "fill", "write"),
    "update": ("random_update", "random_write", "update", "write"),
    "leak": ("leak",),
}
_COMPUTE_ACTIONS = ("mac_random", "mult_random", "mac", "mult", "compute")


def _split_name(name: str, where: str, key: str) -> tuple[str, int]:
    """``"Registers[1..256]"`` -> ``("Registers", 256)``; no range -> count 1."""
    m = _RANGE.search(name)
    if not m:
        return name.strip(), 1
    lo, hi = int(m.group(1)), int(m.group(2))
    if hi < lo:
        raise MapspaceError(f"empty instance range in {name!r}", where=where, key=key)
    return name[:m.start()].strip(), hi - lo + 1


@dataclass
class _Leaf:
    name: str
    klass: str
    subclass: str
    count: int
    attrs: dict[str, Any]
    key: str


    @property
    def cls(self) -> str:
        """The informative class name (``subclass`` when given; ``dummy_storage`` for any
        dummy level)."""
        if "dummy" in self.klass or "dummy" in self.subclass:
            return "dummy_storage"
        return self.subclass or self.klass

    def kind(self) -> str:
        """``storage``, ``compute`` or ``other`` (by ``class``, then ``subclass``)."""
        for c in (self.klass, self.subclass):
            if "dummy" in c or any(s in c for s in _BUFFER):
                return "storage"
            if any(s in c for s in _COMPUTE):
                return "compute"
        return "other"


@dataclass
class _Walk:
    leaves: list[_Leaf] = field(default_factory=list)
    top_name: str | None = None
    cycle_seconds: float | None = None


def _seconds(v: Any, where: str, key: str) -> float:
    x = expect(v, float, where, key)
    if not math.isfinite(x) or x <= 0:
        raise MapspaceError(f"expected a finite number of seconds > 0, found {describe(v)}",
                            where=where, key=key)
    return x


def _walk(arch: Mapping[str, Any], where: str, base: str) -> _Walk:
    out = _Walk()
    node: Mapping[str, Any] = arch
    key = base
    mult = 1
    inherited: dict[str, Any] = {}
    first = True
    while True:
        attrs = optional(node, "attributes", dict, {}, where, key)
        if "global_cycle_seconds" in attrs and out.cycle_seconds is None:
            out.cycle_seconds = _seconds(attrs["global_cycle_seconds"], where,
                                         f"{key}.attributes.global_cycle_seconds")
        inherited = {**inherited, **{k: v for k, v in attrs.items() if k not in _NO_INHERIT}}
        for i, comp in enumerate(optional(node, "local", list, [], where, key)):
            ck = f"{key}.local[{i}]"
            comp = expect(comp, dict, where, ck)
            raw_name = expect(comp.get("name"), str, where, f"{ck}.name")
            name, count = _split_name(raw_name, where, f"{ck}.name")
            klass = expect(comp.get("class") or "", str, where, f"{ck}.class")
            sub = expect(comp.get("subclass") or "", str, where, f"{ck}.subclass")
            own = optional(comp, "attributes", dict, {}, where, ck)
            if own.get("global_cycle_seconds") is not None and out.cycle_seconds is None:
                out.cycle_seconds = _seconds(own["global_cycle_seconds"], where,
                                             f"{ck}.attributes.global_cycle_seconds")
            out.leaves.append(_Leaf(name, klass, sub, mult * count, {**inherited, **own}, ck))
        if "subtree" not in node:
            break
        subs = expect(node["subtree"], list, where, f"{key}.subtree")
        if len(subs) != 1:
            raise MapspaceError(f"expected exactly one subtree per node (as Timeloop), found "
                                f"{len(subs)}", where=where, key=f"{key}.subtree")
        key = f"{key}.subtree[0]"
        node = expect(subs[0], dict, where, key)
        sub_name, count = _split_name(expect(node.get("name", ""), str, where, f"{key}.name"),
                                      where, f"{key}.name")
        if first and sub_name:
            out.top_name = sub_name
        first = False
        mult *= count
    return out


def _attr(a: Mapping[str, Any], typ: type, where: str, key: str, *names: str) -> Any:
    hit = lookup(a, *names)
    if hit is None or hit[1] is None:
        return None
    return expect(hit[1], typ, where, f"{key}.attributes.{hit[0]}")


def _pos(a: Mapping[str, Any], where: str, key: str, *names: str) -> int | None:
    """Like ``_attr(..., int, ...)`` but a value below 1 is an error (never read as absent)."""
    hit = lookup(a, *names)
    v = _attr(a, int, where, key, *names)
    if v is not None and v < 1:
        raise MapspaceError(f"expected a positive integer, found {v}", where=where,
                            key=f"{key}.attributes.{hit[0] if hit else names[0]}")
    return v


def _mesh(leaf: _Leaf, where: str) -> tuple[int, int, int]:
    a, k = leaf.attrs, leaf.key
    inst = _attr(a, int, where, k, "instances")
    inst = leaf.count if inst is None else inst
    mx, my = _attr(a, int, where, k, "meshX"), _attr(a, int, where, k, "meshY")
    for v, n in ((inst, "instances"), (mx, "meshX"), (my, "meshY")):
        if v is not None and v < 1:
            raise MapspaceError(f"expected a positive integer, found {v}", where=where,
                                key=f"{k}.attributes.{n}")
    if mx is None and my is None:
        mx, my = inst, 1
    elif my is None:
        my = inst // mx if inst % mx == 0 else 0
    elif mx is None:
        mx = inst // my if inst % my == 0 else 0
    if mx * my != inst:
        raise MapspaceError(f"meshX x meshY ({mx} x {my}) does not match the {inst} instances",
                            where=where, key=f"{k}.attributes")
    return inst, mx, my


def _storage(leaf: _Leaf, where: str) -> StorageLevel:
    a, k = leaf.attrs, leaf.key
    word = _pos(a, where, k, "word-bits", "word_width", "datawidth") or 16
    block = _pos(a, where, k, "block-size", "n_words")
    cluster = _pos(a, where, k, "cluster-size")
    width = _pos(a, where, k, "width", "memory_width", "data_storage_width")
    if width is not None:
        per = word * (block or 1)
        if width % per:
            raise MapspaceError(f"width {width} is not a multiple of word bits x block size "
                                f"({word} x {block or 1})", where=where, key=f"{k}.attributes")
        if block is None:
            block = width // word // (cluster or 1) or 1
    block = block or 1
    size = _pos(a, where, k, "entries")
    depth_attr = _pos(a, where, k, "depth", "memory_depth", "data_storage_depth")
    kb = _pos(a, where, k, "sizeKB")
    if size is None and depth_attr is not None:
        size = depth_attr * block
    elif size is None and kb is not None:
        size = kb * 1024 * 8 // word
    if size is not None and size % block:
        raise MapspaceError(f"size of {size} words is not a whole number of {block}-word blocks",
                            where=where, key=f"{k}.attributes")
    inst, mx, my = _mesh(leaf, where)
    bw = _attr(a, float, where, k, "bandwidth")
    rd = _attr(a, float, where, k, "read_bandwidth")
    wr = _attr(a, float, where, k, "write_bandwidth")
    mb = _attr(a, float, where, k, "multiple-buffering")
    try:
        return StorageLevel(
            name=leaf.name, cls=leaf.cls, instances=inst, mesh_x=mx, mesh_y=my,
            depth=None if size is None else size // block, width=block * word, datawidth=word,
            read_bandwidth=rd if rd is not None else (bw / 2 if bw is not None else None),
            write_bandwidth=wr if wr is not None else (bw / 2 if bw is not None else None),
            shared_bandwidth=_attr(a, float, where, k, "shared_bandwidth"),
            multiple_buffering=1.0 if mb is None else mb,
            cluster_size=cluster or 1,
        )
    except MapspaceError as e:
        raise relocate(e, where, f"{k}.attributes") from None


def _compute(leaf: _Leaf, where: str) -> ComputeUnit:
    inst, mx, my = _mesh(leaf, where)
    word = _pos(leaf.attrs, where, leaf.key, "word-bits", "word_width", "datawidth") or 16
    try:
        return ComputeUnit(name=leaf.name, instances=inst, mesh_x=mx, mesh_y=my, datawidth=word)
    except MapspaceError as e:
        raise relocate(e, where, leaf.key) from None


def _ert_tables(ert: Any, where: str) -> dict[str, dict[str, float]]:
    """``{component name: {action: max energy}}`` from an ERT mapping (``{ERT: ...}`` or not)."""
    ert = expect(ert, dict, where, "")
    base = ""
    if "ERT" in ert:
        ert, base = expect(ert["ERT"], dict, where, "ERT"), "ERT"
    tk = f"{base}.tables" if base else "tables"
    tables = ert.get("tables")
    if tables is None:
        raise MapspaceError("missing required key 'tables'", where=where, key=base or None)
    if isinstance(tables, Mapping):  # ERT v0.2: {name: {action: [entries] | entry}}
        items = [(n, [{"name": an, **(e if isinstance(e, Mapping) else {"energy": e})}
                      for an, es in expect(acts, dict, where, f"{tk}.{n}").items()
                      for e in (es if isinstance(es, list) else [es])])
                 for n, acts in tables.items()]
    else:
        items = []
        for i, t in enumerate(expect(tables, list, where, tk)):
            t = expect(t, dict, where, f"{tk}[{i}]")
            items.append((expect(t.get("name"), str, where, f"{tk}[{i}].name"),
                          expect(t.get("actions", []), list, where, f"{tk}[{i}].actions")))
    out: dict[str, dict[str, float]] = {}
    for i, (tname, actions) in enumerate(items):
        comp = re.sub(r"\[[^\]]*\]", "", str(tname)).split(".")[-1].strip()
        acts = out.setdefault(comp, {})
        for j, act in enumerate(actions):
            ak = f"{tk}[{i}].actions[{j}]"
            act = expect(act, dict, where, ak)
            aname = expect(act.get("name"), str, where, f"{ak}.name")
            energy = expect(act.get("energy", 0.0), float, where, f"{ak}.energy")
            if not 0 <= energy <= MAX_ENERGY:  # NaN fails too
                raise MapspaceError(f"the energy of action {aname!r} in table {tname!r} must "
                                    f"be a number of pJ from 0 to 1e15, found {energy!r}",
                                    where=where, key=f"{ak}.energy")
            acts[aname] = max(acts.get(aname, 0.0), energy)
    return out


def _pick(acts: Mapping[str, float], names: tuple[str, ...]) -> float:
    return next((acts[n] for n in names if n in acts), 0.0)


def arch_from_dict(d: Any, where: str, ert: Any = None, ert_where: str | None = None) -> Arch:
    """Validate a Timeloop architecture (v0.3, v0.4 or a processed input) into an Arch.

    ``ert`` is an ERT mapping (its own file's content); without it an ``ERT:`` key next to
    ``architecture:`` is used, if any.
    """
    d = expect(d, dict, where, "")
    if "architecture" in d:
        arch, base = expect(d["architecture"], dict, where, "architecture"), "architecture"
    elif "subtree" in d or "local" in d:
        arch, base = d, ""
    else:
        raise MapspaceError("missing required key 'architecture'", where=where)
    if "subtree" not in arch and "local" not in arch:
        raise MapspaceError("expected a 'subtree' (Timeloop v0.3/v0.4 tree), found neither "
                            "'subtree' nor 'local'", where=where, key=base or None)
    walk = _walk(arch, where, base)
    levels: list[StorageLevel] = []
    compute: ComputeUnit | None = None
    for leaf in walk.leaves:
        kind = leaf.kind()
        if kind == "storage":
            if compute is not None:
                raise MapspaceError(f"storage level {leaf.name!r} is inside the compute unit "
                                    f"{compute.name!r}", where=where, key=leaf.key)
            levels.append(_storage(leaf, where))
        elif kind == "compute":
            if compute is not None:
                raise MapspaceError(f"a second compute unit {leaf.name!r} (first was "
                                    f"{compute.name!r})", where=where, key=leaf.key)
            compute = _compute(leaf, where)
    if compute is None and walk.leaves and walk.leaves[-1].name not in {
            lv.name for lv in levels}:
        compute = _compute(walk.leaves[-1], where)
    if compute is None:
        raise MapspaceError("no compute unit found (a component whose class contains 'mac' "
                            "or 'compute')", where=where, key=base or None)
    if not levels:
        raise MapspaceError("no storage levels found", where=where, key=base or None)
    if ert is None and "ERT" in d:
        ert, ert_where = d, where
    if ert is not None:
        tables = _ert_tables(ert, ert_where or where)
        if not {lv.name for lv in levels} & set(tables) and compute.name not in tables:
            raise MapspaceError(
                f"no table matches a component of the architecture (tables are "
                f"{', '.join(tables) or 'none'}; components are "
                f"{', '.join([lv.name for lv in levels] + [compute.name])})",
                where=ert_where or where, key="tables")
        levels = [replace(lv, energy=ActionEnergy(
            **{a: _pick(tables[lv.name], names) for a, names in _STORAGE_ACTIONS.items()}))
            if lv.name in tables else lv for lv in levels]
        if compute.name in tables:
            acts = tables[compute.name]
            compute = replace(compute, energy=_pick(acts, _COMPUTE_ACTIONS),
                              leak=acts.get("leak", 0.0))
    try:
        return Arch(name=walk.top_name or "arch", levels=tuple(levels), compute=compute,
                    cycle_seconds=1e-9 if walk.cycle_seconds is None else walk.cycle_seconds,
                    energy_known=ert is not None)
    except MapspaceError as e:
        raise relocate(e, where, base or "architecture") from None


def load_arch(path: str | Path, ert_path: str | Path | None = None) -> Arch:
    """Read an architecture file (and optionally its ERT file)."""
    ert = load_yaml(ert_path) if ert_path is not None else None
    return arch_from_dict(load_yaml(path), str(path), ert,
                          str(ert_path) if ert_path is not None else None)


def _num(x: float) -> int | float:
    return int(x) if float(x).is_integer() else x


def arch_to_dict(arch: Arch) -> dict[str, Any]:
    """v0.4 processed form plus an ``ERT:`` section (none when the energy is unknown);
    reloads to an equal Arch."""
    local: list[dict[str, Any]] = []
    tables: list[dict[str, Any]] = []
    for lv in arch.levels:
        a: dict[str, Any] = {}
        if lv.depth is not None:
            a["depth"] = lv.depth
        a.update(width=lv.width * lv.cluster_size, datawidth=lv.datawidth, meshX=lv.mesh_x,
                 meshY=lv.mesh_y)
        if lv.cluster_size > 1:
            a["cluster_size"] = lv.cluster_size
        for k in ("read_bandwidth", "write_bandwidth", "shared_bandwidth"):
            if getattr(lv, k) is not None:
                a[k] = _num(getattr(lv, k))
        a["multiple_buffering"] = _num(lv.multiple_buffering)
        tag = f"{lv.name}[1..{lv.instances}]"
        cls = {"class": lv.cls} if any(s in lv.cls for s in _BUFFER) else {
            "class": "storage", "subclass": lv.cls}
        local.append({"name": tag, **cls, "attributes": a})
        tables.append({"name": f"{arch.name}.{tag}", "actions": [
            {"name": n, "energy": getattr(lv.energy, n)} for n in _STORAGE_ACTIONS]})
    c = arch.compute
    tag = f"{c.name}[1..{c.instances}]"
    local.append({"name": tag, "class": "intmac", "attributes": {
        "datawidth": c.datawidth, "meshX": c.mesh_x, "meshY": c.mesh_y}})
    tables.append({"name": f"{arch.name}.{tag}", "actions": [
        {"name": "compute", "energy": c.energy}, {"name": "leak", "energy": c.leak}]})
    out: dict[str, Any] = {
        "architecture": {"version": "0.4", "subtree": [{
            "name": arch.name,
            "attributes": {"global_cycle_seconds": arch.cycle_seconds},
            "local": local,
        }]},
    }
    if arch.energy_known:  # no table in, none out: reloads with the energy still unknown
        out["ERT"] = {"version": "0.4", "tables": tables}
    return out

