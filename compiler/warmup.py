"""Compile every numba kernel once, at install: ``python -m compiler.warmup``.

The kernels (``mapspace/kernels.py``, ``mapspace/sampler_kernels.py``,
``cost_models/_*_kernel.py``) are ``@njit(cache=True)``: the first process that calls one
compiles it (about a minute for all of them on 2 cores) and writes the machine code to
numba's cache (``__pycache__`` beside the sources, or ``NUMBA_CACHE_DIR``); later processes
load it in a fraction of a second.  The Makefile's install stamp (``make setup``, a
dependency of ``make demo``) runs this module, so the first command after install runs at
full speed instead of paying the compilation.

:func:`warm_up` exercises each kernel through the public path that uses it, with the
argument types those paths pass (a matmul and a convolution on ``gemmini``): evaluation,
validity, nest analysis and pricing, sampling and decoding, the fused sample-and-price of
``explore`` (and its previous kernel, which ``benchmarks/bench_explore.py`` and the tests
compare it with), a short search, and Timeloop's sparse model on pruned weights
(``cost_models/_formats_kernel.py``, ``_tiles_kernel.py``, ``_sparse_price_kernel.py``).
"""

from __future__ import annotations

import time

from compiler.explore import explore
from cost_models import analyze, evaluate, price
from cost_models.search import find_mapping
from cost_models.sparseloop import PrunedWeights
from mapspace.validity import check
from mapspace.workloads import workload
from targets.registry import get_target

#: one transformer matmul and one convolution (sliding windows: other kernel branches)
WARM_WORKLOADS = ("bert-base/ffn1", "resnet50/conv3_x")
#: pruned weights as ``compile --passes sparsify=...`` prices them: both density models
SPARSE_WARM = (PrunedWeights(0.5, "nm", (2, 4)), PrunedWeights(0.5, "magnitude"))


def warm_up(workloads: tuple[str, ...] = WARM_WORKLOADS) -> float:
    """Run every compiled kernel once on each workload of ``workloads`` (``gemmini``);
    returns the seconds taken (compilation when the cache was cold, loading when warm)."""
    t0 = time.perf_counter()
    target = get_target("gemmini")
    for name in workloads:
        p = workload(name)
        space = target.space(p)
        arch = space.arch
        explore(p, arch, space.constraints, 64, 0)                 # sample + price, screen
        explore(p, arch, space.constraints, 64, 0, legacy=True)    # the previous kernel
        m = find_mapping(space, budget=512, seed=0).best_mapping   # draw, decode, evaluate
        evaluate(p, arch, m)
        check(p, arch, m)
        price(arch, analyze(p, arch, m))
        for pruned in SPARSE_WARM:                                 # Timeloop's sparse model
            pruned.cost(p, arch, m)
        space.decode(space.draw(8, 0))
    return time.perf_counter() - t0


def main() -> None:
    print(f"numba kernels compiled or loaded from the cache in {warm_up():.1f} s")


if __name__ == "__main__":
    main()
