/* Shared by the C kernels of dtcore/csrc: 8-float vectors (GCC/Clang vector extensions: one AVX
   register, or two NEON registers) and e^x for x <= 0, a degree-6 polynomial after Cody-Waite
   range reduction (within 1 ulp of e^x on [-87.3, 0]: tests/test_native_kernels.py). */

#ifndef DTCORE_VEC_H
#define DTCORE_VEC_H

#include <stdint.h>
#include <string.h>

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

#define INLINE static inline __attribute__((always_inline))

INLINE v8f splat(float x) { return (v8f){x, x, x, x, x, x, x, x}; }
INLINE v8f select8(v8i m, v8f a, v8f b) { return (v8f)(((v8i)a & m) | ((v8i)b & ~m)); }

/* e^x for x <= 0 (a score minus its row's maximum, or -|z|); 0 below -87.3; NaN stays NaN */
INLINE v8f exp_le0(v8f x) {
    v8i under = (v8i)(x < splat(-87.3f));
    v8f xc = select8(under, splat(-87.3f), x);
    v8f n = (xc * 1.44269504f + 12582912.0f) - 12582912.0f;   /* round to nearest */
    v8f r = xc - n * 0.693145752f;                              /* ln 2, high part */
    r = r - n * 1.42860677e-06f;                                /* ln 2, low part */
    v8f p = splat(1.98756912e-4f);
    p = p * r + 1.39819994e-3f;
    p = p * r + 8.33345205e-3f;
    p = p * r + 4.16657962e-2f;
    p = p * r + 1.66666657e-1f;
    p = p * r + 5.0e-1f;
    p = p * r * r + r + 1.0f;
    v8i bits = (__builtin_convertvector(n, v8i) + 127) << 23;   /* 2^n */
    return select8(under, splat(0.0f), p * (v8f)bits);
}

#endif
