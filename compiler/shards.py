"""``explore`` as a dataset folder: deterministic shards, loss-free, resumable, any backend.

A run (problem, arch, constraints, seed, samples) is split into **shards** of
``shard_chunks`` whole sampler chunks: shard ``k`` draws chunks ``k*S .. k*S+S-1`` (each
chunk its own seeded stream, :class:`cost_models.explore.SampleAndPrice`) and keeps its
valid candidates in draw order.  The dataset is the first ``samples`` valid candidates of
shards ``0, 1, 2, ...`` -- exactly the rows :func:`compiler.explore.explore` returns, for any
backend, worker count, shard order or retry.  The folder holds::

    DIR/manifest.json            the run's configuration (and, once complete, its summary)
    DIR/shards/shard-000000.parquet ...  one Parquet file per finished shard

Each shard is written through :func:`mapspace.atomic.staged_file` (temporary file, then
rename) by the worker that ran it when the folder is visible there (same machine, shared
file system), else by this process, so a file under ``shards/`` is always whole (a worker
killed while writing leaves a hidden temporary, removed at the end); its Parquet
metadata (``mapspace``) records the candidates drawn and the valid ones seen.  Memory stays
bounded: shards stream to disk, at most two per worker in flight.  ``resume=True`` reads
the manifest, refuses a different configuration (saying what differs), and runs only the
missing shards.  When enough rows are in, shards past the last one needed are removed and
the last is cut at ``samples`` rows.  The summary (min/median/spread, best mapping) is
computed from the files (:func:`summarise_dataset`), with an exact median.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from compiler.backend import backend
from compiler.explore import (
    CHUNK,
    EMPTY_AFTER,
    ROUND_CHUNKS,
    _frame,
    diagnose,
    frame_decisions,
    summarise,
)
from cost_models.explore import SampleAndPrice
from mapspace.arch import Arch
from mapspace.arch_yaml import arch_to_dict
from mapspace.atomic import staged_dir, staged_file
from mapspace.constraints import Constraints
from mapspace.constraints_yaml import constraints_to_list
from mapspace.errors import MapspaceError
from mapspace.mapping import MappingBatch
from mapspace.problem import Problem
from mapspace.problem_yaml import problem_to_dict
from mapspace.space import Mapspace
from mapspace.validity import check

FORMAT = "mapspace-explore-dataset"
VERSION = 1
MANIFEST = "manifest.json"
SHARDS = "shards"
#: default chunks per shard: one sampling round of :func:`compiler.explore.explore`
SHARD_CHUNKS = ROUND_CHUNKS
_META = b"mapspace"


def run_config(problem: Problem, arch: Arch, constraints: Constraints, samples: int,
               seed: int, shard_chunks: int = SHARD_CHUNKS,
               max_candidates: int = 2_000_000_000) -> dict:
    """What defines a run's rows (compared on resume), JSON-ready."""
    return json.loads(json.dumps({
        "format": FORMAT, "version": VERSION, "problem": problem_to_dict(problem),
        "arch": arch_to_dict(arch), "constraints": constraints_to_list(constraints),
        "seed": int(seed), "samples": int(samples), "shard_chunks": int(shard_chunks),
        "chunk": CHUNK, "max_candidates": int(max_candidates)}, default=str))


def differences(there: object, now: object, path: str = "", limit: int = 4) -> list[str]:
    """Where two JSON values differ: ``path: X there, Y now`` (at most ``limit``)."""
    out: list[str] = []
    if isinstance(there, dict) and isinstance(now, dict):
        for k in list(there) + [k for k in now if k not in there]:
            out += differences(there.get(k), now.get(k), f"{path}.{k}" if path else str(k),
                               limit - len(out))
            if len(out) >= limit:
                break
    elif isinstance(there, list) and isinstance(now, list) and len(there) == len(now):
        for i, (x, y) in enumerate(zip(there, now, strict=True)):
            out += differences(x, y, f"{path}[{i}]", limit - len(out))
            if len(out) >= limit:
                break
    elif there != now:
        def short(v: object) -> str:
            t = json.dumps(v)
            return t if len(t) <= 60 else t[:57] + "..."
        out.append(f"{path}: {short(there)} there, {short(now)} now")
    return out[:limit]


