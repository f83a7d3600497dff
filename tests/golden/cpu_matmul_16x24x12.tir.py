# from tvm.script import ir as I
# from tvm.script import tirx as T
# from tvm.tirx.layout import Axis

@I.ir_module
class Module:
    @T.prim_func(s_tir=True)
    def main(A: T.Buffer((16, 12), "float32"), B: T.Buffer((12, 24), "float32"), Z: T.Buffer((16, 24), "float32")):
        T.func_attr({"tirx.noalias": True})
        # with T.sblock("root"):
        Z_local = T.sblock_alloc_buffer((16, 24), scope="local")
        B_global = T.sblock_alloc_buffer((12, 24))
        for M_0 in T.parallel(2):
            for ax0 in range(12):
                for ax1 in T.vectorized(12):
                    with T.sblock("B_global"):
                        v0 = T.axis.spatial(12, ax0)
                        v1 = T.axis.spatial(24, M_0 * 12 + ax1)
                        T.reads(B[v0, v1])
                        T.writes(B_global[v0, v1])
                        B_global[v0, v1] = B[v0, v1]
            for P_0, M_1 in T.grid(4, 3):
                for P_1_init in T.unroll(4):
                    for M_2_init in T.vectorized(4):
                        with T.sblock("Z_init"):
                            v_P = T.axis.spatial(16, P_0 * 4 + P_1_init)
                            v_M = T.axis.spatial(24, M_0 * 12 + M_1 * 4 + M_2_init)
                            T.reads()
                            T.writes(Z_local[v_P, v_M])
                            Z_local[v_P, v_M] = T.float32(0.0)
                for C in range(12):
                    for P_1 in T.unroll(4):
                        for M_2 in T.vectorized(4):
                            with T.sblock("Z_update"):
                                v_P = T.axis.spatial(16, P_0 * 4 + P_1)
                                v_M = T.axis.spatial(24, M_0 * 12 + M_1 * 4 + M_2)
                                v_C = T.axis.reduce(12, C)
                                T.reads(Z_local[v_P, v_M], A[v_P, v_C], B_global[v_C, v_M])
                                T.writes(Z_local[v_P, v_M])
                                Z_local[v_P, v_M] = Z_local[v_P, v_M] + A[v_P, v_C] * B_global[v_C, v_M]
                for ax0 in range(4):
                    for ax1 in T.vectorized(4):
                        with T.sblock("Z_local"):
                            v0 = T.axis.spatial(16, P_0 * 4 + ax0)
                            v1 = T.axis.spatial(24, M_0 * 12 + M_1 * 4 + ax1)
                            T.reads(Z_local[v0, v1])
                            T.writes(Z[v0, v1])
                            Z[v0, v1] = Z_local[v0, v1]