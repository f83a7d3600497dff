/* Functional C model of Gemmini's intrinsics, with a timing model of its three decoupled
 * command queues; see gemmini_model.h for the semantics and README.md for the timing. */
#include "gemmini_model.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SPAD_ROWS (BANK_NUM * BANK_ROWS)

static elem_t spad[SPAD_ROWS][DIM];
static acc_t acc[ACC_ROWS][DIM];
static elem_t weights[DIM][DIM]; /* the weights held in the PE array */
static size_t ld_stride[3] = {DIM, DIM, DIM};
static size_t st_stride = DIM * sizeof(acc_t);
static int dataflow = WEIGHT_STATIONARY;
static uint32_t pre_B = GARBAGE_ADDR, pre_C = GARBAGE_ADDR;
static int pre_B_cols, pre_B_rows, pre_C_cols, pre_C_rows, preloaded;
static uint64_t counters[GC_COUNT];
static const char *counter_names[GC_COUNT] = {
    "config_ld", "config_st", "config_ex", "mvin", "mvout", "preload",
    "compute_preloaded", "compute_accumulated", "fence", "flush",
    "mvin_bytes", "mvin_spad_bytes", "mvin_acc_bytes", "mvin1_bytes", "mvin2_bytes",
    "mvin3_bytes", "mvout_bytes", "macs",
    "cycles", "load_busy", "exec_busy", "store_busy", "dram_busy", "dma_read_reqs",
    "dma_write_reqs"};

static void fail(const char *op, const char *what, long long value, long long bound) {
  fprintf(stderr, "gemmini model: %s: %s %lld out of range (bound %lld)\n", op, what, value,
          bound);
  fflush(stderr);
  abort();
}

static int is_acc(uint32_t a) { return (a & ACC_ADDR_BIT) != 0; }

/* ======================================================================================
 * Timing model.  Each intrinsic is a command of one of Gemmini's three queues (load:
 * mvin/mvin2/mvin3; execute: preload/compute; store: mvout), allocated in program order
 * into the reservation station (ReservationStation.scala), issued to its controller in
 * order once the commands of other queues it depends on have completed, and completed as
 * the controllers below say.  Times are cycles from the start of the program.  README.md
 * ("Timing model") gives every assumption and its source.
 * ==================================================================================== */
enum { QL = 0, QE = 1, QS = 2 };
#define RS_MAX 256
#define WIN_MAX 1024

static struct gemmini_timing TP = {
    .dram_bytes_per_cycle = 8, .dma_latency = 100, .dma_max_bytes = 64, .dma_inflight = 16,
    .dma_cmds = 2, .spad_read_delay = 4, .mesh_output_delay = 1, .acc_latency = 2,
    .min_feed_rows = 4, .rs_ld = 8, .rs_ex = 16, .rs_st = 4, .issue_cycles = 1};
static int tp_fixed; /* the environment was read, or gemmini_timing_set was called */

/* per scratchpad/accumulator row: when its last writer completes (and its queue), and
 * when its last readers of the execute and store queues complete */
struct rowtime {
  uint64_t w_end, r_ex, r_st;
  uint8_t w_q;
};
static struct rowtime spad_tm[SPAD_ROWS], acc_tm[ACC_ROWS];

static uint64_t t_host;               /* the host issues the next command no earlier */
static uint64_t last_alloc;           /* allocation time of the latest command */
static uint64_t rs_done[3][RS_MAX];   /* completion of the command holding each RS entry */
static uint64_t rs_k[3];
static uint64_t ctrl_free[3];         /* controller free (execute: the array's feed end) */
static uint64_t cmd_done[2][RS_MAX];  /* DMA command trackers of the load / store controller */
static uint64_t cmd_k[2];
static uint64_t win[2][WIN_MAX];      /* in-flight TileLink requests of the reader / writer */
static uint64_t win_k[2];
static uint64_t busy_end[3];
static uint64_t done_max;
static uint64_t (*cal)[2];            /* DRAM channel: sorted disjoint busy intervals [s, e) */
static size_t cal_lo, cal_n, cal_cap;
/* execute controller: the last compute (may pair with the next preload: perform_mul_pre) */
static int ex_open;
static uint64_t ex_open_start, ex_open_rows;
static struct {
  int valid, merged;
  uint64_t ready, feed_end, slot, b_feed;
  uint32_t B, C;
  int B_rows, C_rows;
} pend; /* the preload waiting for its compute */

