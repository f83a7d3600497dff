"""Built-in targets: one :class:`Target` record each, the one place a target is described.

A record says, for one target: where its files are (``folder``: ``arch.yaml`` +
``ERT.yaml``, or a function computing the arch for a word width), its default
constraints *for a problem*, the module with its per-problem search hooks and the extra
validity rules its emitter needs (seen by the search as :attr:`Reason.TARGET`), its
single-op emitter, its whole-model kernel builder, its kernel dtypes (default first), and
its TVM target string.  Every command reads targets from here: the CLI's choices,
``map``/``explore``/``evaluate`` (the arch and constraints), ``compile`` and ``emit``
(:meth:`Target.space`, so both search the same space for the same op), ``compile --emit``
(the kernel builder and dtype) and the TVM plug-in (arch, constraints, TVM target).

Adding a target is one folder under ``targets/`` plus one record in :data:`TARGETS`
(or :func:`register` from outside the package); see the README's "Adding a target".
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType

from mapspace.arch import Arch
from mapspace.arch_yaml import load_arch
from mapspace.constraints import NONE, Constraints
from mapspace.constraints_yaml import constraints_from_list, load_constraints
from mapspace.errors import MapspaceError
from mapspace.problem import Problem
from mapspace.space import Mapspace
from mapspace.validity import Rule
from mapspace.yamlio import load_yaml

# targets.cpu (host probing) is imported by the cpu target's arch/constraints functions,
# on first use like every target's hooks/emitter/kernels modules: `import targets` and
# the CLI's start-up stay ~6 ms lighter

_ROOT = Path(__file__).resolve().parent

#: bits per word of each kernel dtype
DTYPE_BITS: dict[str, int] = {"float32": 32, "int8": 8}


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


@dataclass(frozen=True)
class Target:
    """Everything the tool knows about one target (see the module docstring).

    ``folder``: under ``targets/`` (or an absolute path) holding ``arch.yaml`` and
    ``ERT.yaml`` unless ``arch_for`` computes the arch (``word_bits -> Arch``).
    ``constraints_for``: ``(problem or None, word_bits) -> Constraints``; ``None`` reads
    the ``architecture_constraints`` of ``arch.yaml`` (or ``datatype_keeps``, keep lists
    per level).  ``hooks``: a module with any of ``search_arch(arch, problem)``,
    ``search_constraints(constraints, problem)`` and ``rules(problem, arch) ->
    tuple[Rule, ...]``.  ``emitter``: a module with ``emit(problem, mapping, arch, *,
    dtype, out_dir, run, seed)``; ``kernels``: a module with ``build_kernels(kernels, arch,
    *, dtype, out_dir)`` (its result has ``.call(name, a, b)`` and ``.files``).
    ``dtypes``: kernel dtypes, the default first (empty: no emitter)."""

    name: str
    description: str
    folder: str | Path
    arch_for: Callable[[int], Arch] | None = None
    constraints_for: Callable[[Problem | None, int], Constraints] | None = None
    datatype_keeps: tuple[tuple[str, tuple[str, ...]], ...] = ()
    hooks: str | None = None
    emitter: str | None = None
    kernels: str | None = None
    dtypes: tuple[str, ...] = ()
    tvm_target: str | None = None

    @property
    def path(self) -> Path:
        return Path(self.folder) if Path(self.folder).is_absolute() else _ROOT / self.folder

    @property
    def default_dtype(self) -> str | None:
        return self.dtypes[0] if self.dtypes else None

    def word_bits(self, dtype: str | None = None, bits: int | None = None) -> int:
        """Bits per word of ``dtype`` (the default dtype when ``None``; ``bits`` when given,
        for a caller that knows the width only); MapspaceError naming the target's dtypes
        for one it does not run."""
        if bits is not None:
            return int(bits)
        d = dtype or self.default_dtype or "float32"
        if self.dtypes and d not in self.dtypes:
            raise MapspaceError(f"target {self.name!r} runs {', '.join(self.dtypes)}, not "
                                f"{d!r}", where="--dtype", key=self.name)
        if d not in DTYPE_BITS:
            raise MapspaceError(f"must be one of {', '.join(DTYPE_BITS)}, found {d!r}",
                                where="--dtype")
        return DTYPE_BITS[d]

    def arch(self, dtype: str | None = None, *, word_bits: int | None = None) -> Arch:
        """The arch (computed targets: capacities in words of ``dtype`` or ``word_bits``)."""
        bits = self.word_bits(dtype, word_bits)  # a dtype the target does not run fails
        if self.arch_for is not None:
            return _computed_arch(self.arch_for, bits)
        return _yaml_arch(self.path)

    def constraints(self, problem: Problem | None = None, dtype: str | None = None, *,
                    word_bits: int | None = None, **options: object) -> Constraints:
        """The default constraints, for ``problem`` when given (``options`` go to a
        computed target's ``constraints_for``, e.g. the cpu's ``vector_dim``)."""
        if self.constraints_for is not None:
            return self.constraints_for(problem, self.word_bits(dtype, word_bits), **options)
        return _yaml_constraints(self)

    def hook_module(self) -> ModuleType | None:
        return importlib.import_module(self.hooks) if self.hooks else None

    def space(self, problem: Problem, dtype: str | None = None, *, arch: Arch | None = None,
              constraints: Constraints | None = None, rules: bool = True) -> Mapspace:
        """The space ``compile``, ``emit`` and the plug-in search for ``problem``: the arch
        and constraints (defaults unless given) with the hooks' per-problem changes, and
        (``rules``) the emitter's extra validity rules, checked against the emitting arch."""
        a = arch if arch is not None else self.arch(dtype)
        c = constraints if constraints is not None else self.constraints(problem, dtype)
        hooks = self.hook_module()
        extra: tuple[Rule, ...] = ()
        if hooks is not None:
            if hasattr(hooks, "search_constraints"):
                c = hooks.search_constraints(c, problem)
            if rules and hasattr(hooks, "rules"):
                extra = tuple(hooks.rules(problem, a))
            if hasattr(hooks, "search_arch"):
                a = hooks.search_arch(a, problem)
        return Mapspace(problem, a, c, extra)

    def emitter_module(self) -> ModuleType:
        """The single-op emitter; MapspaceError when the target has none."""
        return _module(self, self.emitter, "emitter", "emit")

    def kernel_builder(self) -> ModuleType:
        """The whole-model kernel builder; MapspaceError when the target has none."""
        return _module(self, self.kernels, "whole-model kernel builder", "compile --emit")


