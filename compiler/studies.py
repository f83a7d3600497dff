"""Helpers for the survey-style studies (``notebooks/02_fusion_quant_sparsity.ipynb``).

Kim et al. 2023, "Full Stack Optimization of Transformer Inference: a Survey", run
BERT-Base on Gemmini and report per-block latencies with and without fusion, a runtime
breakdown against sequence length, and the effect of quantization and sparsity.  These
functions read a :class:`~compiler.pipeline.CompileResult` (the zoo's op names:
``layer{i}.q_proj``, ``layer{i}.attn.scores``, ``layer{i}.ffn2``, ...):

* :func:`mha_ops` / :func:`ffn_ops` — the op names of one layer's multi-head attention
  (Q/K/V projections, both attention ``bmm``, softmax, output projection) or feed-forward
  block (FFN1, FFN2, their biases, the residual add and LayerNorm);
* :func:`block_cost` — the summed cycles and energy of a set of ops (ops run one after
  another, as in :attr:`CompileResult.totals`);
* :func:`fusion_comparison` — a block's latency compiled without and with one fusion;
* :func:`op_category` / :func:`category_breakdown` — cycles/energy per op category
  (projections, FFN, attention ``bmm``, softmax, LayerNorm, other);
* :func:`level_energy` — the energy of each MAC op per storage level (plus MACs), with the
  priced softmax/LayerNorm (host round trip: DRAM; fused: accumulator) added;
* :func:`with_bits` — re-search and re-price the MAC ops of a result with other per-tensor
  bit widths (e.g. 32-bit "FP32" data on the same arrays; the MAC energy is the target's),
  optionally with traffic energy scaled by the words each element takes (``word_scaled``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from compiler.lowering import sparse_model
from compiler.pipeline import CompileResult, compile_model, shape_key
from cost_models import evaluate
from cost_models.fused import ACCUMULATOR
from cost_models.search import find_mapping
from mapspace.arch import Arch
from mapspace.space import Mapspace
from targets import default_constraints, load_target

#: op categories of :func:`op_category`, in display order
CATEGORIES: tuple[str, ...] = ("projections", "FFN", "attention bmm", "softmax", "layernorm",
                               "other")
#: which block each fusion of :func:`fusion_comparison` changes
FUSION_BLOCK: dict[str, str] = {"softmax": "mha", "layernorm": "ffn"}


def mha_ops(result: CompileResult, layer: int = 0) -> set[str]:
    """Names of layer ``layer``'s multi-head attention ops (projections and ``attn.*``)."""
    p = f"layer{layer}."
    return {r.name for r in result.rows if r.name.startswith(p)
            and any(k in r.name for k in ("q_proj", "k_proj", "v_proj", "attn."))}


def ffn_ops(result: CompileResult, layer: int = 0) -> set[str]:
    """Names of layer ``layer``'s feed-forward ops (``ffn1``, ``ffn2``, bias, residual,
    LayerNorm)."""
    p = f"layer{layer}.ffn"
    return {r.name for r in result.rows if r.name.startswith(p)}


def block_cost(result: CompileResult, names: Iterable[str]) -> dict[str, float]:
    """``{"cycles", "energy_pJ", "macs"}`` summed over the ops named."""
    names = set(names)
    rows = [r for r in result.rows if r.name in names]
    return {"cycles": sum(r.cycles for r in rows), "energy_pJ": sum(r.energy_pJ for r in rows),
            "macs": sum(r.macs for r in rows)}


@dataclass(frozen=True)
class FusionComparison:
    """One block compiled without and with a fusion (``latency_change`` = fused/unfused - 1)."""

    target: str
    fusion: str
    block: str
    seq: int
    unfused_cycles: int
    fused_cycles: int
    unfused_energy_pJ: float
    fused_energy_pJ: float

    @property
    def latency_change(self) -> float:
        return self.fused_cycles / self.unfused_cycles - 1.0

    @property
    def energy_change(self) -> float:
        return self.fused_energy_pJ / self.unfused_energy_pJ - 1.0