static uint64_t umax(uint64_t a, uint64_t b) { return a > b ? a : b; }
static uint64_t cdiv(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

static const struct { const char *name; size_t off; } TP_FIELDS[] = {
    {"dram_bytes_per_cycle", offsetof(struct gemmini_timing, dram_bytes_per_cycle)},
    {"dma_latency", offsetof(struct gemmini_timing, dma_latency)},
    {"dma_max_bytes", offsetof(struct gemmini_timing, dma_max_bytes)},
    {"dma_inflight", offsetof(struct gemmini_timing, dma_inflight)},
    {"dma_cmds", offsetof(struct gemmini_timing, dma_cmds)},
    {"spad_read_delay", offsetof(struct gemmini_timing, spad_read_delay)},
    {"mesh_output_delay", offsetof(struct gemmini_timing, mesh_output_delay)},
    {"acc_latency", offsetof(struct gemmini_timing, acc_latency)},
    {"min_feed_rows", offsetof(struct gemmini_timing, min_feed_rows)},
    {"rs_ld", offsetof(struct gemmini_timing, rs_ld)},
    {"rs_ex", offsetof(struct gemmini_timing, rs_ex)},
    {"rs_st", offsetof(struct gemmini_timing, rs_st)},
    {"issue_cycles", offsetof(struct gemmini_timing, issue_cycles)},
};

static void clamp(uint32_t *v, uint32_t lo, uint32_t hi) {
  if (*v < lo) *v = lo;
  if (*v > hi) *v = hi;
}

static void timing_clamp(void) {
  clamp(&TP.dram_bytes_per_cycle, 1, 1u << 20);
  clamp(&TP.dma_max_bytes, 1, 1u << 20);
  clamp(&TP.dma_inflight, 1, WIN_MAX);
  clamp(&TP.dma_cmds, 1, RS_MAX);
  clamp(&TP.min_feed_rows, 1, 1u << 20);
  clamp(&TP.rs_ld, 1, RS_MAX);
  clamp(&TP.rs_ex, 2, RS_MAX); /* a preload and its compute hold two entries */
  clamp(&TP.rs_st, 1, RS_MAX);
}

static void timing_env(void) {
  tp_fixed = 1;
  const char *s = getenv("GEMMINI_TIMING");
  while (s && *s) {
    while (*s == ',' || *s == ' ') s++;
    if (!*s) break;
    size_t n = strcspn(s, "=");
    int found = 0;
    for (size_t i = 0; i < sizeof TP_FIELDS / sizeof TP_FIELDS[0]; i++)
      if (strlen(TP_FIELDS[i].name) == n && !strncmp(s, TP_FIELDS[i].name, n) && s[n] == '=') {
        *(uint32_t *)((char *)&TP + TP_FIELDS[i].off) = (uint32_t)strtoul(s + n + 1, NULL, 10);
        found = 1;
      }
    if (!found) {
      fprintf(stderr, "gemmini model: GEMMINI_TIMING: unknown parameter in '%s'\n", s);
      abort();
    }
    s += strcspn(s, ",");
  }
  timing_clamp();
}

static void timing_reset(void) {
  memset(spad_tm, 0, sizeof spad_tm);
  memset(acc_tm, 0, sizeof acc_tm);
  t_host = last_alloc = done_max = 0;
  memset(rs_done, 0, sizeof rs_done);
  memset(rs_k, 0, sizeof rs_k);
  memset(ctrl_free, 0, sizeof ctrl_free);
  memset(cmd_done, 0, sizeof cmd_done);
  memset(cmd_k, 0, sizeof cmd_k);
  memset(win, 0, sizeof win);
  memset(win_k, 0, sizeof win_k);
  memset(busy_end, 0, sizeof busy_end);
  cal_lo = cal_n = 0;
  ex_open = 0;
  memset(&pend, 0, sizeof pend);
}

void gemmini_timing_get(struct gemmini_timing *t) {
  if (!tp_fixed) timing_env();
  *t = TP;
}

void gemmini_timing_set(const struct gemmini_timing *t) {
  tp_fixed = 1;
  TP = *t;
  timing_clamp();
  timing_reset();
  for (int i = GC_CYCLES; i < GC_COUNT; i++) counters[i] = 0;
}

static uint32_t rs_n(int q) { return q == QL ? TP.rs_ld : q == QE ? TP.rs_ex : TP.rs_st; }

/* allocate a reservation-station entry of queue q, in program order */
static uint64_t alloc(int q, uint64_t *slot) {
  if (!tp_fixed) timing_env();
  *slot = rs_k[q]++;
  uint64_t t = umax(t_host, rs_done[q][*slot % rs_n(q)]);
  t_host = t + TP.issue_cycles;
  last_alloc = t;
  return t;
}

static void finish(uint64_t t) {
  if (t > done_max) done_max = counters[GC_CYCLES] = t;
}

static void retire(int q, uint64_t slot, uint64_t done) {
  rs_done[q][slot % rs_n(q)] = done;
  finish(done);
}

/* queue q busy during [s, e) (s never decreases within a queue) */
static void busy(int q, uint64_t s, uint64_t e) {
  if (s < busy_end[q]) s = busy_end[q];
  if (e > s) {
    counters[GC_LOAD_BUSY + q] += e - s;
    busy_end[q] = e;
  }
}

/* reserve the DRAM channel for d cycles at t0 or the first gap after; returns the end */
static uint64_t dram(uint64_t t0, uint64_t d) {
  counters[GC_DRAM_BUSY] += d;
  while (cal_lo < cal_n && cal[cal_lo][1] <= last_alloc) cal_lo++; /* nothing asks earlier */
  if (cal_lo > 1024 && 2 * cal_lo > cal_n) {
    memmove(cal, cal + cal_lo, (cal_n - cal_lo) * sizeof *cal);
    cal_n -= cal_lo;
    cal_lo = 0;
  }
  size_t lo = cal_lo, hi = cal_n;
  while (lo < hi) {
    size_t m = (lo + hi) / 2;
    if (cal[m][1] <= t0) lo = m + 1;
    else hi = m;
  }
  uint64_t s = t0;
  size_t i = lo;
  while (i < cal_n && cal[i][0] < s + d) {
    s = umax(s, cal[i][1]);
    i++;
  }
  uint64_t e = s + d;
  int prev = i > cal_lo && cal[i - 1][1] == s, next = i < cal_n && cal[i][0] == e;
  if (prev && next) {
    cal[i - 1][1] = cal[i][1];
    memmove(cal + i, cal + i + 1, (cal_n - i - 1) * sizeof *cal);
    cal_n--;
  } else if (prev) {
    cal[i - 1][1] = e;
  } else if (next) {
    cal[i][0] = s;
  } else {
    if (cal_n == cal_cap) {
      cal_cap = cal_cap ? 2 * cal_cap : 1024;
      cal = realloc(cal, cal_cap * sizeof *cal);
      if (!cal) fail("timing", "out of memory", 0, 0);
    }
    memmove(cal + i + 1, cal + i, (cal_n - i) * sizeof *cal);
    cal[i][0] = s;
    cal[i][1] = e;
    cal_n++;
  }
  return e;
}

static struct rowtime *rows_at(uint32_t a, uint32_t *row, uint32_t *n) {
  uint32_t lim = is_acc(a) ? ACC_ROWS : SPAD_ROWS;
  *row = a & ROW_MASK;
  if (*row >= lim) *n = 0;
  else if (*row + *n > lim) *n = lim - *row;
  return is_acc(a) ? acc_tm : spad_tm;
}

/* a reader in queue q of rows [a, a + n): after their writers in other queues (RAW) */
static uint64_t read_ready(int q, uint32_t a, uint32_t n) {
  if (a == GARBAGE_ADDR) return 0;
  uint32_t r;
  struct rowtime *m = rows_at(a, &r, &n);
  uint64_t t = 0;
  for (uint32_t i = 0; i < n; i++)
    if (m[r + i].w_q != q) t = umax(t, m[r + i].w_end);
  return t;
}

/* a writer in queue q: after writers in other queues (WAW; the load queue also waits for
 * itself) and readers in other queues (WAR) */
static uint64_t write_ready(int q, uint32_t a, uint32_t n) {
  if (a == GARBAGE_ADDR) return 0;
  uint32_t r;
  struct rowtime *m = rows_at(a, &r, &n);
  uint64_t t = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (m[r + i].w_q != q || q == QL) t = umax(t, m[r + i].w_end);
    if (q != QE) t = umax(t, m[r + i].r_ex);
    if (q != QS) t = umax(t, m[r + i].r_st);
  }
  return t;
}