def _module(t: Target, name: str | None, what: str, where: str) -> ModuleType:
    if name is None:
        raise MapspaceError(f"no {what} for target {t.name!r} (targets with one: "
                            f"{', '.join(emitting_targets())})", where=where, key="target")
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if name.startswith(str(e.name)):
            raise MapspaceError(f"the {t.name} {what} ({name}) is not available", where=where,
                                key="target") from None
        raise


@cache
def _computed_arch(fn: Callable[[int], Arch], bits: int) -> Arch:
    return fn(bits)


@cache
def _yaml_arch(folder: Path) -> Arch:
    return load_arch(folder / "arch.yaml", folder / "ERT.yaml")


_ALL = ("Weights", "Inputs", "Outputs")


@cache
def _yaml_constraints(t: Target) -> Constraints:
    """Gemmini and its variants: the ``architecture_constraints`` of their ``arch.yaml``
    (weights stationary in the PE registers, outputs in the accumulator, scratchpad fan-out
    over M only, accumulator fan-out over C only along Y).  Eyeriss-like and simba-like:
    keep/bypass per level as in their reference mappings (``datatype_keeps``), dummy levels
    keeping nothing.  ``strict=False``: names a problem lacks are dropped when resolved."""
    if not t.datatype_keeps:
        doc = load_yaml(t.path / "arch.yaml")
        keys = ("architecture_constraints", "mapspace_constraints", "mapspace", "constraints")
        if isinstance(doc, dict) and not any(k in doc for k in keys):
            return NONE  # an arch file without constraints: the whole mapspace
        return load_constraints(t.path / "arch.yaml", strict=False)
    keeps = {lvl: list(k) for lvl, k in t.datatype_keeps}
    for lv in t.arch().levels:
        if lv.is_dummy:
            keeps.setdefault(lv.name, [])
    lst = [{"target": lvl, "type": "datatype", "keep": keep,
            "bypass": [x for x in _ALL if x not in keep]} for lvl, keep in keeps.items()]
    return constraints_from_list(lst, f"default constraints of {t.name!r}", strict=False)


def _cpu_arch(bits: int) -> Arch:
    from targets.cpu import host_arch

    return host_arch(bits)


def _cpu_constraints(problem: Problem | None, bits: int, **options: object) -> Constraints:
    from targets.cpu import cpu_constraints

    return cpu_constraints(problem, bits, **options)  # type: ignore[arg-type]


