/* Functional C model of Gemmini's intrinsics; see gemmini_model.h for the semantics. */
#include "gemmini_model.h"

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
    "mvin3_bytes", "mvout_bytes", "macs"};

static void fail(const char *op, const char *what, long long value, long long bound) {
  fprintf(stderr, "gemmini model: %s: %s %lld out of range (bound %lld)\n", op, what, value,
          bound);
  fflush(stderr);
  abort();
}

static int is_acc(uint32_t a) { return (a & ACC_ADDR_BIT) != 0; }

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
}
void gemmini_config_ld(size_t stride_bytes) { gemmini_extended3_config_ld(stride_bytes, 1.0f, 0, 0); }

void gemmini_extended_config_st(size_t stride_bytes, int act, float scale) {
  if (act != NO_ACTIVATION) fail("config_st", "activation", act, NO_ACTIVATION);
  (void)scale;
  st_stride = stride_bytes;
  counters[GC_CONFIG_ST]++;
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

void gemmini_fence(void) { counters[GC_FENCE]++; }
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
}
