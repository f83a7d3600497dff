"""What is computed: named dimensions, tensors with affine projections, bit widths, densities.

A :class:`Problem` is a perfectly nested loop over its dimensions with one multiply-accumulate
per point.  Each tensor is indexed by one or more *axes*; each axis is an affine sum of
dimensions, ``sum(coef * dim)`` (a convolution window is ``p*stride + r*dilation``).  Exactly
one tensor is read-write (the output).

Helpers build the common shapes.  ``matmul`` and ``conv2d`` use Timeloop's convolution naming
(``C`` reduction/input channels, ``M`` output channels, ``R,S`` filter, ``N`` batch, ``P,Q``
output rows/cols), so a matmul ``Z[m, n] = sum_k A[m, k] B[k, n]`` is the 1x1 convolution with
``P = m``, ``C = k``, ``M = n`` exactly as Timeloop users (and Gemmini's mapspace files) write it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from math import prod

import numpy as np

from mapspace.errors import MapspaceError

# ------------------------------------------------------------ integer bounds
# The cost and validity kernels (``mapspace/kernels.py``, ``cost_models/_nest_kernel.py``,
# ``cost_models/_pricing_kernel.py``) count in int64, which wraps silently.  Every Problem
# is checked here, once, against the largest products those kernels form, so that no
# problem that loads can overflow them (a mapping's factors are at most its dimension's
# size; the loaders check that).  For tensor ``t`` with coefficient matrix ``P[a, d]``
# (axis ``a``, dimension ``d``) over sizes ``s[d]``:
#
# * a tile over extents ``e[d] <= s[d]`` has ``prod_a (1 + sum_d P[a,d] (e[d] - 1))``
#   elements, at most ``kappa * prod_d e[d]**m[d]``, where ``kappa = prod_a max(1,
#   sum_d P[a,d])`` and ``m[d]`` is the number of axes that use ``d`` (because
#   ``1 + sum c (e - 1) <= sum c e <= (sum c) prod e`` for ``c, e >= 1``);
# * a level's deltas (words newly fetched over the run) are at most its tile times the
#   iterations of the temporal loops above it, its content accesses at most the deltas
#   of the level below times the distinct children of its fan-out, and the innermost
#   level's accesses the MACs: every read, fill, update, tile, delta and the MAC count
#   itself is therefore at most ``K_t = kappa * prod_d s[d]**max(1, m[d])`` (which is the
#   MACs times ``kappa`` when each dimension appears in at most one axis, the usual case);
# * the partition size of the nest kernel forms ``part * tile``, at most the square of the
#   whole tensor's size ``F_t``; the capacity check forms ``tile * bits``.
#
# With ``COUNT_LIMIT = 2**48 >= K_t`` the counts leave 2**14 of headroom below 2**62 for the
# pricing kernel's bandwidth-stretched cycles (``count / bandwidth``, bandwidths of at least
# 2**-14 words per cycle: :data:`mapspace.arch.MIN_BANDWIDTH`) and for sums of a few of
# them; ``F_t <= TENSOR_LIMIT = 2**31`` keeps ``part * tile <= 2**62``; ``bits <=
# BITS_LIMIT = 2**16`` keeps ``tile * bits <= 2**47``.  2**48 MACs is ~200x the largest
# single operator of today's language models; 2**31 elements is an 8 GiB fp32 tensor.
INT_LIMIT = 2**62
COUNT_LIMIT = 2**48
TENSOR_LIMIT = 2**31
BITS_LIMIT = 2**16


def _int_bounds_error(problem: Problem) -> MapspaceError | None:
    """The first bound of the derivation above that ``problem`` breaks (exact Python ints)."""
    where = f"problem {problem.name!r}"
    sizes = dict(zip(problem.dims, (int(s) for s in problem.sizes), strict=True))
    for d, s in sizes.items():
        if s > COUNT_LIMIT:
            return MapspaceError(f"size {s:,} is larger than the supported maximum of 2**48 = "
                                 f"{COUNT_LIMIT:,} (the 64-bit cost kernels' range)",
                                 where=where, key=d)
    coef = dict(problem.coefficients)
    for t in problem.tensors:
        axes = [{} for _ in t.projection]
        for a, axis in enumerate(t.projection):
            for term in axis:
                c = term.coef if isinstance(term.coef, int) else coef[term.coef]
                axes[a][term.dim] = axes[a].get(term.dim, 0) + int(c)
        kappa = prod(max(1, sum(ax.values())) for ax in axes)
        uses = {d: sum(1 for ax in axes if ax.get(d)) for d in sizes}
        k = kappa * prod(s ** max(1, uses[d]) for d, s in sizes.items())
        if k > COUNT_LIMIT:
            shown = " x ".join(f"{d}={s:,}" for d, s in sizes.items() if s > 1)
            return MapspaceError(
                f"sizes {shown} are too large: the access counts of tensor {t.name!r} can "
                f"reach {k:,}, more than the 2**48 = {COUNT_LIMIT:,} the 64-bit cost kernels "
                "hold (see mapspace/problem.py)", where=where, key="sizes")
        elements = prod(1 + sum(c * (sizes[d] - 1) for d, c in ax.items()) for ax in axes)
        if elements > TENSOR_LIMIT:
            return MapspaceError(
                f"tensor {t.name!r} has {elements:,} elements, more than the 2**31 = "
                f"{TENSOR_LIMIT:,} the 64-bit cost kernels hold (see mapspace/problem.py)",
                where=where, key="sizes")
    return None


@dataclass(frozen=True)
class Term:
    """One ``coef * dim`` summand of a tensor axis; ``coef`` is a coefficient name or an int."""

    dim: str
    coef: str | int = 1


@dataclass(frozen=True)
class Tensor:
    """A data space: its axes (each a tuple of :class:`Term`), read-write flag, bits, density.

    ``bits`` is the element width; ``None`` means "the word width of whatever level holds it"
    (Timeloop's convention).  ``density`` in (0, 1] is the fraction of non-zeros.
    """

    name: str
    projection: tuple[tuple[Term, ...], ...]
    read_write: bool = False
    bits: int | None = None
    density: float = 1.0


@dataclass(frozen=True)
class Problem:
    """A tensor operation.  ``sizes[i]`` is the extent of ``dims[i]``.

    ``coefficients`` maps coefficient names (strides, dilations) to values; ``extras`` keeps
    instance keys Timeloop ignores (``H``, ``W``, pads) so YAML round-trips are lossless.
    """

    name: str
    dims: tuple[str, ...]
    sizes: tuple[int, ...]
    tensors: tuple[Tensor, ...]
    coefficients: tuple[tuple[str, int], ...] = ()
    extras: tuple[tuple[str, int], ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        where = f"problem {self.name!r}"
        if len(self.dims) != len(self.sizes):
            raise MapspaceError("dims and sizes differ in length", where=where)
        if len(set(self.dims)) != len(self.dims):
            raise MapspaceError(f"duplicate dimension names in {list(self.dims)}", where=where)
        for d, s in zip(self.dims, self.sizes, strict=True):
            if not isinstance(s, int | np.integer) or isinstance(s, bool) or s < 1:
                raise MapspaceError(
                    f"size must be a positive integer, found {s!r}", where=where, key=d
                )
        names = [t.name for t in self.tensors]
        if len(set(names)) != len(names):
            raise MapspaceError(f"duplicate tensor names in {names}", where=where)
        coef = dict(self.coefficients)
        for t in self.tensors:
            if not 0.0 < t.density <= 1.0:
                raise MapspaceError(
                    f"density must be in (0, 1], found {t.density}", where=where,
                    key=f"{t.name}.density",
                )
            if t.bits is not None and (not isinstance(t.bits, int | np.integer)
                                       or isinstance(t.bits, bool)
                                       or not 1 <= t.bits <= BITS_LIMIT):
                raise MapspaceError(
                    f"bits must be an integer from 1 to 2**16 = {BITS_LIMIT:,}, found "
                    f"{t.bits!r}", where=where, key=f"{t.name}.bits"
                )
            for axis in t.projection:
                for term in axis:
                    if term.dim not in self.dims:
                        raise MapspaceError(
                            f"unknown dimension {term.dim!r} (dimensions are "
                            f"{', '.join(self.dims)})", where=where, key=f"{t.name}.projection",
                        )
                    if isinstance(term.coef, str) and term.coef not in coef:
                        raise MapspaceError(
                            f"unknown coefficient {term.coef!r} (known: "
                            f"{', '.join(coef) or 'none'})", where=where,
                            key=f"{t.name}.projection",
                        )
        if sum(t.read_write for t in self.tensors) != 1:
            raise MapspaceError(
                "exactly one tensor must be read-write (the output), found "
                f"{[t.name for t in self.tensors if t.read_write]}", where=where,
            )
        for c, v in self.coefficients:
            if not isinstance(v, int | np.integer) or isinstance(v, bool) or v < 1:
                raise MapspaceError(f"must be a positive integer (a stride or dilation), found "
                                    f"{v!r}", where=where, key=c)
        for t in self.tensors:
            for axis in t.projection:
                for term in axis:
                    if isinstance(term.coef, int) and (isinstance(term.coef, bool)
                                                       or term.coef < 1):
                        raise MapspaceError(f"a coefficient must be a positive integer, found "
                                            f"{term.coef!r}", where=where,
                                            key=f"{t.name}.projection")
        err = _int_bounds_error(self)
        if err is not None:
            raise err

    # ----------------------------------------------------------------- lookups
    @property
    def num_dims(self) -> int:
        return len(self.dims)

    @property
    def num_tensors(self) -> int:
        return len(self.tensors)

    @property
    def tensor_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tensors)

    def dim_index(self, dim: str) -> int:
        try:
            return self.dims.index(dim)
        except ValueError:
            raise MapspaceError(
                f"unknown dimension {dim!r} (dimensions are {', '.join(self.dims)})",
                where=f"problem {self.name!r}",
            ) from None

    def tensor_index(self, name: str) -> int:
        for i, t in enumerate(self.tensors):
            if t.name == name:
                return i
        raise MapspaceError(
            f"unknown tensor {name!r} (tensors are {', '.join(self.tensor_names)})",
            where=f"problem {self.name!r}",
        )

    def size(self, dim: str) -> int:
        return self.sizes[self.dim_index(dim)]

    @property
    def output_index(self) -> int:
        return next(i for i, t in enumerate(self.tensors) if t.read_write)

    @property
    def macs(self) -> int:
        """Number of multiply-accumulates (points of the iteration space)."""
        return prod(self.sizes)

    def coefficient(self, coef: str | int) -> int:
        return coef if isinstance(coef, int) else dict(self.coefficients)[coef]

    # --------------------------------------------------------- numeric forms
    @cached_property
    def projections(self) -> tuple[np.ndarray, ...]:
        """Per tensor, ``int64[A, D]``: coefficient of dim ``d`` in axis ``a``."""
        out = []
        for t in self.tensors:
            m = np.zeros((len(t.projection), self.num_dims), dtype=np.int64)
            for a, axis in enumerate(t.projection):
                for term in axis:
                    m[a, self.dim_index(term.dim)] += self.coefficient(term.coef)
            out.append(m)
        return tuple(out)

    @cached_property
    def relevance(self) -> np.ndarray:
        """``bool[T, D]``: whether tensor ``t`` is indexed by dimension ``d``."""
        return np.stack([(p != 0).any(axis=0) for p in self.projections])

    def tile_size(self, tensor: int, extents: np.ndarray) -> np.ndarray:
        """Elements of ``tensor`` touched by a box of ``extents`` (``int64[..., D]``).

        Each axis spans ``1 + sum(coef * (extent - 1))`` (Timeloop's axis-aligned
        hyper-rectangle: holes left by a stride larger than the window still count).
        """
        p = self.projections[tensor]
        spans = 1 + (np.asarray(extents, dtype=np.int64) - 1) @ p.T
        return spans.prod(axis=-1)

    def tensor_size(self, tensor: int | str) -> int:
        """Elements of the whole tensor (its projection of the full iteration space)."""
        i = self.tensor_index(tensor) if isinstance(tensor, str) else tensor
        return int(self.tile_size(i, np.array(self.sizes)))

    def with_sizes(self, **sizes: int) -> Problem:
        new = dict(zip(self.dims, self.sizes, strict=True))
        for k, v in sizes.items():
            self.dim_index(k)
            new[k] = v
        return replace(self, sizes=tuple(new[d] for d in self.dims))

    def with_tensor(self, name: str, **changes: object) -> Problem:
        """A copy with one tensor's ``bits``/``density`` (etc.) changed."""
        i = self.tensor_index(name)
        tensors = list(self.tensors)
        tensors[i] = replace(tensors[i], **changes)
        return replace(self, tensors=tuple(tensors))


# ------------------------------------------------------------------ helpers
_CONV_DIMS = ("C", "M", "R", "S", "N", "P", "Q")
_CONV_COEFS = ("Wstride", "Hstride", "Wdilation", "Hdilation")


def _ax(*dims: str | tuple[str, str]) -> tuple[Term, ...]:
    return tuple(Term(d) if isinstance(d, str) else Term(d[0], d[1]) for d in dims)


def _conv_shape(name: str, sizes: dict[str, int], coefs: dict[str, int],
                depthwise: bool = False, extras: dict[str, int] | None = None) -> Problem:
    weights = (_ax("C"), _ax("R"), _ax("S")) if depthwise else (
        _ax("C"), _ax("M"), _ax("R"), _ax("S"))
    inputs = (
        _ax("N"), _ax("C"),
        _ax(("R", "Wdilation"), ("P", "Wstride")),
        _ax(("S", "Hdilation"), ("Q", "Hstride")),
    )
    outputs = (_ax("N"), _ax("C") if depthwise else _ax("M"), _ax("Q"), _ax("P"))
    dims = tuple(d for d in _CONV_DIMS if not (depthwise and d == "M"))
    return Problem(
        name=name,
        dims=dims,
        sizes=tuple(int(sizes[d]) for d in dims),
        tensors=(
            Tensor("Weights", weights),
            Tensor("Inputs", inputs),
            Tensor("Outputs", outputs, read_write=True),
        ),
        coefficients=tuple((c, int(coefs[c])) for c in _CONV_COEFS),
        extras=tuple(sorted((extras or {}).items())),
    )


def _out_size(size: int, k: int, stride: int, pad: int, dilation: int, what: str) -> int:
    span = dilation * (k - 1) + 1
    out = (size + 2 * pad - span) // stride + 1
    if out < 1:
        raise MapspaceError(
            f"{what}: input of {size} (padding {pad}) is smaller than the window of {span}",
            where="conv2d",
        )
    return out


def conv2d(N: int, C: int, H: int, W: int, M: int, R: int, S: int, *, stride: int = 1,
           padding: int = 0, dilation: int = 1, name: str = "conv2d",
           depthwise: bool = False) -> Problem:
    """2-D convolution on an ``N x C x H x W`` input with ``M`` filters of ``R x S``.

    ``R`` slides along the width (with ``P``) and ``S`` along the height (with ``Q``), as
    in Timeloop's conv shape.  Padding is applied to the input (the projection is over the
    padded input).  ``depthwise=True`` drops ``M`` (one filter per channel).
    """
    for k, v in dict(N=N, C=C, H=H, W=W, M=M, R=R, S=S, stride=stride,
                     dilation=dilation).items():
        if v < 1:
            raise MapspaceError(f"{k} must be positive, found {v}", where="conv2d")
    if padding < 0:
        raise MapspaceError(f"padding must be >= 0, found {padding}", where="conv2d")
    P = _out_size(W, R, stride, padding, dilation, "width")
    Q = _out_size(H, S, stride, padding, dilation, "height")
    sizes = dict(C=C, M=M, R=R, S=S, N=N, P=P, Q=Q)
    coefs = dict(Wstride=stride, Hstride=stride, Wdilation=dilation, Hdilation=dilation)
    return _conv_shape(name, sizes, coefs, depthwise=depthwise,
                       extras=dict(H=H, W=W, Hpad=padding, Wpad=padding))


def depthwise_conv2d(N: int, C: int, H: int, W: int, R: int, S: int, **kw: object) -> Problem:
    """Depthwise 2-D convolution (one ``R x S`` filter per channel)."""
    kw.setdefault("name", "depthwise_conv2d")
    return conv2d(N, C, H, W, M=1, R=R, S=S, depthwise=True, **kw)  # type: ignore[arg-type]


def matmul(M: int, K: int, N: int, *, name: str = "matmul") -> Problem:
    """``Z[M, N] = sum_K A[M, K] B[K, N]`` as Timeloop's 1x1 conv: ``P=M, C=K, M=N``.

    ``A`` is ``Inputs``, ``B`` is ``Weights``, ``Z`` is ``Outputs``.
    """
    for k, v in dict(M=M, K=K, N=N).items():
        if v < 1:
            raise MapspaceError(f"{k} must be positive, found {v}", where="matmul")
    sizes = dict(C=K, M=N, R=1, S=1, N=1, P=M, Q=1)
    return _conv_shape(name, sizes, dict.fromkeys(_CONV_COEFS, 1))


def bmm(B: int, M: int, K: int, N: int, *, name: str = "bmm") -> Problem:
    """Batched matmul ``Z[b, m, n] = sum_k A[b, m, k] W[b, k, n]`` (attention, per head).

    Dimensions ``N`` (batch), ``P`` (= M), ``C`` (= K), ``M`` (= N); both operands depend on
    the batch, so unlike :func:`matmul` the ``Weights`` operand is not reused across it.
    """
    for k, v in dict(B=B, M=M, K=K, N=N).items():
        if v < 1:
            raise MapspaceError(f"{k} must be positive, found {v}", where="bmm")
    return Problem(
        name=name,
        dims=("C", "M", "N", "P"),
        sizes=(K, N, B, M),
        tensors=(
            Tensor("Weights", (_ax("N"), _ax("C"), _ax("M"))),
            Tensor("Inputs", (_ax("N"), _ax("P"), _ax("C"))),
            Tensor("Outputs", (_ax("N"), _ax("P"), _ax("M")), read_write=True),
        ),
    )