#: the eyeriss-like and simba-like keep/bypass per level, from the
#: timeloop-accelergy-exercises mappings (their ``mapping:`` datatype entries)
_EYERISS_KEEPS = (
    ("DRAM", _ALL), ("shared_glb", ("Inputs", "Outputs")), ("inter_PE_column_spatial", ()),
    ("inter_PE_spatial", ()), ("ifmap_spad", ("Inputs",)), ("weights_spad", ("Weights",)),
    ("psum_spad", ("Outputs",)))
_SIMBA_KEEPS = (
    ("DRAM", _ALL), ("GlobalBuffer", ("Inputs", "Outputs")), ("inter_PE_spatial", ()),
    ("PEInputBuffer", ("Inputs",)), ("inter_distributed_buffers_spatial", ()),
    ("PEWeightBuffer", ("Weights",)), ("PEAccuBuffer", ("Outputs",)),
    ("inter_reg_mac_spatial", ()), ("PEWeightRegs", ("Weights",)))

#: every target, by name, in listing order
TARGETS: dict[str, Target] = {t.name: t for t in (
    Target("gemmini", "Gemmini-like 16x16 weight-stationary systolic array: 256 KiB "
           "scratchpad, 64 KiB accumulator, INT8 MACs", "gemmini",
           hooks="targets.gemmini.rules", emitter="targets.gemmini.emit",
           kernels="targets.gemmini.model", dtypes=("int8",), tvm_target="c"),
    Target("gemmini-acc128", "Gemmini variant with a 128 KiB accumulator", "gemmini_acc128"),
    Target("gemmini-acc256", "Gemmini variant with a 256 KiB accumulator and a 64 KiB "
           "scratchpad", "gemmini_acc256"),
    Target("eyeriss-like", "Eyeriss-like row-stationary 14x12 PE array "
           "(timeloop-accelergy-exercises)", "eyeriss_like", datatype_keeps=_EYERISS_KEEPS),
    Target("simba-like", "Simba-like 16 PEs x 4 vector lanes x 4-wide MACs "
           "(timeloop-accelergy-exercises)", "simba_like", datatype_keeps=_SIMBA_KEEPS),
    Target("cpu", "The host CPU, computed from /sys and /proc/cpuinfo (caches, cores, "
           "vector lanes); estimated energies (targets/cpu)", "cpu", arch_for=_cpu_arch,
           constraints_for=_cpu_constraints, emitter="targets.cpu.emit",
           kernels="targets.cpu.model", dtypes=("float32", "int8"), tvm_target="llvm"),
)}


def register(target: Target) -> None:
    """Add (or replace) a target record, e.g. one whose folder is outside the package."""
    TARGETS[target.name] = target


def unregister(name: str) -> None:
    """Remove a target record added by :func:`register`."""
    TARGETS.pop(name, None)


def get_target(name: str, where: str = "--target") -> Target:
    """The record of ``name``; MapspaceError naming the known targets."""
    if name not in TARGETS:
        raise MapspaceError(f"unknown target {name!r} (known targets are "
                            f"{', '.join(TARGETS)})", where=where)
    return TARGETS[name]


def emitting_targets() -> list[str]:
    """Names of the targets with a single-op emitter (the choices of ``mapspace emit``)."""
    return [n for n, t in TARGETS.items() if t.emitter]


def load_target(name: str, dtype: str | None = None) -> Arch:
    """The :class:`Arch` of a target (architecture + its energy table)."""
    return get_target(name).arch(dtype)


def target_info(name: str) -> TargetInfo:
    """Key parameters of one target."""
    t = get_target(name)
    arch = t.arch()
    dram = arch.levels[0]
    bw = dram.shared_bandwidth if dram.shared_bandwidth is not None else dram.read_bandwidth
    return TargetInfo(
        name=name, description=t.description, folder=str(t.folder),
        levels=tuple(LevelInfo(lv.name, lv.capacity, lv.datawidth, lv.instances)
                     for lv in arch.levels),
        pes=arch.compute.instances, dram_bandwidth=bw,
    )


def list_targets() -> list[TargetInfo]:
    """Every target, in registry order."""
    return [target_info(n) for n in TARGETS]


def default_constraints(name: str, problem: Problem | None = None) -> Constraints:
    """The default constraints of a target, for ``problem`` when given (the cpu's vector
    lanes follow the problem's innermost output dim)."""
    return get_target(name).constraints(problem)
