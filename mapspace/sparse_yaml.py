"""Timeloop/Sparseloop v0.4 sparse inputs: ``sparse_optimizations``, density models, and the
per-level sparse attributes of the architecture and its ERT.

Read as Timeloop reads them (NVlabs/timeloop ``src/model/sparse-optimization-parser.cpp``,
``src/workload/density-models/density-distribution-factory.cpp``,
``src/workload/format-models/metadata-format-factory.cpp``, ``src/model/buffer.cpp``):

* ``sparse_optimizations: {targets: [{name: LEVEL, representation_format, action_optimization,
  compute_optimization}]}`` (also inside a processed input).  ``representation_format:
  {data_spaces: [{name: TENSOR, ranks: [{format: B|CP|UOP|RLE|UB, metadata_word_bits?,
  payload_word_bits?, flattened_rankIDs?: [[DIM, ...]]}], rank_application_order?}]}``;
  ranks are listed outermost first.  ``action_optimization: [{type: gating|skipping|
  spatial_skipping, options: [{target: T, condition_on: [T, ...]}]}]`` (or ``target`` and
  ``condition_on`` directly on the entry).  ``compute_optimization: [{type: gating|
  gate_on_zero_operand|skipping|skip_on_not_aligned_operands}]`` on the compute unit.
* Densities: ``instance.densities.T: {distribution: fixed_structured|fixed|hypergeometric|
  uniform, density: d}`` or a bare number (fixed_structured).  ``uniform`` is read as
  ``hypergeometric`` (every element nonzero with the same probability, the tensor holding
  ``ceil(d x size)`` nonzeros: timeloopfe's name for Timeloop's hypergeometric model).
* Metadata attributes of a storage level: ``metadata_datawidth``/``metadata_word_bits``
  (default word bits of a rank's metadata and payload, 0 when absent),
  ``metadata_storage_width``/``metadata_width`` (bits per metadata access, 0 = no metadata
  storage: metadata accesses then cost no energy), ``metadata_storage_depth``.
* ERT actions, by Timeloop's priority lists (``include/model/topology.hpp``): e.g.
  ``gated_read`` <- ``gated_read``; ``skipped_read`` <- ``skipped_read``, ``gated_read``;
  ``random_metadata_read`` <- ``random_metadata_read``, ``metadata_read``; an action with
  no entry costs 0 (a gated read without a ``gated_read`` entry is free).  Computes:
  ``gated_compute`` <- ``mac_gated``, ``mult_gated``, ``compute_gated``, ``mac``, ``mult``,
  ``compute`` (a gated compute without a gated entry costs a full compute).

Bad input is one :class:`~mapspace.errors.MapspaceError` naming the file and key: an unknown
format, optimization type or distribution, a ``condition_on``/``target`` naming an unknown
tensor, an unknown level, a density outside (0, 1], a flattened rank naming an unknown
dimension or one that does not index the tensor, a format given twice for one tensor at one
level.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mapspace.arch import Arch
from mapspace.arch_yaml import _ert_tables, _walk
from mapspace.errors import MapspaceError
from mapspace.problem import Problem
from mapspace.yamlio import describe, expect, load_yaml, lookup, optional, require

FORMATS = {"b": "B", "cp": "CP", "uop": "UOP", "rle": "RLE", "ub": "UB"}
#: formats whose rank drops empty coordinates (Timeloop ``rank_compressed``)
COMPRESSED = frozenset({"B", "CP", "RLE"})
ACTIONS = {"gating": "gate", "skipping": "skip", "spatial_skipping": "spatial_skip"}
COMPUTE_OPTS = {"gating": "gate_on_zero_operand", "gate_on_zero_operand": "gate_on_zero_operand",
                "skipping": "skip_on_not_aligned_operands",
                "skip_on_not_aligned_operands": "skip_on_not_aligned_operands"}
DISTRIBUTIONS = {"fixed_structured": "fixed_structured", "fixed": "fixed_structured",
                 "hypergeometric": "hypergeometric", "uniform": "hypergeometric"}

#: Timeloop's storage operations and the ERT actions each is priced at, first found wins
STORAGE_OPS: dict[str, tuple[str, ...]] = {
    "random_read": ("random_read", "read"),
    "gated_read": ("gated_read",),
    "skipped_read": ("skipped_read", "gated_read"),
    "random_metadata_read": ("random_metadata_read", "metadata_read"),
    "gated_metadata_read": ("gated_metadata_read",),
    "skipped_metadata_read": ("skipped_metadata_read", "gated_metadata_read"),
    "random_fill": ("random_fill", "random_write", "fill", "write"),
    "gated_fill": ("gated_fill", "gated_write"),
    "skipped_fill": ("skipped_fill", "skipped_write", "gated_fill", "gated_write"),
    "random_metadata_fill": ("random_metadata_fill", "random_metadata_write", "metadata_fill",
                             "metadata_write"),
    "gated_metadata_fill": ("gated_metadata_fill", "gated_metadata_write"),
    "skipped_metadata_fill": ("skipped_metadata_fill", "skipped_metadata_write",
                              "gated_metadata_fill", "gated_metadata_write"),
    "random_update": ("random_update", "random_write", "update", "write"),
    "gated_update": ("gated_update", "gated_write"),
    "skipped_update": ("skipped_update", "skipped_write", "gated_update", "gated_write"),
    "random_metadata_update": ("random_metadata_update", "random_metadata_write",
                               "metadata_update", "metadata_write"),
    "gated_metadata_update": ("gated_metadata_update", "gated_metadata_write"),
    "skipped_metadata_update": ("skipped_metadata_update", "skipped_metadata_write",
                                "gated_metadata_update", "gated_metadata_write"),
    "decompression_count": ("decompression_count",),
    "compression_count": ("compression_count",),
}
COMPUTE_OPS: dict[str, tuple[str, ...]] = {
    "random_compute": ("mac_random", "mult_random", "mac", "mult", "compute"),
    "skipped_compute": ("mac_skipped", "mult_skipped", "compute_skipped", "mac_gated",
                        "mult_gated", "compute_gated", "mac", "mult", "compute"),
    "gated_compute": ("mac_gated", "mult_gated", "compute_gated", "mac", "mult", "compute"),
}


@dataclass(frozen=True)
class Rank:
    """One rank of a representation format: ``format`` (B, CP, UOP, RLE, UB), word bits of
    its metadata and payload (``None``: the level's ``metadata_datawidth``) and the
    flattening rules (lists of dimension indices that may share this rank)."""

    format: str
    metadata_word_bits: int | None = None
    payload_word_bits: int | None = None
    flattened: tuple[tuple[int, ...], ...] = ()

    @property
    def compressed(self) -> bool:
        return self.format in COMPRESSED


@dataclass(frozen=True)
class TensorFormat:
    """The format of ``tensor`` at storage ``level``: ``ranks`` outermost first."""

    level: str
    tensor: str
    ranks: tuple[Rank, ...]
    inner_to_outer: bool = False


@dataclass(frozen=True)
class ActionOpt:
    """Gating (``gate``), skipping (``skip``) or spatial skipping of ``target``'s accesses at
    ``level`` when all of ``condition_on`` are not (Timeloop's ``condition_on``): one option
    of a group; a group lists alternatives and Timeloop keeps the one saving most."""

    kind: str
    level: str
    target: str
    condition_on: tuple[str, ...]


@dataclass(frozen=True)
class SparseSpec:
    """A Sparseloop ``sparse_optimizations`` description, checked against a problem and arch.

    ``groups``: action groups in Timeloop's order (gating first, then skipping, then spatial
    skipping; levels inner to outer as Timeloop's per-level map; YAML order within a level);
    ``compute``: the compute optimizations (``gate_on_zero_operand``,
    ``skip_on_not_aligned_operands``)."""

    formats: tuple[TensorFormat, ...] = ()
    groups: tuple[tuple[ActionOpt, ...], ...] = ()
    compute: frozenset[str] = frozenset()

    @property
    def empty(self) -> bool:
        return not (self.formats or self.groups or self.compute)


@dataclass(frozen=True)
class Density:
    """A tensor's density model: ``fixed_structured`` or ``hypergeometric``, and ``density``."""

    distribution: str = "fixed_structured"
    density: float = 1.0


@dataclass(frozen=True)
class LevelSparseAttrs:
    """Sparse attributes of one storage level (see module docstring), and the energy of each
    Timeloop storage operation (pJ per vector access)."""

    metadata_word_bits: int = 0
    metadata_storage_width: int = 0
    metadata_storage_depth: int = 0
    op_energy: tuple[tuple[str, float], ...] = ()

    def energy(self, op: str) -> float:
        return dict(self.op_energy).get(op, 0.0)


@dataclass(frozen=True)
class SparseArch:
    """Per storage level (outermost first) :class:`LevelSparseAttrs`; per compute operation
    its energy (pJ)."""

    levels: tuple[LevelSparseAttrs, ...]
    compute_energy: tuple[tuple[str, float], ...] = ()

    def compute(self, op: str) -> float:
        return dict(self.compute_energy).get(op, 0.0)


def _unwrap(d: Any, key: str, where: str) -> tuple[Any, str]:
    d = expect(d, dict, where, "")
    if key in d:
        return d[key], key
    return d, ""


def _join(a: str, b: str) -> str:
    return f"{a}.{b}" if a else b


def _tensor(problem: Problem, name: Any, where: str, key: str) -> str:
    name = expect(name, str, where, key)
    if name not in problem.tensor_names:
        raise MapspaceError(f"unknown tensor {name!r} (tensors are "
                            f"{', '.join(problem.tensor_names)})", where=where, key=key)
    return name


def _bits(v: Any, where: str, key: str) -> int | None:
    if v is None:
        return None
    v = expect(v, int, where, key)
    if v < 1 or v > 2 ** 16:
        raise MapspaceError(f"expected word bits from 1 to 65536, found {v}", where=where,
                            key=key)
    return v


def _ranks(raw: Any, problem: Problem, tensor: str, where: str, key: str) -> tuple[Rank, ...]:
    raw = expect(raw, list, where, key)
    if not raw:
        raise MapspaceError(f"expected at least one rank for {tensor}, found none",
                            where=where, key=key)
    t = problem.tensor_index(tensor)
    indexing = {d for d in range(problem.num_dims) if problem.relevance[t, d]}
    out = []
    for r, spec in enumerate(raw):
        rk = f"{key}[{r}]"
        spec = expect(spec, dict, where, rk)
        fmt = require(spec, "format", str, where, rk)
        if fmt.lower() not in FORMATS:
            raise MapspaceError(f"unknown format {fmt!r} (formats are B, CP, UOP, RLE, UB)",
                                where=where, key=f"{rk}.format")
        rules = []
        hit = lookup(spec, "flattened_rankIDs", "flattened_rankids")
        for i, group in enumerate(expect(hit[1], list, where, f"{rk}.{hit[0]}") if hit else []):
            gk = f"{rk}.{hit[0]}[{i}]" if hit else rk
            group = expect(group, list, where, gk)
            dims = []
            for j, dim in enumerate(group):
                dim = expect(dim, str, where, f"{gk}[{j}]")
                if dim not in problem.dims:
                    raise MapspaceError(f"unknown dimension {dim!r} (dimensions are "
                                        f"{', '.join(problem.dims)})", where=where,
                                        key=f"{gk}[{j}]")
                dims.append(problem.dim_index(dim))
            if not indexing & set(dims):
                raise MapspaceError(
                    f"no dimension of this rank indexes {tensor} (its dimensions are "
                    f"{', '.join(problem.dims[d] for d in sorted(indexing))})",
                    where=where, key=gk)
            rules.append(tuple(dims))
        out.append(Rank(FORMATS[fmt.lower()],
                        _bits(spec.get("metadata_word_bits"), where, f"{rk}.metadata_word_bits"),
                        _bits(spec.get("payload_word_bits"), where, f"{rk}.payload_word_bits"),
                        tuple(rules)))
    # Timeloop (sparse-optimization-parser.cpp): no compressed rank above an uncompressed one
    inner_first = out[::-1]
    for r in range(1, len(inner_first)):
        if inner_first[r].compressed and not all(x.compressed for x in inner_first[:r]):
            raise MapspaceError(f"rank {inner_first[r].format} is compressed but a rank inside "
                                "it is not (Timeloop supports no uncompressed rank below a "
                                "compressed one)", where=where, key=key)
    return tuple(out)


def sparse_spec_from_dict(d: Any, problem: Problem, arch: Arch, where: str) -> SparseSpec:
    """Validate a ``sparse_optimizations`` mapping (bare or wrapped) against ``problem`` and
    ``arch``."""
    body, base = _unwrap(d, "sparse_optimizations", where)
    body = expect(body, dict, where, base)
    extra = sorted(set(body) - {"targets", "version"})
    if extra:          # e.g. an architecture file given for the sparse optimizations
        raise MapspaceError(f"unknown key {extra[0]!r} (a sparse_optimizations section has "
                            "targets and version)", where=where, key=_join(base, extra[0]))
    tkey = _join(base, "targets")
    targets = optional(body, "targets", list, [], where, base)
    levels = arch.level_names
    formats: dict[tuple[str, str], TensorFormat] = {}
    groups: dict[str, list[tuple[int, ActionOpt, ...]]] = {k: [] for k in ACTIONS.values()}
    compute: set[str] = set()
    for i, tgt in enumerate(targets):
        k = f"{tkey}[{i}]"
        tgt = expect(tgt, dict, where, k)
        name = require(tgt, "name", str, where, k)
        known = {"name", "representation_format", "action_optimization", "compute_optimization"}
        extra = sorted(set(tgt) - known)
        if extra:
            raise MapspaceError(f"unknown key {extra[0]!r} (a target has name, "
                                "representation_format, action_optimization, "
                                "compute_optimization)", where=where, key=k)
        if "compute_optimization" in tgt:
            if name != arch.compute.name:
                raise MapspaceError(f"compute_optimization belongs to the compute unit "
                                    f"{arch.compute.name!r}, found target {name!r}",
                                    where=where, key=f"{k}.name")
            for j, opt in enumerate(expect(tgt["compute_optimization"], list, where,
                                           f"{k}.compute_optimization")):
                ok = f"{k}.compute_optimization[{j}]"
                typ = require(expect(opt, dict, where, ok), "type", str, where, ok)
                if typ not in COMPUTE_OPTS:
                    raise MapspaceError(f"unknown compute optimization type {typ!r} (types are "
                                        f"{', '.join(COMPUTE_OPTS)})", where=where,
                                        key=f"{ok}.type")
                compute.add(COMPUTE_OPTS[typ])
        if not {"representation_format", "action_optimization"} & set(tgt):
            continue
        if name not in levels:
            raise MapspaceError(f"unknown storage level {name!r} (levels are "
                                f"{', '.join(levels)})", where=where, key=f"{k}.name")
        if "representation_format" in tgt:
            rk = f"{k}.representation_format"
            rf = expect(tgt["representation_format"], dict, where, rk)
            for j, ds in enumerate(optional(rf, "data_spaces", list, [], where, rk)):
                dk = f"{rk}.data_spaces[{j}]"
                ds = expect(ds, dict, where, dk)
                tensor = _tensor(problem, ds.get("name"), where, f"{dk}.name")
                order = optional(ds, "rank_application_order", str, "outer_to_inner", where, dk)
                if order not in ("outer_to_inner", "inner_to_outer"):
                    raise MapspaceError(f"rank_application_order must be outer_to_inner or "
                                        f"inner_to_outer, found {order!r}", where=where,
                                        key=f"{dk}.rank_application_order")
                if (name, tensor) in formats:
                    raise MapspaceError(f"a second format for {tensor} at {name}", where=where,
                                        key=dk)
                formats[(name, tensor)] = TensorFormat(
                    name, tensor, _ranks(require(ds, "ranks", list, where, dk), problem, tensor,
                                         where, f"{dk}.ranks"), order == "inner_to_outer")
        if "action_optimization" in tgt:
            ak = f"{k}.action_optimization"
            for j, act in enumerate(expect(tgt["action_optimization"], list, where, ak)):
                jk = f"{ak}[{j}]"
                act = expect(act, dict, where, jk)
                typ = require(act, "type", str, where, jk)
                if typ not in ACTIONS:
                    raise MapspaceError(f"unknown optimization type {typ!r} (types are "
                                        f"{', '.join(ACTIONS)})", where=where, key=f"{jk}.type")
                raw_opts = act["options"] if "options" in act else [act]
                okey = f"{jk}.options" if "options" in act else None
                group = []
                for o, opt in enumerate(expect(raw_opts, list, where, okey or jk)):
                    ok = f"{okey}[{o}]" if okey else jk
                    opt = expect(opt, dict, where, ok)
                    target = _tensor(problem, require(opt, "target", str, where, ok), where,
                                     f"{ok}.target")
                    conds = require(opt, "condition_on", list, where, ok)
                    if not conds:
                        raise MapspaceError("condition_on needs at least one tensor",
                                            where=where, key=f"{ok}.condition_on")
                    group.append(ActionOpt(ACTIONS[typ], name, target, tuple(
                        _tensor(problem, c, where, f"{ok}.condition_on[{c_i}]")
                        for c_i, c in enumerate(conds))))
                if not group:
                    raise MapspaceError("expected at least one option", where=where,
                                        key=okey or jk)
                if ACTIONS[typ] == "spatial_skip":
                    raise MapspaceError("spatial_skipping is not modelled (gating and "
                                        "skipping are)", where=where, key=f"{jk}.type")
                groups[ACTIONS[typ]].append((len(levels) - 1 - levels.index(name), *group))
    ordered: list[tuple[ActionOpt, ...]] = []
    for kind in ACTIONS.values():   # Timeloop: per kind, levels inner to outer (a std::map)
        for entry in sorted(groups[kind], key=lambda e: e[0]):
            ordered.append(tuple(entry[1:]))
    return SparseSpec(formats=tuple(formats.values()), groups=tuple(ordered),
                      compute=frozenset(compute))


def load_sparse_spec(path: str | Path, problem: Problem, arch: Arch) -> SparseSpec:
    """Read and validate a ``sparse_optimizations`` YAML file (or a processed input holding
    the section)."""
    return sparse_spec_from_dict(load_yaml(path), problem, arch, str(path))


def densities_from_dict(d: Any, problem: Problem, where: str) -> tuple[Density, ...]:
    """Per tensor, the density model of a Timeloop problem mapping (bare or wrapped);
    tensors without one are dense (``fixed_structured`` 1.0)."""
    p, base = _unwrap(d, "problem", where)
    p = expect(p, dict, where, base)
    ikey = _join(base, "instance")
    inst = optional(p, "instance", dict, {}, where, base)
    dens = optional(inst, "densities", dict, {}, where, ikey) or {}
    out = [Density() for _ in problem.tensor_names]
    for tname, spec in dens.items():
        k = f"{ikey}.densities.{tname}"
        t = problem.tensor_index(_tensor(problem, tname, where, k))
        dist = "fixed_structured"
        if isinstance(spec, Mapping):
            dist = optional(spec, "distribution", str, "fixed_structured", where, k)
            if dist not in DISTRIBUTIONS:
                raise MapspaceError(f"unknown density distribution {dist!r} (distributions are "
                                    f"{', '.join(DISTRIBUTIONS)})", where=where,
                                    key=f"{k}.distribution")
            hit = lookup(spec, "density")
            value = require(spec, "density", float, where, k)
            k = f"{k}.{hit[0]}" if hit else k
        else:
            value = expect(spec, float, where, k)
        if not 0.0 < value <= 1.0:
            raise MapspaceError(f"a density must be in (0, 1], found {describe(value)}",
                                where=where, key=k)
        out[t] = Density(DISTRIBUTIONS[dist], float(value))
    return tuple(out)


def densities_of(problem: Problem) -> tuple[Density, ...]:
    """Fixed-structured densities from ``Problem.tensors[t].density``."""
    return tuple(Density("fixed_structured", float(t.density)) for t in problem.tensors)


def _pick(acts: Mapping[str, float], names: tuple[str, ...], default: float) -> float:
    return next((acts[n] for n in names if n in acts), default)


def sparse_arch_from_dict(d: Any, arch: Arch, where: str, ert: Any = None,
                          ert_where: str | None = None) -> SparseArch:
    """The metadata attributes of ``arch``'s storage levels (from the same architecture
    mapping ``arch`` was read from) and each sparse operation's energy from the ERT."""
    d = expect(d, dict, where, "")
    tree, base = (d["architecture"], "architecture") if "architecture" in d else (d, "")
    walk = _walk(expect(tree, dict, where, base), where, base)
    by_name = {leaf.name: leaf for leaf in walk.leaves}
    if ert is None and "ERT" in d:
        ert, ert_where = d, where
    tables = _ert_tables(ert, ert_where or where) if ert is not None else {}
    out = []
    for lv in arch.levels:
        a = by_name[lv.name].attrs if lv.name in by_name else {}
        k = by_name[lv.name].key if lv.name in by_name else base

        def num(*names: str, a: Mapping[str, Any] = a, k: str = k) -> int:
            hit = lookup(a, *names)
            if hit is None or hit[1] is None:
                return 0
            v = expect(hit[1], int, where, f"{k}.attributes.{hit[0]}")
            if v < 0:
                raise MapspaceError(f"expected a non-negative integer, found {v}",
                                    where=where, key=f"{k}.attributes.{hit[0]}")
            return v
        acts = tables.get(lv.name, {})
        base_e = {"random_read": lv.energy.read, "random_fill": lv.energy.write,
                  "random_update": lv.energy.update}
        energy = tuple((op, _pick(acts, names, base_e.get(op, 0.0)))
                       for op, names in STORAGE_OPS.items())
        out.append(LevelSparseAttrs(
            metadata_word_bits=num("metadata_datawidth", "metadata_word_bits"),
            metadata_storage_width=num("metadata_storage_width", "metadata_width"),
            metadata_storage_depth=num("metadata_storage_depth", "metadata_depth"),
            op_energy=energy))
    acts = tables.get(arch.compute.name, {})
    comp = tuple((op, _pick(acts, names, arch.compute.energy)) for op, names in
                 COMPUTE_OPS.items())
    return SparseArch(levels=tuple(out), compute_energy=comp)


def load_sparse_arch(path: str | Path, arch: Arch, ert_path: str | Path | None = None
                     ) -> SparseArch:
    """:func:`sparse_arch_from_dict` of an architecture file (and ERT file)."""
    ert = load_yaml(ert_path) if ert_path else None
    return sparse_arch_from_dict(load_yaml(path), arch, str(path), ert,
                                 str(ert_path) if ert_path else None)


def default_sparse_arch(arch: Arch) -> SparseArch:
    """No metadata storage; random accesses at the arch's energies, everything else free
    and gated/skipped computes at a full compute's energy (an ERT with no sparse actions)."""
    levels = tuple(LevelSparseAttrs(op_energy=(("random_read", lv.energy.read),
                                               ("random_fill", lv.energy.write),
                                               ("random_update", lv.energy.update)))
                   for lv in arch.levels)
    e = arch.compute.energy
    return SparseArch(levels, (("random_compute", e), ("skipped_compute", e),
                               ("gated_compute", e)))


__all__ = ["ACTIONS", "COMPRESSED", "COMPUTE_OPS", "FORMATS", "STORAGE_OPS", "ActionOpt",
           "Density", "LevelSparseAttrs", "Rank", "SparseArch", "SparseSpec", "TensorFormat",
           "default_sparse_arch", "densities_from_dict", "densities_of", "load_sparse_arch",
           "load_sparse_spec", "sparse_arch_from_dict", "sparse_spec_from_dict"]