# ------------------------------------------------------------------ one shard (on a worker)
_SAMPLERS: dict[str, SampleAndPrice] = {}


def _sampler(problem: Problem, arch: Arch, constraints: Constraints, key: str
             ) -> SampleAndPrice:
    if key not in _SAMPLERS:        # one per run and worker process
        _SAMPLERS.clear()
        _SAMPLERS[key] = SampleAndPrice(Mapspace(problem, arch, constraints))
    return _SAMPLERS[key]


def run_shard(problem: Problem, arch: Arch, constraints: Constraints, seed: int, shard: int,
              shard_chunks: int, key: str, out: str | None = None
              ) -> tuple[pd.DataFrame | None, dict]:
    """Shard ``shard``: its valid rows in draw order (the columns of
    :attr:`compiler.explore.Exploration.frame`) and its metadata (``candidates`` drawn,
    ``valid`` seen, ``rows``).  When the dataset folder ``out`` is visible here (the same
    machine or a shared file system: its ``shards/`` exists), the shard is written there
    by this worker through the atomic writer and ``None`` comes back instead of the rows,
    so the writing runs in parallel and nothing large travels; else the caller writes it."""
    run = _sampler(problem, arch, constraints, key)
    space = run.space
    n = shard_chunks * CHUNK
    dec, ok, cycles, energy, util = run(n, seed, shard * shard_chunks)
    if space.screens and ok.any():  # minimum utilization, a target's extra rules
        idx = np.nonzero(ok)[0]
        ok[idx] &= space.screen(space.decode(dec.take(idx)))[0]
    idx = np.nonzero(ok)[0]
    c, e = cycles[idx], energy[idx]
    costs = {"cycles": c, "energy_pJ": e, "edp": e * 1e-12 * c, "utilization": util[idx]}
    if not arch.energy_known:
        costs["energy_pJ"] = costs["edp"] = np.full(len(idx), np.nan)
    frame = _frame(space, dec.take(idx), costs)
    meta = {"shard": shard, "first_chunk": shard * shard_chunks, "chunks": shard_chunks,
            "candidates": n, "valid": len(idx), "rows": len(idx)}
    if out is not None and (Path(out) / SHARDS).is_dir():
        _write_shard(Path(out), shard, frame, meta)
        return None, meta
    return frame, meta


# ------------------------------------------------------------------ the folder
def shard_path(out: Path, k: int) -> Path:
    return out / SHARDS / f"shard-{k:06d}.parquet"


def _write_shard(out: Path, k: int, frame: pd.DataFrame, meta: dict) -> None:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                           _META: json.dumps(meta).encode()})
    with staged_file(shard_path(out, k), where=str(out)) as tmp:
        pq.write_table(table, tmp)


def _shard_meta(path: Path) -> dict:
    return json.loads(pq.read_schema(path).metadata[_META])


def finished_shards(out: Path) -> dict[int, dict]:
    """Shard index -> its metadata (``rows``, ``candidates``, ``valid``) for every file."""
    found = {}
    for f in (out / SHARDS).glob("shard-*.parquet"):
        found[int(f.stem.split("-")[1])] = _shard_meta(f)
    return found


def read_manifest(out: str | os.PathLike, option: str | None = None) -> dict:
    """The manifest of the dataset folder ``out``; MapspaceError naming the folder (and
    ``option``, the command-line option that gave it) when it is not one."""
    where, key = (option, str(out)) if option else (str(out), None)
    path = Path(out) / MANIFEST
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise MapspaceError(f"not an explore dataset folder (no readable {MANIFEST}: "
                            f"{type(e).__name__})", where=where, key=key) from None
    if not isinstance(doc, dict) or doc.get("config", {}).get("format") != FORMAT:
        raise MapspaceError(f"{MANIFEST} is not a {FORMAT} manifest", where=where, key=key)
    return doc


def _write_manifest(out: Path, doc: dict) -> None:
    with staged_file(out / MANIFEST, where=str(out)) as tmp:
        Path(tmp).write_text(json.dumps(doc, indent=1))


