/* Functional C model of Gemmini's RoCC intrinsics (weight-stationary dataflow only).
 *
 * The interface follows Gemmini's gemmini.h: the same intrinsic names and argument
 * order, local addresses in Gemmini's format (row addresses; bit 31 = accumulator,
 * bit 30 = accumulate into the accumulator, bit 29 = mvout the full int32 row,
 * GARBAGE_ADDR = "no address").  DRAM addresses are host pointers.
 *
 * Sizes come from targets/gemmini/arch.yaml: DIM = 16, a 256 KiB int8 scratchpad
 * (BANK_NUM * BANK_ROWS = 16384 rows of DIM bytes) and a 64 KiB int32 accumulator
 * (ACC_ROWS = 1024 rows of DIM int32).  Any out-of-range address, too many rows or
 * columns, or an unsupported configuration prints the intrinsic, the address and the
 * bound on stderr and aborts.
 *
 * Semantics (as Gemmini in WS mode):
 *  - mvin(dram, local, cols, rows): rows x cols elements, DRAM row stride from the
 *    matching config_ld; int8 into the scratchpad, int32 into the accumulator (bit 30
 *    set: added to what is there).  cols <= DIM * MAX_BLOCK_LEN: column block b goes
 *    to rows local + b * DIM.  rows <= DIM.
 *  - preload(B, C, B_cols, B_rows, C_cols, C_rows): B (scratchpad) is the next weight
 *    block (B_rows x B_cols, zero-padded to DIM x DIM), C the address the next
 *    compute writes (C_rows x C_cols of its result); B = GARBAGE_ADDR keeps the weights.
 *  - compute_preloaded(A, D, A_cols, A_rows, D_cols, D_rows): loads the preloaded
 *    weights into the array, then C = A x W (+ D).  compute_accumulated: same with the
 *    weights already in the array.  A rows/cols beyond A_rows/A_cols are zeros.
 *    C in the accumulator: overwritten, or accumulated when bit 30 is set;
 *    C in the scratchpad: saturated to int8.
 *  - mvout(dram, local, cols, rows): accumulator rows as int32 when bit 29 is set,
 *    else saturated to int8 (no scaling, no activation); scratchpad rows as int8.
 */
#ifndef GEMMINI_MODEL_H
#define GEMMINI_MODEL_H

#include <stddef.h>
#include <stdint.h>

#define DIM 16
#define ADDR_LEN 32
#define BANK_NUM 4
#define BANK_ROWS 4096
#define ACC_ROWS 1024
#define MAX_BLOCK_LEN 4
#define MAX_BLOCK_LEN_ACC 1
#define GARBAGE_ADDR ((uint32_t)0xFFFFFFFF)
#define ACC_ADDR_BIT ((uint32_t)1 << 31)
#define ACCUMULATE_BIT ((uint32_t)1 << 30)
#define FULL_ROW_BIT ((uint32_t)1 << 29)
#define ROW_MASK ((uint32_t)0x1FFFFFFF)

#define OUTPUT_STATIONARY 0
#define WEIGHT_STATIONARY 1
#define NO_ACTIVATION 0

typedef int8_t elem_t;
typedef int32_t acc_t;

/* configuration */
void gemmini_extended3_config_ld(size_t stride_bytes, float scale, int shrunk, int id);
void gemmini_config_ld(size_t stride_bytes);
void gemmini_extended_config_st(size_t stride_bytes, int act, float scale);
void gemmini_config_st(size_t stride_bytes);
void gemmini_extended_config_ex(int dataflow, int act, int sys_shift, int A_stride,
                                int A_transpose, int B_transpose);
void gemmini_config_ex(int dataflow, int act, int sys_shift);

/* data movement (mvin2/mvin3 use the config_ld of id 1 / 2) */
void gemmini_extended_mvin(const void *dram_addr, uint32_t local_addr, int cols, int rows);
void gemmini_extended_mvin2(const void *dram_addr, uint32_t local_addr, int cols, int rows);
void gemmini_extended_mvin3(const void *dram_addr, uint32_t local_addr, int cols, int rows);
void gemmini_extended_mvout(void *dram_addr, uint32_t local_addr, int cols, int rows);
#define gemmini_mvin(dram, local) gemmini_extended_mvin(dram, local, DIM, DIM)
#define gemmini_mvout(dram, local) gemmini_extended_mvout(dram, local, DIM, DIM)

