// Device functions that the kernels gpu_engine.render writes call: the preamble of every
// kernel starts with this file (its text is part of each kernel's source, so of CuPy's cache key).
#ifndef TENSORRANK_HELPERS
#define TENSORRANK_HELPERS
// float -> integer as tensor_ir.casts defines it, the same on every host: NaN is 0, other
// values truncate toward zero and saturate at the target's range. `lo` (the minimum) and
// `up` (the maximum + 1) are exact doubles, so the one C conversion left is always in range.
template <typename T>
__device__ __forceinline__ T tr_f2i(double x, double lo, double up, T min, T max) {
  return x != x ? (T)0 : (x < lo ? min : (x >= up ? max : (T)x));
}
template <typename T> __device__ __forceinline__ bool tr_signed() { return (T)-1 < (T)0; }
template <typename T> __device__ __forceinline__ T tr_neg(T a) {
  return (T)(0ULL - (unsigned long long)a);
}
// truncating division (tensor_ir.elementwise._int_div, which follows numpy's floor_divide at b == 0)
template <typename T> __device__ __forceinline__ T tr_idiv(T a, T b) {
  if (b == (T)0) return (T)((tr_signed<T>() && a < (T)0) ? 1 : 0);
  if (tr_signed<T>() && b == (T)-1) return tr_neg<T>(a);
  return (T)(a / b);
}
// Python's modulo: the sign of the divisor; 0 for a zero divisor (numpy)
template <typename T> __device__ __forceinline__ T tr_imod(T a, T b) {
  if (b == (T)0 || (tr_signed<T>() && b == (T)-1)) return (T)0;
  T r = (T)(a % b);
  if (r != (T)0 && ((r < (T)0) != (b < (T)0))) r = (T)(r + b);
  return r;
}
template <typename T> __device__ __forceinline__ T tr_ifmod(T a, T b) {
  if (b == (T)0 || (tr_signed<T>() && b == (T)-1)) return (T)0;
  return (T)(a % b);
}
__device__ __forceinline__ float tr_fmod_py(float a, float b) {
  float r = fmodf(a, b);
  if (r != 0.0f) {
    if ((b < 0.0f) != (r < 0.0f)) r += b;
  } else {
    r = copysignf(0.0f, b);
  }
  return r;
}
__device__ __forceinline__ double tr_fmod_py(double a, double b) {
  double r = fmod(a, b);
  if (r != 0.0) {
    if ((b < 0.0) != (r < 0.0)) r += b;
  } else {
    r = copysign(0.0, b);
  }
  return r;
}
// numpy's shifts: a count at or past the width (or negative) gives 0, or -1 for a
// negative number shifted right
template <typename T> __device__ __forceinline__ T tr_shl(T a, T b) {
  return ((unsigned long long)b < sizeof(T) * 8) ? (T)((unsigned long long)a << (unsigned long long)b) : (T)0;
}
template <typename T> __device__ __forceinline__ T tr_shr(T a, T b) {
  if ((unsigned long long)b < sizeof(T) * 8) return (T)(a >> b);
  return (T)((a < (T)0) ? -1 : 0);
}
#endif  // TENSORRANK_HELPERS
