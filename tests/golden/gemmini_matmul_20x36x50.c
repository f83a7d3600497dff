// tvm target: {"kind":"c","tag":"","keys":["cpu"]}
#define TVM_EXPORTS
#include "tvm/ffi/extra/c_env_api.h"
#include "tvm/runtime/base.h"
#include "tvm/runtime/c_backend_api.h"
#include "tvm/ffi/c_api.h"
#include <math.h>
#include <stdbool.h>
void* __tvm_ffi__library_ctx = NULL;
#ifdef __cplusplus
extern "C"
#endif
TVM_DLL int32_t __tvm_ffi_main(void* self_handle, void* args, int32_t num_args, void* result);
#ifdef __cplusplus
extern "C"
#endif
TVM_DLL void gemmini_config_ex(int32_t, int32_t, int32_t);
#ifdef __cplusplus
extern "C"
#endif
TVM_DLL void gemmini_extended3_config_ld(int32_t, float, int32_t, int32_t);
#ifdef __cplusplus
extern "C"
#endif
TVM_DLL void gemmini_extended3_config_ld(int32_t, float, int32_t, int32_t);
#ifdef __cplusplus
extern "C"
#endif
TVM_DLL void gemmini_extended3_config_ld(int32_t, float, int32_t, int32_t);
#ifdef __cplusplus
extern "C"
#endif
TVM_DLL void gemmini_config_st(int32_t);
#ifdef __cplusplus
extern "C"
#endif
TVM_DLL void gemmini_extended_mvin(int8_t*, uint32_t, int32_t, int32_t);
#ifdef __cplusplus
extern "C"
#endif
TVM_DLL void gemmini_extended_mvin2(int8_t*, uint32_t, int32_t, int32_t);
#ifdef __cplusplus
extern "C"
#endif
TVM_DLL void gemmini_extended_mvin3(int32_t*, uint32_t, int32_t, int32_t);
#ifdef __cplusplus
extern "C"
#endif
TVM_DLL void gemmini_extended_preload(uint32_t, uint32_t, int32_t, int32_t, int32_t, int32_t);
#ifdef __cplusplus
extern "C"
#endif
TVM_DLL void gemmini_extended_compute_preloaded(uint32_t, uint32_t, int32_t, int32_t, int32_t, int32_t);
#ifdef __cplusplus
extern "C"
#endif
TVM_DLL void gemmini_extended_mvout(int32_t*, uint32_t, int32_t, int32_t);
#ifdef __cplusplus
extern "C"
#endif
TVM_DLL void gemmini_fence();
#ifdef __cplusplus
extern "C"
#endif
TVM_DLL int32_t __tvm_ffi_main(void* self_handle, void* args, int32_t num_args, void* result) {
  if (!((num_args == 3))) {
    const char* __tvm_assert_parts[6] = {"Expected ", "3", " arguments", " when calling:\n  `", "main(A: Tensor([20, 36], int8), B: Tensor([36, 50], int8), Z: Tensor([20, 50], int32))", "`"};
    TVMFFIErrorSetRaisedFromCStrParts("TypeError", __tvm_assert_parts, 6);
    return -1;
  }
  if (!(!(args == NULL))) {
    const char* __tvm_assert_parts[4] = {"args pointer is NULL", " when calling:\n  `", "main(A: Tensor([20, 36], int8), B: Tensor([36, 50], int8), Z: Tensor([20, 50], int32))", "`"};
    TVMFFIErrorSetRaisedFromCStrParts("TypeError", __tvm_assert_parts, 4);
    return -1;
  }
  int32_t A_type_index = (((TVMFFIAny*)args)[0].type_index);
  if (!(((((A_type_index == 0) || (A_type_index == 4)) || (A_type_index == 7)) || (A_type_index >= 64)))) {
    const char* __tvm_assert_parts[6] = {"Mismatched type on argument #", "0", " when calling:\n  `", "main(A: Tensor([20, 36], int8), B: Tensor([36, 50], int8), Z: Tensor([20, 50], int32))", "`,\n  expected ", "Tensor"};
    TVMFFIErrorSetRaisedFromCStrParts("TypeError", __tvm_assert_parts, 6);
    return -1;
  }
  void* condval;
  if (A_type_index == 70) {
    condval = ((void*)((char*)(((TVMFFIAny*)args)[0].v_ptr) + 24));
  } else {
    condval = (((TVMFFIAny*)args)[0].v_ptr);
  }
  void* A_handle = (void*)condval;
  int32_t B_type_index = (((TVMFFIAny*)args)[1].type_index);
  if (!(((((B_type_index == 0) || (B_type_index == 4)) || (B_type_index == 7)) || (B_type_index >= 64)))) {
    const char* __tvm_assert_parts[6] = {"Mismatched type on argument #", "1", " when calling:\n  `", "main(A: Tensor([20, 36], int8), B: Tensor([36, 50], int8), Z: Tensor([20, 50], int32))", "`,\n  expected ", "Tensor"};
    TVMFFIErrorSetRaisedFromCStrParts("TypeError", __tvm_assert_parts, 6);
    return -1;
  }
  void* condval_1;
  if (B_type_index == 70) {
    condval_1 = ((void*)((char*)(((TVMFFIAny*)args)[1].v_ptr) + 24));
  } else {
    condval_1 = (((TVMFFIAny*)args)[1].v_ptr);
  }
  void* B_handle = (void*)condval_1;
  int32_t Z_type_index = (((TVMFFIAny*)args)[2].type_index);
  if (!(((((Z_type_index == 0) || (Z_type_index == 4)) || (Z_type_index == 7)) || (Z_type_index >= 64)))) {
    const char* __tvm_assert_parts[6] = {"Mismatched type on argument #", "2", " when calling:\n  `", "main(A: Tensor([20, 36], int8), B: Tensor([36, 50], int8), Z: Tensor([20, 50], int32))", "`,\n  expected ", "Tensor"};
    TVMFFIErrorSetRaisedFromCStrParts("TypeError", __tvm_assert_parts, 6);
    return -1;
  }
  void* condval_2;
  if (Z_type_index == 70) {
    condval_2 = ((void*)((char*)(((TVMFFIAny*)args)[2].v_ptr) + 24));
  } else {
    condval_2 = (((TVMFFIAny*)args)[2].v_ptr);
  }
  void* Z_handle = (void*)condval_2;
  if (!(!(A_handle == NULL))) {
    const char* __tvm_assert_parts[6] = {"Mismatched type on argument #", "0", " when calling:\n  `", "main(A: Tensor([20, 36], int8), B: Tensor([36, 50], int8), Z: Tensor([20, 50], int32))", "`,\n  expected ", "Tensor"};
    TVMFFIErrorSetRaisedFromCStrParts("TypeError", __tvm_assert_parts, 6);
    return -1;
  }
  if (!((2 == (((DLTensor*)A_handle)[0].ndim)))) {
    const char* __tvm_assert_parts[8] = {"Mismatched ", "A", ".ndim on argument #", "0", " when calling:\n  `", "main(A: Tensor([20, 36], int8), B: Tensor([36, 50], int8), Z: Tensor([20, 50], int32))", "`,\n  expected ", "2"};
    TVMFFIErrorSetRaisedFromCStrParts("ValueError", __tvm_assert_parts, 8);
    return -1;
  }
  if (!(((((((DLTensor*)A_handle)[0].dtype.code) == (uint8_t)0) && ((((DLTensor*)A_handle)[0].dtype.bits) == (uint8_t)8)) && ((((DLTensor*)A_handle)[0].dtype.lanes) == (uint16_t)1)))) {
    const char* __tvm_assert_parts[8] = {"Mismatched ", "A", ".dtype on argument #", "0", " when calling:\n  `", "main(A: Tensor([20, 36], int8), B: Tensor([36, 50], int8), Z: Tensor([20, 50], int32))", "`,\n  expected ", "int8"};
    TVMFFIErrorSetRaisedFromCStrParts("TypeError", __tvm_assert_parts, 8);
    return -1;
  }
  int64_t* main_A_shape = (int64_t*)(((DLTensor*)A_handle)[0].shape);
  int64_t* main_A_strides = (int64_t*)(((DLTensor*)A_handle)[0].strides);
  if (!(((((DLTensor*)A_handle)[0].device.device_type) == 1))) {
    const char* __tvm_assert_parts[8] = {"Mismatched ", "A", ".device_type on argument #", "0", " when calling:\n  `", "main(A: Tensor([20, 36], int8), B: Tensor([36, 50], int8), Z: Tensor([20, 50], int32))", "`,\n  expected ", "cpu"};
    TVMFFIErrorSetRaisedFromCStrParts("ValueError", __tvm_assert_parts, 8);
    return -1;
  }
  int32_t dev_id = (((DLTensor*)A_handle)[0].device.device_id);
  if (!(!(B_handle == NULL))) {
    const char* __tvm_assert_parts[6] = {"Mismatched type on argument #", "1", " when calling:\n  `", "main(A: Tensor([20, 36], int8), B: Tensor([36, 50], int8), Z: Tensor([20, 50], int32))", "`,\n  expected ", "Tensor"};
    TVMFFIErrorSetRaisedFromCStrParts("TypeError", __tvm_assert_parts, 6);
    return -1;
  }
  if (!((2 == (((DLTensor*)B_handle)[0].ndim)))) {
    const char* __tvm_assert_parts[8] = {"Mismatched ", "B", ".ndim on argument #", "1", " when calling:\n  `", "main(A: Tensor([20, 36], int8), B: Tensor([36, 50], int8), Z: Tensor([20, 50], int32))", "`,\n  expected ", "2"};
    TVMFFIErrorSetRaisedFromCStrParts("ValueError", __tvm_assert_parts, 8);
    return -1;
  }
  if (!(((((((DLTensor*)B_handle)[0].dtype.code) == (uint8_t)0) && ((((DLTensor*)B_handle)[0].dtype.bits) == (uint8_t)8)) && ((((DLTensor*)B_handle)[0].dtype.lanes) == (uint16_t)1)))) {
    const char* __tvm_assert_parts[8] = {"Mismatched ", "B", ".dtype on argument #", "1", " when calling:\n  `", "main(A: Tensor([20, 36], int8), B: Tensor([36, 50], int8), Z: Tensor([20, 50], int32))", "`,\n  expected ", "int8"};
    TVMFFIErrorSetRaisedFromCStrParts("TypeError", __tvm_assert_parts, 8);
    return -1;
  }
  int64_t* main_B_shape = (int64_t*)(((DLTensor*)B_handle)[0].shape);
  int64_t* main_B_strides = (int64_t*)(((DLTensor*)B_handle)[0].strides);
  if (!(((((DLTensor*)B_handle)[0].device.device_type) == 1))) {
    const char* __tvm_assert_parts[8] = {"Mismatched ", "B", ".device_type on argument #", "1", " when calling:\n  `", "main(A: Tensor([20, 36], int8), B: Tensor([36, 50], int8), Z: Tensor([20, 50], int32))", "`,\n  expected ", "cpu"};
    TVMFFIErrorSetRaisedFromCStrParts("ValueError", __tvm_assert_parts, 8);
    return -1;
  }
  if (!(!(Z_handle == NULL))) {
    const char* __tvm_assert_parts[6] = {"Mismatched type on argument #", "2", " when calling:\n  `", "main(A: Tensor([20, 36], int8), B: Tensor([36, 50], int8), Z: Tensor([20, 50], int32))", "`,\n  expected ", "Tensor"};
    TVMFFIErrorSetRaisedFromCStrParts("TypeError", __tvm_assert_parts, 6);
    return -1;
  }
  if (!((2 == (((DLTensor*)Z_handle)[0].ndim)))) {
    const char* __tvm_assert_parts[8] = {"Mismatched ", "Z", ".ndim on argument #", "2", " when calling:\n  `", "main(A: Tensor([20, 36], int8), B: Tensor([36, 50], int8), Z: Tensor([20, 50], int32))", "`,\n  expected ", "2"};
    TVMFFIErrorSetRaisedFromCStrParts("ValueError", __tvm_assert_parts, 8);
    return -1;
  }
  if (!(((((((DLTensor*)Z_handle)[0].dtype.code) == (uint8_t)0) && ((((DLTensor*)Z_handle)[0].dtype.bits) == (uint8_t)32)) && ((((DLTensor*)Z_handle)[0].dtype.lanes) == (uint16_t)1)))) {
    const char* __tvm_assert_parts[8] = {"Mismatched ", "Z", ".dtype on argument #", "2", " when calling:\n  `", "main(A: Tensor([20, 36], int8), B: Tensor([36, 50], int8), Z: Tensor([20, 50], int32))", "`,\n  expected ", "int32"};
    TVMFFIErrorSetRaisedFromCStrParts("TypeError", __tvm_assert_parts, 8);
    return -1;
  }
  int64_t* main_Z_shape = (int64_t*)(((DLTensor*)Z_handle)[0].shape);
  int64_t* main_Z_strides = (int64_t*)(((DLTensor*)Z_handle)[0].strides);
  if (!(((((DLTensor*)Z_handle)[0].device.device_type) == 1))) {
    const char* __tvm_assert_parts[8] = {"Mismatched ", "Z", ".device_type on argument #", "2", " when calling:\n  `", "main(A: Tensor([20, 36], int8), B: Tensor([36, 50], int8), Z: Tensor([20, 50], int32))", "`,\n  expected ", "cpu"};
    TVMFFIErrorSetRaisedFromCStrParts("ValueError", __tvm_assert_parts, 8);
    return -1;
  }
  if (!(main_A_strides == NULL)) {
    if (!(((1 == ((int32_t)(((int64_t*)main_A_strides)[1]))) && (36 == ((int32_t)(((int64_t*)main_A_strides)[0])))))) {
      const char* __tvm_assert_parts[7] = {"Mismatched ", "A", ".strides on argument #", "0", " when calling:\n  `", "main(A: Tensor([20, 36], int8), B: Tensor([36, 50], int8), Z: Tensor([20, 50], int32))", "`,\n  expected to be compact array"};
      TVMFFIErrorSetRaisedFromCStrParts("ValueError", __tvm_assert_parts, 7);
      return -1;
    }
  }
  if (!(!(((int8_t*)(((DLTensor*)A_handle)[0].data)) == NULL))) {
    const char* __tvm_assert_parts[6] = {"A", " data pointer is NULL on argument #", "0", " when calling:\n  `", "main(A: Tensor([20, 36], int8), B: Tensor([36, 50], int8), Z: Tensor([20, 50], int32))", "`,\n  expected non-NULL data pointer"};
    TVMFFIErrorSetRaisedFromCStrParts("ValueError", __tvm_assert_parts, 6);
    return -1;
  }
  if (!(main_B_strides == NULL)) {
    if (!(((1 == ((int32_t)(((int64_t*)main_B_strides)[1]))) && (50 == ((int32_t)(((int64_t*)main_B_strides)[0])))))) {
      const char* __tvm_assert_parts[7] = {"Mismatched ", "B", ".strides on argument #", "1", " when calling:\n  `", "main(A: Tensor([20, 36], int8), B: Tensor([36, 50], int8), Z: Tensor([20, 50], int32))", "`,\n  expected to be compact array"};
      TVMFFIErrorSetRaisedFromCStrParts("ValueError", __tvm_assert_parts, 7);
      return -1;
    }
  }
  if (!((dev_id == (((DLTensor*)B_handle)[0].device.device_id)))) {
    const char* __tvm_assert_parts[8] = {"Mismatched ", "B.device_id", " on argument #", "1", " when calling:\n  `", "main(A: Tensor([20, 36], int8), B: Tensor([36, 50], int8), Z: Tensor([20, 50], int32))", "`,\n  expected to match ", "A.device_id"};
    TVMFFIErrorSetRaisedFromCStrParts("ValueError", __tvm_assert_parts, 8);
    return -1;
  }
  if (!(!(((int8_t*)(((DLTensor*)B_handle)[0].data)) == NULL))) {
    const char* __tvm_assert_parts[6] = {"B", " data pointer is NULL on argument #", "1", " when calling:\n  `", "main(A: Tensor([20, 36], int8), B: Tensor([36, 50], int8), Z: Tensor([20, 50], int32))", "`,\n  expected non-NULL data pointer"};
    TVMFFIErrorSetRaisedFromCStrParts("ValueError", __tvm_assert_parts, 6);
    return -1;
  }
  if (!(main_Z_strides == NULL)) {
    if (!(((1 == ((int32_t)(((int64_t*)main_Z_strides)[1]))) && (50 == ((int32_t)(((int64_t*)main_Z_strides)[0])))))) {
      const char* __tvm_assert_parts[7] = {"Mismatched ", "Z", ".strides on argument #", "2", " when calling:\n  `", "main(A: Tensor([20, 36], int8), B: Tensor([36, 50], int8), Z: Tensor([20, 50], int32))", "`,\n  expected to be compact array"};
      TVMFFIErrorSetRaisedFromCStrParts("ValueError", __tvm_assert_parts, 7);
      return -1;
    }
  }
  if (!((dev_id == (((DLTensor*)Z_handle)[0].device.device_id)))) {
    const char* __tvm_assert_parts[8] = {"Mismatched ", "Z.device_id", " on argument #", "2", " when calling:\n  `", "main(A: Tensor([20, 36], int8), B: Tensor([36, 50], int8), Z: Tensor([20, 50], int32))", "`,\n  expected to match ", "A.device_id"};
    TVMFFIErrorSetRaisedFromCStrParts("ValueError", __tvm_assert_parts, 8);
    return -1;
  }
  if (!(!(((int32_t*)(((DLTensor*)Z_handle)[0].data)) == NULL))) {
    const char* __tvm_assert_parts[6] = {"Z", " data pointer is NULL on argument #", "2", " when calling:\n  `", "main(A: Tensor([20, 36], int8), B: Tensor([36, 50], int8), Z: Tensor([20, 50], int32))", "`,\n  expected non-NULL data pointer"};
    TVMFFIErrorSetRaisedFromCStrParts("ValueError", __tvm_assert_parts, 6);
    return -1;
  }
  if (!((((int32_t)(((int64_t*)main_A_shape)[0])) == 20))) {
    const char* __tvm_assert_parts[8] = {"Invalid ", "A.shape[0]", " on argument #", "0", " when calling:\n  `", "main(A: Tensor([20, 36], int8), B: Tensor([36, 50], int8), Z: Tensor([20, 50], int32))", "`,\n  expected ", "20"};
    TVMFFIErrorSetRaisedFromCStrParts("ValueError", __tvm_assert_parts, 8);
    return -1;
  }
  if (!((((int32_t)(((int64_t*)main_A_shape)[1])) == 36))) {
    const char* __tvm_assert_parts[8] = {"Invalid ", "A.shape[1]", " on argument #", "0", " when calling:\n  `", "main(A: Tensor([20, 36], int8), B: Tensor([36, 50], int8), Z: Tensor([20, 50], int32))", "`,\n  expected ", "36"};
    TVMFFIErrorSetRaisedFromCStrParts("ValueError", __tvm_assert_parts, 8);
    return -1;
  }
  if (!(((uint64_t)0ULL == (((DLTensor*)A_handle)[0].byte_offset)))) {
    const char* __tvm_assert_parts[8] = {"Invalid ", "A.byte_offset", " on argument #", "0", " when calling:\n  `", "main(A: Tensor([20, 36], int8), B: Tensor([36, 50], int8), Z: Tensor([20, 50], int32))", "`,\n  expected ", "0"};
    TVMFFIErrorSetRaisedFromCStrParts("ValueError", __tvm_assert_parts, 8);
    return -1;
  }
  if (!((((int32_t)(((int64_t*)main_B_shape)[0])) == 36))) {
    const char* __tvm_assert_parts[8] = {"Invalid ", "B.shape[0]", " on argument #", "1", " when calling:\n  `", "main(A: Tensor([20, 36], int8), B: Tensor([36, 50], int8), Z: Tensor([20, 50], int32))", "`,\n  expected ", "36"};
    TVMFFIErrorSetRaisedFromCStrParts("ValueError", __tvm_assert_parts, 8);
    return -1;
  }
  if (!((((int32_t)(((int64_t*)main_B_shape)[1])) == 50))) {
    const char* __tvm_assert_parts[8] = {"Invalid ", "B.shape[1]", " on argument #", "1", " when calling:\n  `", "main(A: Tensor([20, 36], int8), B: Tensor([36, 50], int8), Z: Tensor([20, 50], int32))", "`,\n  expected ", "50"};
    TVMFFIErrorSetRaisedFromCStrParts("ValueError", __tvm_assert_parts, 8);
    return -1;
  }
  if (!(((uint64_t)0ULL == (((DLTensor*)B_handle)[0].byte_offset)))) {
    const char* __tvm_assert_parts[8] = {"Invalid ", "B.byte_offset", " on argument #", "1", " when calling:\n  `", "main(A: Tensor([20, 36], int8), B: Tensor([36, 50], int8), Z: Tensor([20, 50], int32))", "`,\n  expected ", "0"};
    TVMFFIErrorSetRaisedFromCStrParts("ValueError", __tvm_assert_parts, 8);
    return -1;
  }
  if (!((((int32_t)(((int64_t*)main_Z_shape)[0])) == 20))) {
    const char* __tvm_assert_parts[8] = {"Invalid ", "Z.shape[0]", " on argument #", "2", " when calling:\n  `", "main(A: Tensor([20, 36], int8), B: Tensor([36, 50], int8), Z: Tensor([20, 50], int32))", "`,\n  expected ", "20"};
    TVMFFIErrorSetRaisedFromCStrParts("ValueError", __tvm_assert_parts, 8);
    return -1;
  }
  if (!((((int32_t)(((int64_t*)main_Z_shape)[1])) == 50))) {
    const char* __tvm_assert_parts[8] = {"Invalid ", "Z.shape[1]", " on argument #", "2", " when calling:\n  `", "main(A: Tensor([20, 36], int8), B: Tensor([36, 50], int8), Z: Tensor([20, 50], int32))", "`,\n  expected ", "50"};
    TVMFFIErrorSetRaisedFromCStrParts("ValueError", __tvm_assert_parts, 8);
    return -1;
  }
  if (!(((uint64_t)0ULL == (((DLTensor*)Z_handle)[0].byte_offset)))) {
    const char* __tvm_assert_parts[8] = {"Invalid ", "Z.byte_offset", " on argument #", "2", " when calling:\n  `", "main(A: Tensor([20, 36], int8), B: Tensor([36, 50], int8), Z: Tensor([20, 50], int32))", "`,\n  expected ", "0"};
    TVMFFIErrorSetRaisedFromCStrParts("ValueError", __tvm_assert_parts, 8);
    return -1;
  }
  int8_t* A = ((int8_t*)((int8_t*)(((DLTensor*)A_handle)[0].data)));
  int8_t* B = ((int8_t*)((int8_t*)(((DLTensor*)B_handle)[0].data)));
  int32_t* Z = ((int32_t*)((int32_t*)(((DLTensor*)Z_handle)[0].data)));
  gemmini_config_ex(1, 0, 0);
  gemmini_extended3_config_ld(36, 1.000000e+00f, 0, 0);
  gemmini_extended3_config_ld(50, 1.000000e+00f, 0, 1);
  gemmini_extended3_config_ld(200, 1.000000e+00f, 0, 2);
  gemmini_config_st(200);
  for (int32_t M_0 = 0; M_0 < 5; ++M_0) {
    for (int32_t C_0 = 0; C_0 < 3; ++C_0) {
      for (int32_t ch1 = 0; ch1 < 2; ++ch1) {
        int32_t cse_v1 = (ch1 * 16);
        int32_t v_ = 20 - cse_v1;
        gemmini_extended_mvin((&(A[((ch1 * 576) + (C_0 * 12))])), (((uint32_t)cse_v1) | (uint32_t)0), 12, ((16) < (v_) ? (16) : (v_)));
      }
      int32_t cse_v2 = (M_0 * 10);
      uint32_t cse_v3 = ((uint32_t)20 | (uint32_t)0);
      gemmini_extended_mvin2((&(B[((C_0 * 600) + cse_v2)])), cse_v3, 10, 12);
      for (int32_t P_1 = 0; P_1 < 2; ++P_1) {
        int32_t cse_v4 = ((P_1 * 500) + cse_v2);
        if (0 < C_0) {
          gemmini_extended_mvin3((&(Z[cse_v4])), ((uint32_t)0 | (uint32_t)2147483648), 10, 10);
        }
        gemmini_extended_preload(cse_v3, ((uint32_t)0 | ((uint32_t)2147483648 | ((C_0 == 0) ? (uint32_t)0 : (uint32_t)1073741824))), 10, 12, 10, 10);
        gemmini_extended_compute_preloaded((((uint32_t)(P_1 * 10)) | (uint32_t)0), (uint32_t)4294967295, 12, 10, 16, 16);
        gemmini_extended_mvout((&(Z[cse_v4])), ((uint32_t)0 | (uint32_t)2684354560), 10, 10);
      }
    }
  }
  gemmini_fence();
  return 0;
}