/* execution */
void gemmini_extended_preload(uint32_t BD, uint32_t C, int BD_cols, int BD_rows, int C_cols,
                              int C_rows);
void gemmini_extended_compute_preloaded(uint32_t A, uint32_t BD, int A_cols, int A_rows,
                                        int BD_cols, int BD_rows);
void gemmini_extended_compute_accumulated(uint32_t A, uint32_t BD, int A_cols, int A_rows,
                                          int BD_cols, int BD_rows);
void gemmini_fence(void);
void gemmini_flush(int skip);

/* model-only: counters and reset.  mvin1/2/3_bytes: bytes moved by mvin / mvin2 / mvin3
 * (config_ld id 0 / 1 / 2); macs counts A_rows x A_cols x C_cols per compute.
 * Timing (see "Timing model" below): cycles = when the last command completes (the
 * program's latency); load_busy / exec_busy / store_busy = cycles during which the load /
 * execute / store controller had work (the union of its commands' [start, completion)
 * intervals; for execute, of the cycles rows are fed into the array); dram_busy = cycles
 * the DRAM channel transfers data; dma_read_reqs / dma_write_reqs = TileLink requests. */
enum gemmini_counter {
  GC_CONFIG_LD, GC_CONFIG_ST, GC_CONFIG_EX, GC_MVIN, GC_MVOUT, GC_PRELOAD,
  GC_COMPUTE_PRELOADED, GC_COMPUTE_ACCUMULATED, GC_FENCE, GC_FLUSH,
  GC_MVIN_BYTES, GC_MVIN_SPAD_BYTES, GC_MVIN_ACC_BYTES, GC_MVIN1_BYTES, GC_MVIN2_BYTES,
  GC_MVIN3_BYTES, GC_MVOUT_BYTES, GC_MACS,
  GC_CYCLES, GC_LOAD_BUSY, GC_EXEC_BUSY, GC_STORE_BUSY, GC_DRAM_BUSY, GC_DMA_READ_REQS,
  GC_DMA_WRITE_REQS,
  GC_COUNT
};
/* counters[i] for i < GC_COUNT; names[i] their JSON names. Returns GC_COUNT. */
int gemmini_counters(uint64_t *counters, const char **names);
/* write the counters as one JSON object to `f` (a FILE *). */
void gemmini_counters_json(void *f);
void gemmini_reset(void);

/* Timing model (README.md "Timing model" documents each parameter and its source).  Every
 * intrinsic is also a command of Gemmini's load, execute or store queue; it is allocated in
 * program order (one per issue_cycles, when its queue has a free reservation-station entry),
 * starts when its controller is free and the commands it depends on (RAW/WAR/WAW on the
 * scratchpad/accumulator rows it reads and writes, across queues) have completed, and its
 * completion time feeds the counters above.  The functional results do not depend on it.
 * Parameters: the defaults below, then the environment variable GEMMINI_TIMING
 * ("key=value,key=value", keys = the field names), read once, then gemmini_timing_set. */
struct gemmini_timing {
  uint32_t dram_bytes_per_cycle; /* 8: arch.yaml DRAM shared_bandwidth */
  uint32_t dma_latency;          /* 100: cycles a TileLink request waits for its data (read)
                                    or its acknowledgement (write) */
  uint32_t dma_max_bytes;        /* 64: bytes per TileLink request (dma_maxbytes) */
  uint32_t dma_inflight;         /* 16: requests in flight per DMA (max_in_flight_mem_reqs) */
  uint32_t dma_cmds;             /* 2: mvins (mvouts) a controller tracks at once
                                    (max_in_flight_mem_reqs / DIM + 1) */
  uint32_t spad_read_delay;      /* 4: scratchpad/accumulator read latency */
  uint32_t mesh_output_delay;    /* 1 */
  uint32_t acc_latency;          /* 2: accumulator read-modify-write pipeline */
  uint32_t min_feed_rows;        /* 4: fewest rows the execute controller feeds per step */
  uint32_t rs_ld, rs_ex, rs_st;  /* 8, 16, 4: reservation-station entries per queue */
  uint32_t issue_cycles;         /* 1: host cycles per RoCC command */
};
void gemmini_timing_get(struct gemmini_timing *t);
/* set the parameters and restart the timing (not the memories): call it before the first
 * intrinsic of the program to be timed */
void gemmini_timing_set(const struct gemmini_timing *t);

#endif