static void mark_read(int q, uint32_t a, uint32_t n, uint64_t done) {
  if (a == GARBAGE_ADDR) return;
  uint32_t r;
  struct rowtime *m = rows_at(a, &r, &n);
  for (uint32_t i = 0; i < n; i++) {
    uint64_t *x = q == QE ? &m[r + i].r_ex : &m[r + i].r_st;
    *x = umax(*x, done);
  }
}

static void mark_write(int q, uint32_t a, uint32_t n, uint64_t done) {
  if (a == GARBAGE_ADDR) return;
  uint32_t r;
  struct rowtime *m = rows_at(a, &r, &n);
  for (uint32_t i = 0; i < n; i++) {
    m[r + i].w_end = umax(m[r + i].w_end, done);
    m[r + i].w_q = (uint8_t)q;
  }
}

static void time_config(void) {
  if (!tp_fixed) timing_env();
  t_host += TP.issue_cycles;
}

/* mvin: the load controller sends one DMA request per row (LoadController.scala), the
 * reader splits it into TileLink requests of at most dma_max_bytes, one per cycle, at most
 * dma_inflight in flight; each waits dma_latency, then its data takes the DRAM channel for
 * ceil(bytes / dram_bytes_per_cycle) cycles.  Rows of a block mvin span (blocks-1)*DIM+rows
 * local rows (the RS's range). */
