"""A compiled model that runs: :class:`CompiledModel`, what ``compile_model`` returns.

``CompiledModel`` is a :class:`~compiler.pipeline.CompileResult` (the per-op report, the
graphs, problems and mappings) that can also

* ``run(inputs)`` — execute the model as the front end read it on the user's inputs with
  the model's own weights (``Graph.values``): every MAC op through the target's emitted
  kernel (built once, on first use, by :func:`compiler.emit_model.build_model`), every other
  op on the host in numpy (``host`` ops through ``onnx.reference``).  ``gemmini`` kernels
  are int8: each MAC op quantizes its operands as the quantize pass does (activations per
  tensor, weights per output channel) and dequantizes the int32 result; ``reference=True``
  runs the same computation with numpy in place of the kernels (bit-identical for gemmini);
* ``save(dir)`` / ``CompiledModel.load(dir)`` — the compile ``--out`` folder holds the model
  as ``model.json`` (both graphs, op attrs, every op's mapping as Timeloop YAML, the report
  rows) and ``weights.npz`` (param values; no pickle), so ``mapspace run DIR`` works later.
"""

from __future__ import annotations

import base64
import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from compiler.emit_model import build_model, model_mac
from compiler.errors import CompilerError
from compiler.execute import run_graph
from compiler.graph import Graph, Op
from compiler.lowering import lower_op
from compiler.result import CompileResult, OpRow
from mapspace.mapping_yaml import mapping_from_list
from targets import load_target

#: files :meth:`CompiledModel.save` writes into the compile ``--out`` folder
MODEL_FILES = ("model.json", "weights.npz")
_FORMAT = "mapspace-compiled-model/1"