def fusion_comparison(target: str, fusion: str, *, model: str = "bert-base", seq: int = 512,
                      layer: int = 0, **search: object) -> FusionComparison:
    """Compile ``model`` on ``target`` with no passes and with ``fuse=<fusion>`` and compare
    the block the fusion changes (``softmax`` -> MHA, ``layernorm`` -> FFN) of ``layer``.

    ``search`` goes to :func:`~compiler.pipeline.compile_model` (strategy, budget,
    time_per_op, seed).
    """
    if fusion not in FUSION_BLOCK:
        raise ValueError(f"fusion must be one of {', '.join(FUSION_BLOCK)}, found {fusion!r}")
    block = FUSION_BLOCK[fusion]
    pick = mha_ops if block == "mha" else ffn_ops
    base = compile_model(model, target, passes="", seq=seq, **search)  # type: ignore[arg-type]
    fused = compile_model(model, target, passes=f"fuse={fusion}", seq=seq,
                          **search)  # type: ignore[arg-type]
    b, f = block_cost(base, pick(base, layer)), block_cost(fused, pick(fused, layer))
    return FusionComparison(target, fusion, block, seq, int(b["cycles"]), int(f["cycles"]),
                            b["energy_pJ"], f["energy_pJ"])


def op_category(name: str, kind: str) -> str:
    """The category of a zoo transformer op (see :data:`CATEGORIES`)."""
    if kind == "bmm":
        return "attention bmm"
    if kind == "softmax":
        return "softmax"
    if kind == "layernorm":
        return "layernorm"
    if kind == "matmul":
        return "FFN" if "ffn" in name else "projections"
    return "other"


def category_breakdown(result: CompileResult) -> pd.DataFrame:
    """Cycles, energy and MACs per :data:`CATEGORIES` entry (a fused MAC op counts in its
    MAC category; its absorbed softmax/LayerNorm is no longer a separate op)."""
    rows = [{"category": op_category(r.name, r.kind), "cycles": r.cycles,
             "energy_pJ": r.energy_pJ, "macs": r.macs} for r in result.rows]
    df = pd.DataFrame(rows).groupby("category")[["cycles", "energy_pJ", "macs"]].sum()
    return df.reindex([c for c in CATEGORIES if c in df.index])


def _level_row(problem, arch, mapping, word_scaled: bool = False) -> dict[str, float]:
    st = evaluate(problem, arch, mapping).stats(0)
    bits = {t.name: t.bits for t in problem.tensors}
    row = {}
    for i, lv in enumerate(st["levels"]):
        dw = arch.levels[i].datawidth
        scale = word_scaled and arch.levels[i].depth != 1  # a one-word register: 1 access
        row[lv["name"]] = sum(
            t["energy_pJ"] * (bits[name] / dw if scale and bits.get(name) else 1.0)
            for name, t in lv["tensors"].items())
    row["MAC"] = st["mac_energy_pJ"]
    row["leak"] = st["leak_energy_pJ"]
    row["cycles"] = st["cycles"]
    row["energy_pJ"] = (sum(row[lv["name"]] for lv in st["levels"]) + row["MAC"] + row["leak"]
                        if word_scaled else st["energy_pJ"])
    return row


def _sparse_levels(result: CompileResult, name: str, arch: Arch, row: dict) -> None:
    """Replace a dense :func:`_level_row` by the op's sparse price per level."""
    model = sparse_model(result.graph.op(name))
    if model is None:
        return
    c = model.cost(result.problems[name], arch, result.mappings[name])
    if not c.valid[0]:
        return
    sc = c.detail
    row.update(zip(arch.level_names, (float(x) for x in sc.energy_breakdown[0].sum(axis=1)),
                   strict=True))
    row.update(MAC=float(sc.mac_energy[0]), leak=float(sc.leak_energy[0]),
               cycles=int(c.cycles[0]), energy_pJ=float(c.energy_pJ[0]))