static void time_mvin(uint32_t a, int cols, int rows, size_t esize) {
  int blocks = (cols + DIM - 1) / DIM;
  uint32_t nrows = (uint32_t)((blocks > 0 ? blocks - 1 : 0) * DIM + rows);
  uint64_t slot, al = alloc(QL, &slot);
  uint64_t *trk = &cmd_done[0][cmd_k[0]++ % TP.dma_cmds];
  uint64_t start = umax(umax(al, write_ready(QL, a, nrows)), umax(ctrl_free[QL], *trk));
  uint64_t t = start, done = start;
  for (int i = 0; i < rows; i++) {
    for (uint64_t left = (uint64_t)cols * esize; left;) {
      uint64_t b = left < TP.dma_max_bytes ? left : TP.dma_max_bytes;
      left -= b;
      uint64_t *w = &win[0][win_k[0]++ % TP.dma_inflight];
      uint64_t iss = umax(t, *w);
      uint64_t ret = dram(iss + TP.dma_latency, cdiv(b, TP.dram_bytes_per_cycle));
      *w = ret;
      done = umax(done, ret);
      t = iss + 1;
      counters[GC_DMA_READ_REQS]++;
    }
  }
  if (is_acc(a)) done += TP.acc_latency; /* the accumulator's write (read-modify-write) */
  ctrl_free[QL] = t;
  *trk = done;
  mark_write(QL, a, nrows, done);
  busy(QL, start, done);
  retire(QL, slot, done);
}

/* mvout: one local read per row per cycle (spad_read_delay), then the writer's TileLink
 * requests as for mvin; a request is acknowledged dma_latency after its data is sent. */