def read_dataset(out: str | os.PathLike, columns: list[str] | None = None) -> pd.DataFrame:
    """A complete dataset's rows, in order (the shards the manifest lists)."""
    out = Path(out)
    doc = read_manifest(out)
    if not doc.get("state", {}).get("complete"):
        raise MapspaceError("the run is not complete: finish it with --resume", where=str(out))
    parts = [pd.read_parquet(shard_path(out, k), columns=columns)
             for k in range(doc["state"]["shards"])]
    return pd.concat(parts, ignore_index=True)


# ------------------------------------------------------------------ the run
@dataclass(frozen=True)
class DatasetRun:
    """A finished dataset: its folder, summary, shard counts and best mapping."""

    out: Path
    summary: dict
    shards: int                  # shards in the dataset
    ran: int                     # shards computed by this call
    best_mapping: MappingBatch


def explore_dataset(out: str | os.PathLike, problem: Problem, arch: Arch,
                    constraints: Constraints, samples: int, seed: int, *,
                    resume: bool = False, workers: int | None = None,
                    cluster: str | None = None, client: object = None,
                    shard_chunks: int = SHARD_CHUNKS, max_candidates: int = 2_000_000_000,
                    progress: Callable[[int, int], None] | None = None,
                    empty_after: int = EMPTY_AFTER) -> DatasetRun:
    """Explore into the folder ``out`` (see the module doc); ``workers``/``cluster``/
    ``client`` choose the backend (:func:`compiler.backend.backend`).  As in
    :func:`compiler.explore.explore`, a space with no valid mapping among the first
    ``empty_after`` candidates is refused with the diagnosis (a new folder removed)."""
    t0 = time.perf_counter()
    if samples < 1:
        raise MapspaceError(f"must be a positive integer, found {samples}", where="explore",
                            key="samples")
    if not 1 <= shard_chunks <= 4096:
        raise MapspaceError(f"must be 1 to 4096, found {shard_chunks}", where="explore",
                            key="shard_chunks")
    out = Path(out)
    config = run_config(problem, arch, constraints, samples, seed, shard_chunks,
                        max_candidates)
    space = Mapspace(problem, arch, constraints)
    _ = space.tables                                 # raise early on empty factorizations
    _open(out, config, resume, create=False)       # bad folders refused before any work
    with backend(workers, cluster, client) as be:   # reach a cluster before writing
        doc = _open(out, config, resume)
        done = finished_shards(out)
        ran = _run_shards(be, out, done, problem, arch, constraints, seed, samples,
                          shard_chunks, max_candidates, config, progress, empty_after)
    per = shard_chunks * CHUNK
    max_shards = -(-max_candidates // per)
    K, cum = 0, 0
    while K < max_shards and cum < samples and (cum or K * per < empty_after):
        if K not in done:
            raise MapspaceError(f"shard {K} is missing after the run", where=str(out))
        cum += done[K]["rows"]
        K += 1
    if cum == 0:
        if not resume:      # a folder this call made, holding only empty shards
            shutil.rmtree(out, ignore_errors=True)
        dec, *_ = SampleAndPrice(space)(CHUNK, seed, 0)
        m = space.decode(dec)
        raise MapspaceError(f"no valid mapping among {K * per:,} candidates: "
                            + diagnose(space, m, check(problem, arch, m)), where="explore")
    _finalise(out, done, K, cum, samples)
    summary, best = summarise_dataset(out, space, seed, done, K,
                                      seconds=time.perf_counter() - t0)
    summary.update(out=str(out), shards=K, shards_run=ran, backend=be.label)
    doc["state"] = {"complete": True, "shards": K, "rows": int(min(cum, samples)),
                    "summary": {k: v for k, v in summary.items()
                                if k not in ("seconds", "evals_per_s", "shards_run",
                                             "backend")}}
    _write_manifest(out, doc)
    return DatasetRun(out, summary, K, ran, best)


def _open(out: Path, config: dict, resume: bool, create: bool = True) -> dict:
    """The manifest of a resumed run (its configuration must equal ``config``), or a new
    folder holding the manifest and an empty ``shards/`` (made whole or not at all; only
    checked unless ``create``)."""
    if resume:
        doc = read_manifest(out, "--resume")
        diff = differences(doc["config"], config)
        if diff:
            raise MapspaceError("the run there has a different configuration: "
                                + "; ".join(diff), where="--resume", key=str(out))
        if create:
            (out / SHARDS).mkdir(exist_ok=True)
        return doc
    if out.exists() or out.is_symlink():
        raise MapspaceError("exists; continue that run with --resume, or give a new folder",
                            where="--out", key=str(out))
    if not out.resolve().parent.is_dir():
        raise MapspaceError("its parent folder does not exist", where="--out", key=str(out))
    doc = {"config": config, "state": {"complete": False}}
    if not create:
        return doc
    with staged_dir(out) as tmp:
        (tmp / SHARDS).mkdir()
        (tmp / MANIFEST).write_text(json.dumps(doc, indent=1))
    return doc


def _run_shards(be, out: Path, done: dict[int, dict], problem: Problem, arch: Arch,
                constraints: Constraints, seed: int, samples: int, shard_chunks: int,
                max_candidates: int, config: dict,
                progress: Callable[[int, int], None] | None,
                empty_after: int = EMPTY_AFTER) -> int:
    """Run the missing shards on backend ``be`` in order, until the finished ones before
    the next hold ``samples`` rows; each written as it finishes.  Shards run."""
    max_shards = -(-max_candidates // (shard_chunks * CHUNK))
    key = hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()
    shards: list[int] = []      # shard indices in submission order

    def args():
        for k in range(max_shards):
            if k in done:
                continue
            before = sum(m["rows"] for j, m in done.items() if j < k)
            if before >= samples:
                return
            if (before == 0 and k * shard_chunks * CHUNK >= empty_after
                    and all(j in done for j in range(k))):
                return      # no valid mapping among the first empty_after candidates
            shards.append(k)
            yield (problem, arch, constraints, seed, k, shard_chunks, key, str(out.resolve()))

    ran = 0
    for i, (frame, meta) in be.imap(run_shard, args(), name="explore-shard"):
        k = shards[i]
        if frame is not None:          # the worker could not see the folder
            _write_shard(out, k, frame, meta)
        done[k] = meta
        ran += 1
        if progress:
            progress(min(samples, sum(m["rows"] for m in done.values())),
                     sum(m["candidates"] for m in done.values()))
    return ran


def _finalise(out: Path, done: dict[int, dict], K: int, cum: int, samples: int) -> None:
    """Remove shards past ``K`` (and stray temporaries), cut shard ``K-1`` at ``samples``."""
    for k in [k for k in done if k >= K]:
        shard_path(out, k).unlink(missing_ok=True)
        del done[k]
    for f in (out / SHARDS).glob(".*"):
        f.unlink(missing_ok=True)
    extra = cum - samples
    if extra > 0:
        last = K - 1
        frame = pd.read_parquet(shard_path(out, last))
        meta = dict(done[last], rows=len(frame) - extra)
        _write_shard(out, last, frame.iloc[: len(frame) - extra], meta)
        done[last] = meta


def summarise_dataset(out: Path, space: Mapspace, seed: int, done: dict[int, dict], K: int,
                      seconds: float) -> tuple[dict, MappingBatch]:
    """The summary of shards ``0..K-1`` from the files (exact median) and the best
    mapping (by EDP, or cycles without an energy table)."""
    cols = ["cycles", "energy_pJ"]
    parts = [pq.read_table(shard_path(out, k), columns=cols) for k in range(K)]
    cycles = np.concatenate([p.column("cycles").to_numpy() for p in parts])
    energy = np.concatenate([p.column("energy_pJ").to_numpy() for p in parts])
    del parts
    s = summarise(space.problem, space.arch, seed, cycles, energy,
                  candidates=sum(done[k]["candidates"] for k in range(K)),
                  valid_seen=sum(done[k]["valid"] for k in range(K)), seconds=seconds)
    rank = energy * 1e-12 * cycles if space.arch.energy_known else cycles
    i = int(np.argmin(rank))
    del cycles, energy, rank
    for k in range(K):
        if i < done[k]["rows"]:
            row = pd.read_parquet(shard_path(out, k)).iloc[[i]]
            return s, space.decode(frame_decisions(space, row))
        i -= done[k]["rows"]
    raise AssertionError("best row outside the dataset")


__all__ = ["FORMAT", "MANIFEST", "SHARDS", "SHARD_CHUNKS", "DatasetRun", "differences",
           "explore_dataset", "finished_shards", "read_dataset", "read_manifest", "run_config",
           "run_shard", "shard_path", "summarise_dataset"]