def level_energy(result: CompileResult, names: Iterable[str] | None = None) -> pd.DataFrame:
    """Energy (pJ) per storage level and of the MACs for each op (``names``, default all
    priced ops), one row per op; the columns are the target's levels, ``MAC``, ``leak``,
    ``cycles`` and ``energy_pJ`` (the op's total, as in the report).

    The pipeline's nonlinear pricing is attributed to a level: an unfused softmax/LayerNorm
    (host round trip) to the DRAM, the fused epilogue's reads and writes to the accumulator.
    An op priced sparse (``sparsify``) gets its sparse per-level energies.
    """
    arch = load_target(result.target)
    levels = list(arch.level_names)
    want = None if names is None else set(names)
    out = {}
    for r in result.rows:
        if (want is not None and r.name not in want) or (r.on_host and r.energy_pJ == 0):
            continue
        if r.on_host:  # priced softmax/layernorm: DRAM round trip (+ host cycles)
            row = dict.fromkeys(levels, 0.0)
            row.update({levels[0]: r.energy_pJ, "MAC": 0.0, "leak": 0.0})
        else:
            row = _level_row(result.problems[r.name], arch, result.mappings[r.name])
            if r.dense_energy_pJ is not None:  # priced sparse (cost_models.sparse_model)
                _sparse_levels(result, r.name, arch, row)
            extra = r.energy_pJ - row["energy_pJ"]
            if abs(extra) > 1e-9 * max(1.0, r.energy_pJ) and ACCUMULATOR in row:
                row[ACCUMULATOR] += extra  # the fused epilogue's accumulator traffic
        row.update({"cycles": r.cycles, "energy_pJ": r.energy_pJ, "kind": r.kind})
        out[r.name] = row
    cols = levels + ["MAC", "leak", "cycles", "energy_pJ", "kind"]
    return pd.DataFrame.from_dict(out, orient="index").reindex(columns=cols)


def with_bits(result: CompileResult, bits: dict[str, int], names: Iterable[str] | None = None,
              *, arch: Arch | None = None, word_scaled: bool = False,
              strategy: str = "random",
              budget: int | None = 10_000, time_per_op: float | None = None,
              seed: int = 0) -> pd.DataFrame:
    """The MAC ops of ``result`` (``names``, default all) re-lowered with per-tensor
    ``bits`` (e.g. ``{"Weights": 32, "Inputs": 32, "Outputs": 32}``), each distinct shape
    searched again on the result's target; one row per op as in :func:`level_energy`.

    ``arch`` replaces the target's architecture (its default constraints still apply): a
    level whose word is narrower than an element must hold several words per element, so a
    one-word 8-bit register (Gemmini's PE weight register) cannot hold a 32-bit weight —
    pass e.g. ``load_target("gemmini").with_level("Registers", width=32, datawidth=32)``.

    The cost model counts one word access per element access whatever the element's bits
    (bits change only capacities: ``ceil(elements x bits / datawidth)`` words, as in
    Timeloop — ``cost_models/README.md``), so wider data costs more only through the
    mappings that still fit.  ``word_scaled=True`` also scales each level's traffic energy
    of a tensor with explicit bits by ``bits / datawidth`` (words moved per element: 4 for
    32-bit data in 8-bit words, 1/2 for 4-bit data; not at one-word levels such as the PE
    registers, which hold one element whatever its width) — an estimate outside the cost
    model.
    The MAC energy per operation is the target's.  Fused-epilogue pricing is not re-added.
    """
    arch = load_target(result.target) if arch is None else arch
    want = None if names is None else set(names)
    found: dict[tuple, object] = {}
    out = {}
    for r in result.rows:
        if r.on_host or (want is not None and r.name not in want):
            continue
        p = result.problems[r.name]
        for t, b in bits.items():
            if t in p.tensor_names:
                p = p.with_tensor(t, bits=int(b))
        key = shape_key(p)
        if key not in found:
            space = Mapspace(p, arch, default_constraints(result.target, p))
            found[key] = find_mapping(space, strategy=strategy, seed=seed, budget=budget,
                                      time_limit=time_per_op, where="compile").best_mapping
        row = _level_row(p, arch, found[key], word_scaled)
        row["kind"] = r.kind
        out[r.name] = row
    cols = list(arch.level_names) + ["MAC", "leak", "cycles", "energy_pJ", "kind"]
    return pd.DataFrame.from_dict(out, orient="index").reindex(columns=cols)


__all__ = ["CATEGORIES", "FUSION_BLOCK", "FusionComparison", "block_cost", "category_breakdown",
           "ffn_ops", "fusion_comparison", "level_energy", "mha_ops", "op_category",
           "with_bits"]