static void time_mvout(uint32_t a, int cols, int rows, size_t esize) {
  uint64_t slot, al = alloc(QS, &slot);
  uint64_t *trk = &cmd_done[1][cmd_k[1]++ % TP.dma_cmds];
  uint64_t start = umax(umax(al, read_ready(QS, a, (uint32_t)rows)), umax(ctrl_free[QS], *trk));
  uint64_t t = start, done = start, last = start;
  for (int i = 0; i < rows; i++) {
    uint64_t data = start + (uint64_t)i + TP.spad_read_delay;
    for (uint64_t left = (uint64_t)cols * esize; left;) {
      uint64_t b = left < TP.dma_max_bytes ? left : TP.dma_max_bytes;
      left -= b;
      uint64_t *w = &win[1][win_k[1]++ % TP.dma_inflight];
      uint64_t iss = umax(umax(t, data), *w);
      uint64_t ack = dram(iss, cdiv(b, TP.dram_bytes_per_cycle)) + TP.dma_latency;
      *w = ack;
      done = umax(done, ack);
      t = iss + 1;
      last = iss;
      counters[GC_DMA_WRITE_REQS]++;
    }
  }
  ctrl_free[QS] = umax(start + (uint64_t)rows, last + 1 - TP.spad_read_delay);
  *trk = done;
  mark_read(QS, a, (uint32_t)rows, done);
  busy(QS, start, done);
  retire(QS, slot, done);
}

/* rows from the array's first fed row to its last result written into the accumulator,
 * beyond the rows fed: the scratchpad read, the skew in, DIM rows down and DIM-1 columns
 * of skew out (MeshWithDelays.scala), the output register and the accumulator's RMW */
static uint64_t drain_cycles(void) {
  return TP.spad_read_delay + 2 * DIM - 1 + TP.mesh_output_delay + TP.acc_latency;
}

static void time_preload(uint32_t B, uint32_t C, int B_rows, int C_rows) {
  uint64_t slot, al = alloc(QE, &slot);
  uint64_t ready = umax(al, read_ready(QE, B, (uint32_t)B_rows));
  ready = umax(ready, write_ready(QE, C, (uint32_t)C_rows));
  pend.valid = 1;
  pend.merged = 0;
  pend.ready = ready;
  pend.slot = slot;
  pend.B = B;
  pend.C = C;
  pend.B_rows = B_rows;
  pend.C_rows = C_rows;
  pend.b_feed = B == GARBAGE_ADDR ? 1 : (uint64_t)(B_rows > 0 ? B_rows : 1);
  /* ExecuteController perform_mul_pre: the previous compute's A rows and this preload's B
   * rows are fed together, if this preload was issued by the time that compute started */
  if (ex_open && ready <= ex_open_start) {
    uint64_t len = umax(umax(ex_open_rows, pend.b_feed), TP.min_feed_rows);
    uint64_t end = ex_open_start + len;
    if (end > ctrl_free[QE]) {
      busy(QE, ex_open_start, end);
      ctrl_free[QE] = end;
    }
    pend.merged = 1;
    pend.feed_end = end;
  }
  ex_open = 0;
}

static void time_compute(uint32_t A, uint32_t D, int A_rows, int D_rows) {
  uint64_t slot, al = alloc(QE, &slot);
  uint64_t ready = umax(al, read_ready(QE, A, (uint32_t)A_rows));
  ready = umax(ready, read_ready(QE, D, (uint32_t)D_rows));
  if (pend.valid && !pend.merged) { /* perform_single_preload, once the compute is issued */
    uint64_t s = umax(umax(pend.ready, ready), ctrl_free[QE]);
    uint64_t len = umax(pend.b_feed, TP.min_feed_rows);
    busy(QE, s, s + len);
    ctrl_free[QE] = pend.feed_end = s + len;
  }
  uint64_t rows = (uint64_t)(A_rows > 0 ? A_rows : 1);
  uint64_t s = umax(ready, ctrl_free[QE]);
  uint64_t end = s + umax(rows, TP.min_feed_rows);
  busy(QE, s, end);
  ctrl_free[QE] = end;
  ex_open = 1;
  ex_open_start = s;
  ex_open_rows = rows;
  mark_read(QE, A, (uint32_t)A_rows, end);
  mark_read(QE, D, (uint32_t)D_rows, end);
  retire(QE, slot, end); /* a compute completes once its rows are fed */
  if (pend.valid) {      /* its preload, once its results are in the accumulator */
    uint64_t pdone = pend.C != GARBAGE_ADDR ? end + drain_cycles() : pend.feed_end;
    mark_read(QE, pend.B, (uint32_t)pend.B_rows, pdone);
    mark_write(QE, pend.C, (uint32_t)pend.C_rows, pdone);
    retire(QE, pend.slot, pdone);
    pend.valid = 0;
  }
}