# ------------------------------------------------------------------ graphs as JSON
def _enc(v: object) -> object:
    if isinstance(v, bytes):
        return {"bytes": base64.b64encode(v).decode("ascii")}
    if isinstance(v, tuple | list):
        return [_enc(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def _dec(v: object) -> object:
    if isinstance(v, dict) and set(v) == {"bytes"}:
        return base64.b64decode(v["bytes"])
    if isinstance(v, list):
        return tuple(_dec(x) for x in v)
    return v


def graph_to_json(g: Graph) -> dict[str, Any]:
    """A JSON-able description of ``g`` (tensors, ops with attrs); values are kept apart."""
    t = g.tensors
    info = lambda n: {"name": n, "shape": list(t[n].shape), "dtype": t[n].dtype}  # noqa: E731
    return {"name": g.name, "inputs": [info(n) for n in g.inputs],
            "params": [info(n) for n in g.params], "outputs": list(g.outputs),
            "ops": [{"name": op.name, "kind": op.kind, "inputs": list(op.inputs),
                     "outputs": list(op.outputs), "attrs": [[k, _enc(v)] for k, v in op.attrs],
                     "shapes": [list(t[o].shape) for o in op.outputs],
                     "dtype": t[op.outputs[0]].dtype if op.outputs else None}
                    for op in g.ops()]}


def graph_from_json(d: dict[str, Any], values: dict[str, np.ndarray]) -> Graph:
    """The graph :func:`graph_to_json` described, params taking their values from
    ``values`` (a param without one stays without)."""
    g = Graph(d["name"])
    for t in d["inputs"]:
        g.add_input(t["name"], t["shape"], t["dtype"])
    for t in d["params"]:
        g.add_param(t["name"], t["shape"], t["dtype"], values.get(t["name"]))
    for o in d["ops"]:
        op = Op(o["name"], o["kind"], tuple(o["inputs"]), tuple(o["outputs"]),
                tuple((k, _dec(v)) for k, v in o["attrs"]))
        g.add_op(op, shapes=dict(zip(op.outputs, o["shapes"], strict=True)),
                 dtype=o["dtype"])
    for t in d["outputs"]:
        g.add_output(t)
    for op in g.ops():  # fused_inputs dependencies, as the passes' rebuild adds them
        for t in op.attr("fused_inputs", ()) or ():
            src = g.producer(t)
            if src is not None and not g.nx.has_edge(src.name, op.name):
                g.nx.add_edge(src.name, op.name, tensors=(t,))
    return g.validate()


# ------------------------------------------------------------------ the model
@dataclass(frozen=True)
class CompiledModel(CompileResult):
    """A :class:`CompileResult` that runs (see the module docstring)."""

    def _graph(self) -> Graph:
        g = self.source_graph or self.graph
        if g is None:
            raise CompilerError("the compiled model carries no graph", where="run")
        return g

    def _kernels(self) -> Any:
        """The built kernels (built into a private folder on first use, then reused)."""
        built = self.__dict__.get("_built")
        if built is None:
            tmp = tempfile.TemporaryDirectory(prefix="mapspace-run-")
            built = (build_model(self, Path(tmp.name) / "code"), tmp)
            object.__setattr__(self, "_built", built)
        return built[0]

    def check_inputs(self, inputs: dict[str, Any]) -> dict[str, np.ndarray]:
        """``inputs`` as arrays of the graph's input shapes and dtypes (raises
        :class:`CompilerError` naming the input for a missing, extra or misshapen one)."""
        g = self._graph()
        extra = sorted(set(inputs) - set(g.inputs))
        if extra:
            raise CompilerError(f"unknown input {extra[0]!r}; the model's inputs are "
                                f"{', '.join(g.inputs)}", where="run", key="inputs")
        out = {}
        for name in g.inputs:
            if name not in inputs:
                raise CompilerError(f"no value for input {name!r}", where="run", key="inputs")
            info = g.tensor(name)
            v = np.asarray(inputs[name])
            if tuple(v.shape) != info.shape:
                raise CompilerError(f"input {name!r} has shape {list(v.shape)}, the model "
                                    f"expects {list(info.shape)}", where="run", key=name)
            want = np.dtype(info.dtype)
            if v.dtype != want:
                if v.dtype.kind != want.kind or (want.kind == "f" and not np.isfinite(v).all()):
                    raise CompilerError(f"input {name!r} has dtype {v.dtype}, the model expects "
                                        f"{want}", where="run", key=name)
                v = v.astype(want)
            out[name] = v
        return out

    def run(self, inputs: dict[str, Any], *, reference: bool = False) -> dict[str, np.ndarray]:
        """The model's outputs by name for ``inputs`` (graph input name -> array)."""
        feeds = self.check_inputs(inputs)
        g = self._graph()
        missing = [t for t in g.params if t not in g.values]
        if missing:
            raise CompilerError(f"the model carries no value for param {missing[0]!r} (a zoo "
                                "model has no weights); run an ONNX or Relax model",
                                where="run")
        built = None if reference else self._kernels()
        return run_graph(g, feeds, mac=model_mac(self, built))

    # -------------------------------------------------------------- files
    def save(self, out_dir: str | Path) -> list[Path]:
        """Write :data:`MODEL_FILES` into ``out_dir`` (an existing folder)."""
        out = Path(out_dir)
        g = self._graph()
        values = {**(self.graph.values if self.graph is not None else {}), **g.values}
        meta = {"format": _FORMAT, "model": self.model, "target": self.target,
                "passes": self.passes, "strategy": self.strategy,
                "distinct_shapes": self.distinct_shapes, "searches": self.searches,
                # no wall times: the same seed and budget give a bit-identical folder
                "evaluations": self.evaluations, "step_seconds": [],
                "rows": [_enc_row(r) for r in self.rows],
                "graph": graph_to_json(self.graph) if self.graph is not None else None,
                "source_graph": graph_to_json(self.source_graph)
                if self.source_graph is not None else None}
        with open(out / MODEL_FILES[0], "w") as f:
            json.dump(meta, f)
        np.savez(out / MODEL_FILES[1], **values)
        return [out / f for f in MODEL_FILES]

    @classmethod
    def load(cls, out_dir: str | Path) -> CompiledModel:
        """The model a compile ``--out`` folder holds (raises :class:`CompilerError` for a
        folder without one, or a damaged one)."""
        d = Path(out_dir)
        where = str(d)
        if not (d / MODEL_FILES[0]).is_file() or not (d / MODEL_FILES[1]).is_file():
            raise CompilerError(f"not a compiled model folder (no {MODEL_FILES[0]} and "
                                f"{MODEL_FILES[1]}; make one with mapspace compile ... --out "
                                "DIR)", where=where)
        try:
            with open(d / MODEL_FILES[0]) as f:
                meta = json.load(f)
            if meta.get("format") != _FORMAT:
                raise ValueError(f"format {meta.get('format')!r}, expected {_FORMAT!r}")
            with np.load(d / MODEL_FILES[1], allow_pickle=False) as z:
                values = {k: z[k] for k in z.files}
            graph = graph_from_json(meta["graph"], values) if meta["graph"] else None
            source = graph_from_json(meta["source_graph"], values) \
                if meta["source_graph"] else None
            rows = tuple(_dec_row(r) for r in meta["rows"])
        except CompilerError as e:
            raise CompilerError(f"damaged compiled model: {e}", where=where) from None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise CompilerError(f"damaged compiled model ({type(e).__name__}: {e})",
                                where=where) from None
        problems, mappings = _problems_and_mappings(graph, rows, meta["target"], where)
        return cls(meta["model"], meta["target"], meta["passes"], meta["strategy"], rows,
                   meta["distinct_shapes"], meta["searches"], meta["evaluations"],
                   tuple((n, float(s)) for n, s in meta["step_seconds"]), graph, source,
                   problems, mappings)


def _enc_row(r: OpRow) -> dict[str, Any]:
    d = asdict(r)
    d["attrs"] = [[k, _enc(v)] for k, v in r.attrs]
    return d


def _dec_row(d: dict[str, Any]) -> OpRow:
    d = dict(d)
    d["attrs"] = tuple((k, _dec(v)) for k, v in d["attrs"])
    return OpRow(**d)


def _problems_and_mappings(graph: Graph | None, rows: tuple[OpRow, ...], target: str,
                           where: str) -> tuple[dict, dict]:
    """Each MAC op's problem (lowered again from the graph) and mapping (its report YAML;
    ops of one shape group share one mapping object, as after a compile)."""
    if graph is None:
        return {}, {}
    arch = load_target(target)
    problems, mappings, parsed = {}, {}, {}
    for r in rows:
        if r.on_host:
            continue
        p = lower_op(graph, graph.op(r.name))
        if p is None:
            raise CompilerError(f"op {r.name!r} is not a MAC op of the graph", where=where)
        problems[r.name] = p
        if r.shape_group not in parsed:
            parsed[r.shape_group] = mapping_from_list(
                yaml.safe_load(r.mapping_yaml), problems[r.searched_as]
                if r.searched_as in problems else p, arch, f"{where}: op {r.name!r}")
        mappings[r.name] = parsed[r.shape_group]
    return problems, mappings


__all__ = ["MODEL_FILES", "CompiledModel", "graph_from_json", "graph_to_json"]
