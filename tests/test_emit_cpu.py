"""The cpu target: host_arch from /sys, the mapping -> TVM schedule emitter, `mapspace emit`.

Golden loop nest: ``tests/golden/cpu_matmul_16x24x12.tir.py``; after an intended change to
the emitter, regenerate it with ``.venv/bin/python -m pytest tests/test_emit_cpu.py -k golden
--update-golden`` and review the diff.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tvm")

import targets.cpu as cpu  # noqa: E402
from mapspace.errors import MapspaceError  # noqa: E402
from mapspace.mapping import single  # noqa: E402
from mapspace.problem import bmm, conv2d, depthwise_conv2d, matmul  # noqa: E402
from mapspace.space import Mapspace  # noqa: E402
from targets.cpu.emit import emit, schedule, trace_script  # noqa: E402
from targets.tvm_common import op_spec, prim_func  # noqa: E402

GOLDEN = Path(__file__).parent / "golden" / "cpu_matmul_16x24x12.tir.py"
SYS = Path("/sys/devices/system/cpu/cpu0/cache")


# ------------------------------------------------------------------ host_arch
def _sys_caches() -> dict[int, int]:
    """Independent parse of /sys: {level: bytes} of data/unified caches."""
    out = {}
    if not SYS.is_dir():
        return out
    for d in sorted(SYS.glob("index*")):
        try:
            if (d / "type").read_text().strip() == "Instruction":
                continue
            size = (d / "size").read_text().strip()
            lv = int((d / "level").read_text())
        except OSError:
            continue
        n = int(size.rstrip("KMG"))
        out[lv] = n * {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(size[-1], 1)
    return out


def test_host_arch_levels_and_capacities() -> None:
    a = cpu.host_arch()
    names = a.level_names
    assert names[0] == "DRAM" and names[-3:] == ("L2", "L1", "Registers")
    caches = _sys_caches()
    for lv, name in ((1, "L1"), (2, "L2"), (3, "L3")):
        if lv in caches:
            level = a.levels[a.level_index(name)]
            assert level.capacity == caches[lv] * 8 // 32 // cpu.CACHE_SHARE
    assert ("L3" in names) == (3 in caches)
    assert a.compute.instances == cpu.num_cores() * cpu.vector_unit().lanes
    assert a.levels[a.level_index("L2")].instances == cpu.num_cores()
    # int8 words: four times as many in the same bytes
    a8 = cpu.host_arch(8)
    assert a8.levels[a8.level_index("L1")].capacity == 4 * a.levels[a.level_index("L1")].capacity
    assert all(lv.energy.read > 0 for lv in a.levels) and a.compute.energy > 0


def test_host_arch_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu, "read_text", lambda path: None)
    monkeypatch.setattr(cpu, "num_cores", lambda: 3)
    a = cpu.host_arch()
    assert a.level_names == ("DRAM", "L2", "L1", "Registers")
    assert a.levels[a.level_index("L1")].capacity == 32 * 1024 // 4 // 2
    assert a.levels[a.level_index("L2")].capacity == 1024 * 1024 // 4 // 2
    assert a.compute.instances == 3 * 4           # no flags: 128-bit vectors
    assert a.fanout(0) == (3, 1)                  # cores fan out below DRAM
    assert cpu.llvm_mcpu() is None


def _fake_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fixed host: 32K L1d, 32K L1i, 512K L2, 32M L3, AVX2+FMA, 2 cores."""
    files = {"index0": ("1", "Data", "32K"), "index1": ("1", "Instruction", "32K"),
             "index2": ("2", "Unified", "512K"), "index3": ("3", "Unified", "32768K")}

    def read(path: Path) -> str | None:
        if path.name in ("level", "type", "size") and path.parent.name in files:
            return files[path.parent.name][("level", "type", "size").index(path.name)] + "\n"
        if str(path) == "/proc/cpuinfo":
            return "processor : 0\nflags\t\t: fpu sse2 avx avx2 fma\n"
        return None

    monkeypatch.setattr(cpu, "read_text", read)
    monkeypatch.setattr(cpu, "num_cores", lambda: 2)