/* check rows [row, row + n) of the memory `a` names; returns the first row */
static uint32_t check_rows(const char *op, uint32_t a, int n) {
  uint32_t row = a & ROW_MASK;
  long long bound = is_acc(a) ? ACC_ROWS : SPAD_ROWS;
  if (!is_acc(a) && (a & (ACCUMULATE_BIT | FULL_ROW_BIT)))
    fail(op, "scratchpad address with accumulator flags", (long long)a, SPAD_ROWS);
  if ((long long)row + n > bound)
    fail(op, is_acc(a) ? "accumulator row" : "scratchpad row", (long long)row + n - 1,
         bound - 1);
  return row;
}

static void check_dims(const char *op, const char *what, int v, int max) {
  if (v < 0 || v > max) fail(op, what, v, max);
}

void gemmini_extended3_config_ld(size_t stride_bytes, float scale, int shrunk, int id) {
  (void)scale; (void)shrunk;
  if (id < 0 || id > 2) fail("config_ld", "id", id, 2);
  ld_stride[id] = stride_bytes;
  counters[GC_CONFIG_LD]++;
  time_config();
}
void gemmini_config_ld(size_t stride_bytes) { gemmini_extended3_config_ld(stride_bytes, 1.0f, 0, 0); }

void gemmini_extended_config_st(size_t stride_bytes, int act, float scale) {
  if (act != NO_ACTIVATION) fail("config_st", "activation", act, NO_ACTIVATION);
  (void)scale;
  st_stride = stride_bytes;
  counters[GC_CONFIG_ST]++;
  time_config();
}
void gemmini_config_st(size_t stride_bytes) { gemmini_extended_config_st(stride_bytes, 0, 1.0f); }

void gemmini_extended_config_ex(int df, int act, int sys_shift, int A_stride, int A_transpose,
                                int B_transpose) {
  if (df != WEIGHT_STATIONARY) fail("config_ex", "dataflow (only WS is modelled)", df, 1);
  if (act != NO_ACTIVATION) fail("config_ex", "activation", act, NO_ACTIVATION);
  if (A_transpose || B_transpose) fail("config_ex", "transpose", 1, 0);
  (void)sys_shift; (void)A_stride;
  dataflow = df;
  counters[GC_CONFIG_EX]++;
  time_config();
}
void gemmini_config_ex(int df, int act, int sys_shift) {
  gemmini_extended_config_ex(df, act, sys_shift, 1, 0, 0);
}

static void mvin(const char *op, int id, const void *dram, uint32_t a, int cols, int rows) {
  if (a == GARBAGE_ADDR) fail(op, "local address GARBAGE_ADDR", (long long)a, SPAD_ROWS);
  if (!dram) fail(op, "DRAM address NULL", 0, 0);
  check_dims(op, "rows", rows, DIM);
  check_dims(op, "cols", cols, DIM * (is_acc(a) ? MAX_BLOCK_LEN_ACC : MAX_BLOCK_LEN));
  int blocks = (cols + DIM - 1) / DIM;
  check_rows(op, a, (blocks - 1) * DIM + rows);
  uint32_t row = a & ROW_MASK;
  const char *base = (const char *)dram;
  size_t esize = is_acc(a) ? sizeof(acc_t) : sizeof(elem_t);
  for (int i = 0; i < rows; i++) {
    const char *src = base + (size_t)i * ld_stride[id];
    for (int j = 0; j < cols; j++) {
      uint32_t r = row + (uint32_t)(j / DIM) * DIM + (uint32_t)i;
      if (is_acc(a)) {
        acc_t v;
        memcpy(&v, src + (size_t)j * esize, sizeof v);
        acc[r][j % DIM] = (a & ACCUMULATE_BIT) ? acc[r][j % DIM] + v : v;
      } else {
        spad[r][j % DIM] = ((const elem_t *)src)[j];
      }
    }
  }
  uint64_t bytes = (uint64_t)rows * (uint64_t)cols * esize;
  counters[GC_MVIN]++;
  counters[GC_MVIN_BYTES] += bytes;
  counters[is_acc(a) ? GC_MVIN_ACC_BYTES : GC_MVIN_SPAD_BYTES] += bytes;
  counters[GC_MVIN1_BYTES + id] += bytes;
  time_mvin(a, cols, rows, esize);
}