def test_fake_host(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_host(monkeypatch)
    a = cpu.host_arch()
    assert a.level_names == ("DRAM", "L3", "L2", "L1", "Registers")
    # half of each cache; registers: 16 ymm x 8 words
    assert [lv.capacity for lv in a.levels[1:]] == [4 << 20, 64 << 10, 4 << 10, 16 * 8]
    assert a.fanout(1) == (2, 1) and a.fanout(4) == (8, 1)
    assert cpu.llvm_mcpu() == "haswell"


def test_registry_lists_cpu() -> None:
    from targets.registry import default_constraints, list_targets, load_target

    assert load_target("cpu").name == "cpu"
    assert default_constraints("cpu").directives
    assert "cpu" in [t.name for t in list_targets()]


# ------------------------------------------------------------------ emitted kernels
CASES = [
    ("matmul-100x60x36", lambda: matmul(100, 60, 36), "float32"),
    ("matmul-prime", lambda: matmul(31, 17, 23), "float32"),
    ("matmul-int8", lambda: matmul(100, 60, 36), "int8"),
    ("bmm", lambda: bmm(3, 31, 20, 24), "float32"),
    ("bmm-int8", lambda: bmm(2, 17, 23, 13), "int8"),
    ("conv-s2-p1", lambda: conv2d(1, 6, 15, 15, 10, 3, 3, stride=2, padding=1), "float32"),
    ("conv-int8-p1", lambda: conv2d(2, 5, 9, 7, 7, 3, 3, padding=1), "int8"),
    ("conv-1x1-s2", lambda: conv2d(1, 12, 14, 14, 8, 1, 1, stride=2), "float32"),
    ("dw-s2-p1", lambda: depthwise_conv2d(1, 6, 15, 13, 3, 3, stride=2, padding=1),
     "float32"),
    ("dw-int8-dil2", lambda: depthwise_conv2d(2, 7, 11, 9, 3, 3, padding=2, dilation=2),
     "int8"),
]


@pytest.mark.parametrize("name,make,dtype", CASES, ids=[c[0] for c in CASES])
def test_random_mappings_match_numpy(name: str, make, dtype: str) -> None:
    p = make()
    bits = 8 if dtype == "int8" else 32
    arch = cpu.host_arch(bits)
    maps, _ = Mapspace(p, arch, cpu.cpu_constraints(p, bits)).sample(3, seed=7)
    for i in range(len(maps)):
        r = emit(p, maps[i], arch, dtype=dtype, run=True, seed=i, repeat=1)
        assert r.correct, (name, i, r.max_abs_error)
        if dtype == "int8":
            assert r.max_abs_error == 0


def test_depthwise_unconstrained_mappings_and_cli(tmp_path: Path) -> None:
    """Depthwise mappings with any order and spatial factors (C across the cores or lanes
    too) are scheduled correctly; ``mapspace emit`` runs a MobileNetV2 depthwise layer."""
    from click.testing import CliRunner

    from compiler.cli import main

    p = depthwise_conv2d(1, 10, 13, 13, 3, 3, stride=2, padding=1)
    arch = cpu.host_arch()
    maps, _ = Mapspace(p, arch).sample(3, seed=5)
    for i in range(len(maps)):
        assert emit(p, maps[i], arch, run=True, seed=i, repeat=1).correct
    text = schedule(op_spec(p), maps[0], arch).mod.script()
    assert "T.parallel" in text or "T.vectorized" in text or "T.unroll" in text
    r = CliRunner().invoke(main, ["emit", "--target", "cpu", "--workload",
                                  "mobilenetv2/dw-14x14x384", "--budget", "200", "--dtype",
                                  "int8", "--out", str(tmp_path / "k"), "--run", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output.strip().splitlines()[-1])
    assert doc["correct"] is True and doc["kind"] == "depthwise_conv2d"


def test_unconstrained_mappings_match_numpy() -> None:
    """Mappings the CPU constraints would forbid (reductions across cores or lanes, any
    order) still schedule correctly."""
    p = matmul(24, 18, 20)
    arch = cpu.host_arch()
    maps, _ = Mapspace(p, arch).sample(4, seed=3)
    for i in range(len(maps)):
        assert emit(p, maps[i], arch, run=True, repeat=1).correct


def test_trace_replays() -> None:
    import tvm
    from tvm import s_tir

    p = conv2d(1, 6, 15, 15, 10, 3, 3, stride=2, padding=1)
    arch = cpu.host_arch()
    spec = op_spec(p)
    m, _ = Mapspace(p, arch, cpu.cpu_constraints(p)).sample(1, seed=11)
    sch = schedule(spec, m, arch)
    fresh = s_tir.Schedule(tvm.IRModule({"main": prim_func(spec)}))
    sch.trace.apply_to_schedule(fresh, remove_postproc=False)
    tvm.ir.assert_structural_equal(sch.mod, fresh.mod)
    # the written trace.py replays too
    ns: dict = {}
    exec(compile(trace_script(sch), "trace.py", "exec"), ns)
    again = s_tir.Schedule(tvm.IRModule({"main": prim_func(spec)}))
    ns["apply"](again)
    tvm.ir.assert_structural_equal(sch.mod, again.mod)


def _fixed_mapping():
    """matmul P=16, C=12, M=24 on the fake host (DRAM, L3, L2, L1, Registers)."""
    p = matmul(16, 12, 24)            # dims C M R S N P Q
    T = np.ones((5, 7), np.int64)
    S = np.ones((5, 7), np.int64)
    T[2, 5] = 4                       # L2: P 4
    T[3, 0] = 12                      # L1: C 12 (innermost)
    T[3, 1] = 3                       # L1: M 3
    T[4, 5] = 4                       # Registers: P 4
    S[1, 1] = 2                       # 2 cores over M
    S[4, 1] = 4                       # 4 lanes over M
    order = np.tile(np.arange(7), (5, 1))
    order[3] = [0, 1, 2, 3, 4, 5, 6]  # L1: C innermost, then M
    return p, single(T, S, order, np.ones((5, 7), bool), np.ones((5, 3), bool))


def test_golden_loop_nest(monkeypatch: pytest.MonkeyPatch, golden) -> None:
    _fake_host(monkeypatch)
    arch = cpu.host_arch()
    p, m = _fixed_mapping()
    text = schedule(op_spec(p), m, arch).mod.script()
    golden(GOLDEN, text)
    assert "T.parallel(2)" in text and "T.vectorized(4)" in text and "Z_local" in text
    assert emit(p, m, arch, run=True, repeat=1).correct


# ------------------------------------------------------------------ errors
def test_bad_mappings_raise() -> None:
    arch = cpu.host_arch()
    p, m = _fixed_mapping()
    p2 = matmul(16, 12, 25)
    with pytest.raises(MapspaceError, match="dim M multiply to 24"):
        emit(p2, m, arch)
    from mapspace.mapping import MappingBatch

    short = MappingBatch(m.temporal[:, 1:], m.spatial[:, 1:], m.order[:, 1:],
                         m.spatial_x[:, 1:], m.keep[:, 1:])
    with pytest.raises(MapspaceError, match="levels"):
        schedule(op_spec(p), short, cpu.host_arch() if arch.num_levels != 4 else arch)
    bad_order = MappingBatch(m.temporal, m.spatial, np.zeros_like(m.order), m.spatial_x, m.keep)
    with pytest.raises(MapspaceError, match="permutation"):
        schedule(op_spec(p), bad_order, arch)


def test_unemittable_op_raises() -> None:
    from dataclasses import replace

    p = conv2d(1, 8, 10, 10, 4, 3, 3)
    coefs = dict(p.coefficients) | {"Wstride": 2}
    with pytest.raises(MapspaceError, match="square strides"):
        op_spec(replace(p, coefficients=tuple(coefs.items())))


# ------------------------------------------------------------------ CLI
def test_cli_emit_run_json(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from compiler.cli import main

    out = tmp_path / "k"
    r = CliRunner().invoke(main, ["emit", "--target", "cpu", "--workload",
                                  "gpt2-decode/out-proj", "--budget", "300", "--out",
                                  str(out), "--run", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output.strip().splitlines()[-1])
    assert doc["correct"] is True and doc["seconds"] > 0
    assert sorted(x.name for x in out.iterdir()) == ["kernel.so", "kernel_tir.py", "trace.py"]
    assert not [x for x in tmp_path.iterdir() if x.name.startswith(".")]


def test_cli_emit_bad_mapping(tmp_path: Path) -> None:
    import yaml
    from click.testing import CliRunner

    from compiler.cli import main
    from mapspace.mapping_yaml import mapping_to_list
    from mapspace.workloads import workload

    arch = cpu.host_arch()
    other = workload("bert-base/ffn1")
    m, _ = Mapspace(other, arch, cpu.cpu_constraints(other)).sample(1, seed=0)
    bad = tmp_path / "m.yaml"
    bad.write_text(yaml.safe_dump({"mapping": mapping_to_list(m, other, arch)}))
    out = tmp_path / "k"
    r = CliRunner().invoke(main, ["emit", "--target", "cpu", "--workload",
                                  "gpt2-decode/out-proj", "--mapping", str(bad),
                                  "--out", str(out)])
    assert r.exit_code == 2, r.output
    assert len(r.output.strip().splitlines()) == 1 and "error" in r.output
    assert not out.exists()
    assert [x.name for x in tmp_path.iterdir()] == ["m.yaml"]


def test_conv_vectorised_over_output_channels() -> None:
    """``vector_dim="M"`` (the TVM plug-in's NCHW convs with HWIO weights): the constraints
    keep the whole reduction around the register tile and put the lanes on ``M``; the
    schedule lays the accumulators out with ``M`` innermost and computes the conv exactly
    as numpy does (here on the emitter's own OIHW operands)."""
    import tvm

    from targets.cpu.emit import build, host_target
    from targets.tvm_common import output_shape, random_inputs, reference

    p = conv2d(1, 6, 9, 9, 32, 3, 3, stride=1, padding=1)
    spec = op_spec(p)
    dims = list(spec.sizes)
    arch = cpu.host_arch()
    names = arch.level_names
    l1, l2, regs = (names.index(n) for n in ("L1", "L2", "Registers"))
    maps, _ = Mapspace(p, arch, cpu.cpu_constraints(p, vector_dim="M")).sample(3, seed=2)
    assert len(maps) == 3
    for i in range(len(maps)):
        t, s = maps.temporal[i], maps.spatial[i]
        assert all(t[l1, dims.index(d)] == 1 for d in "NMPQ")
        assert all(t[lv, dims.index(d)] == 1 for lv in range(l2) for d in "CRS")
        assert all(s[regs, dims.index(d)] == 1 for d in dims if d != "M")
        sch = schedule(spec, maps[i], arch, vector_dim="M")
        text = sch.mod.script()
        local = [ln for ln in text.splitlines() if 'scope="local"' in ln]
        assert local and "32)" in local[0].split("scope")[0]   # (.., Q, P, M): M last
        lib = build(sch, host_target())
        a, b = random_inputs(spec, "float32", i)
        dev = tvm.cpu(0)
        args = [tvm.runtime.tensor(a, dev), tvm.runtime.tensor(b, dev),
                tvm.runtime.empty(output_shape(spec), "float32", dev)]
        lib["main"](*args)
        np.testing.assert_allclose(args[2].numpy(), reference(spec, a, b), rtol=1e-4,
                                   atol=1e-4)


def test_default_conv_constraints_unchanged() -> None:
    """Without ``vector_dim`` a conv keeps its lanes on ``P`` and its free reduction split."""
    p = conv2d(1, 6, 9, 9, 32, 3, 3, padding=1)
    lst = cpu.constraints_list("P")
    assert not any(d.get("target") == "L2" and d.get("permutation") for d in lst)
    maps, _ = Mapspace(p, cpu.host_arch(), cpu.cpu_constraints(p)).sample(2, seed=1)
    dims = list(op_spec(p).sizes)
    regs = cpu.host_arch().level_names.index("Registers")
    assert all(maps.spatial[i][regs, dims.index("M")] == 1 for i in range(len(maps)))