void gemmini_extended_mvin(const void *d, uint32_t a, int cols, int rows) { mvin("mvin", 0, d, a, cols, rows); }
void gemmini_extended_mvin2(const void *d, uint32_t a, int cols, int rows) { mvin("mvin2", 1, d, a, cols, rows); }
void gemmini_extended_mvin3(const void *d, uint32_t a, int cols, int rows) { mvin("mvin3", 2, d, a, cols, rows); }

static elem_t sat8(acc_t v) { return (elem_t)(v > 127 ? 127 : v < -128 ? -128 : v); }

void gemmini_extended_mvout(void *dram, uint32_t a, int cols, int rows) {
  const char *op = "mvout";
  if (a == GARBAGE_ADDR) fail(op, "local address GARBAGE_ADDR", (long long)a, SPAD_ROWS);
  if (!dram) fail(op, "DRAM address NULL", 0, 0);
  check_dims(op, "rows", rows, DIM);
  check_dims(op, "cols", cols, DIM);
  uint32_t row = check_rows(op, a, rows);
  int full = is_acc(a) && (a & FULL_ROW_BIT);
  size_t esize = full ? sizeof(acc_t) : sizeof(elem_t);
  for (int i = 0; i < rows; i++) {
    char *dst = (char *)dram + (size_t)i * st_stride;
    for (int j = 0; j < cols; j++) {
      if (full) {
        memcpy(dst + (size_t)j * esize, &acc[row + i][j], sizeof(acc_t));
      } else {
        ((elem_t *)dst)[j] = is_acc(a) ? sat8(acc[row + i][j]) : spad[row + i][j];
      }
    }
  }
  counters[GC_MVOUT]++;
  counters[GC_MVOUT_BYTES] += (uint64_t)rows * (uint64_t)cols * esize;
  time_mvout(a, cols, rows, esize);
}

void gemmini_extended_preload(uint32_t BD, uint32_t C, int BD_cols, int BD_rows, int C_cols,
                              int C_rows) {
  const char *op = "preload";
  check_dims(op, "B cols", BD_cols, DIM);
  check_dims(op, "B rows", BD_rows, DIM);
  check_dims(op, "C cols", C_cols, DIM);
  check_dims(op, "C rows", C_rows, DIM);
  if (BD != GARBAGE_ADDR) {
    if (is_acc(BD)) fail(op, "weights address in the accumulator", (long long)BD, SPAD_ROWS);
    check_rows(op, BD, BD_rows);
  }
  if (C != GARBAGE_ADDR) check_rows(op, C, C_rows);
  pre_B = BD; pre_C = C;
  pre_B_cols = BD_cols; pre_B_rows = BD_rows; pre_C_cols = C_cols; pre_C_rows = C_rows;
  preloaded = 1;
  counters[GC_PRELOAD]++;
  time_preload(BD, C, BD_rows, C_rows);
}

static void compute(const char *op, int load_weights, uint32_t A, uint32_t D, int A_cols,
                    int A_rows, int D_cols, int D_rows) {
  if (!preloaded) fail(op, "compute without a preceding preload", 0, 0);
  preloaded = 0;
  check_dims(op, "A cols", A_cols, DIM);
  check_dims(op, "A rows", A_rows, DIM);
  check_dims(op, "D cols", D_cols, DIM);
  check_dims(op, "D rows", D_rows, DIM);
  if (A == GARBAGE_ADDR || is_acc(A)) fail(op, "A address", (long long)A, SPAD_ROWS);
  uint32_t arow = check_rows(op, A, A_rows);
  if (load_weights && pre_B != GARBAGE_ADDR) {
    uint32_t b = pre_B & ROW_MASK;
    memset(weights, 0, sizeof weights);
    for (int i = 0; i < pre_B_rows; i++)
      for (int j = 0; j < pre_B_cols; j++) weights[i][j] = spad[b + i][j];
  }
  acc_t res[DIM][DIM];
  memset(res, 0, sizeof res);
  for (int i = 0; i < A_rows; i++) {
    const elem_t *a = spad[arow + i];
    for (int k = 0; k < A_cols; k++) {
      acc_t av = a[k];
      if (!av) continue;
      for (int j = 0; j < DIM; j++) res[i][j] += av * (acc_t)weights[k][j];
    }
  }
  counters[GC_MACS] += (uint64_t)A_rows * (uint64_t)A_cols * (uint64_t)pre_C_cols;
  if (D != GARBAGE_ADDR) {
    uint32_t d = check_rows(op, D, D_rows);
    for (int i = 0; i < D_rows; i++)
      for (int j = 0; j < D_cols; j++)
        res[i][j] += is_acc(D) ? acc[d + i][j] : (acc_t)spad[d + i][j];
  }
  if (pre_C != GARBAGE_ADDR) {
    uint32_t c = pre_C & ROW_MASK;
    for (int i = 0; i < pre_C_rows; i++)
      for (int j = 0; j < pre_C_cols; j++) {
        if (is_acc(pre_C))
          acc[c + i][j] = (pre_C & ACCUMULATE_BIT) ? acc[c + i][j] + res[i][j] : res[i][j];
        else
          spad[c + i][j] = sat8(res[i][j]);
      }
  }
  time_compute(A, D, A_rows, D_rows);
}

void gemmini_extended_compute_preloaded(uint32_t A, uint32_t BD, int A_cols, int A_rows,
                                        int BD_cols, int BD_rows) {
  compute("compute_preloaded", 1, A, BD, A_cols, A_rows, BD_cols, BD_rows);
  counters[GC_COMPUTE_PRELOADED]++;
}
void gemmini_extended_compute_accumulated(uint32_t A, uint32_t BD, int A_cols, int A_rows,
                                          int BD_cols, int BD_rows) {
  compute("compute_accumulated", 0, A, BD, A_cols, A_rows, BD_cols, BD_rows);
  counters[GC_COMPUTE_ACCUMULATED]++;
}

/* fence: the host waits until every command has completed */
void gemmini_fence(void) {
  counters[GC_FENCE]++;
  t_host = umax(t_host, done_max);
}
void gemmini_flush(int skip) { (void)skip; counters[GC_FLUSH]++; }

int gemmini_counters(uint64_t *out, const char **names) {
  for (int i = 0; i < GC_COUNT; i++) {
    if (out) out[i] = counters[i];
    if (names) names[i] = counter_names[i];
  }
  return GC_COUNT;
}

void gemmini_counters_json(void *fp) {
  FILE *f = (FILE *)fp;
  fprintf(f, "{");
  for (int i = 0; i < GC_COUNT; i++)
    fprintf(f, "%s\"%s\": %llu", i ? ", " : "", counter_names[i],
            (unsigned long long)counters[i]);
  fprintf(f, "}\n");
}

void gemmini_reset(void) {
  memset(spad, 0, sizeof spad);
  memset(acc, 0, sizeof acc);
  memset(weights, 0, sizeof weights);
  memset(counters, 0, sizeof counters);
  for (int i = 0; i < 3; i++) ld_stride[i] = DIM;
  st_stride = DIM * sizeof(acc_t);
  dataflow = WEIGHT_STATIONARY;
  pre_B = pre_C = GARBAGE_ADDR;
  preloaded = 0;
  if (!tp_fixed) timing_env();
  timing_reset();
}
