/* Element-wise kernels of the CPU kernels (dtcore/kernels.py, built by dtcore/native.py): the two
   GELUs of the mini bodies and lane dropout, each forward and backward in one pass over n float32
   values (x and the outputs contiguous), and the SplitMix64 words the lanes are cut from.

     tanh-GELU (GPT-2's gelu_new): y = x/2 (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3)
       dy/dx = (1 + tanh u)/2 + x/2 (1 - tanh^2 u) sqrt(2/pi) (1 + 3 * 0.044715 x^2)
     quick GELU (ImageGPT's, as carried into GPT-2 here): y = x sigmoid(1.702 x)
       dy/dx = s + 1.702 x s (1 - s), s = sigmoid(1.702 x)
     lane dropout: y = x * (lane_i >= threshold ? scale : 0), lane_i the i-th 16-bit lane of the
       64-bit words drawn (kernels.keep_mask's rule); the backward pass is the same product
       with the incoming gradient.
     SplitMix64 words (the lanes' "splitmix64" source): word i of the stream seeded by key is
       z = key + (i + 1) * 0x9E3779B97F4A7C15, then z ^= z >> 30, z *= 0xBF58476D1CE4E5B9,
       z ^= z >> 27, z *= 0x94D049BB133111EB, z ^= z >> 31 (all modulo 2^64).

   Both run through sigmoid(z) = 1/(1 + t) (z >= 0) or t/(1 + t) (z < 0), t = e^-|z| (vec.h's), the tanh-GELU by the identity
   (1 + tanh u)/2 = sigmoid(2u), which keeps small outputs accurate where tanh u is near -1. Loops
   run over blocks of 8 with GCC/Clang vector extensions and a padded tail. */

#include "vec.h"

#define GELU_C 0.7978845608028654f   /* sqrt(2 / pi) */
#define GELU_A 0.044715f
#define QUICK 1.702f

INLINE v8f absv(v8f x) { return (v8f)((v8i)x & 0x7fffffff); }

INLINE v8f sigmoid8(v8f z) {
    v8f t = exp_le0(-absv(z));
    v8f inv = 1.0f / (1.0f + t);
    return select8((v8i)(z >= splat(0.0f)), inv, t * inv);
}

/* x/2 (1 + tanh u) = x sigmoid(2u): no cancellation where tanh u is near -1 */
INLINE v8f gelu_fwd8(v8f x) { return x * sigmoid8(2.0f * GELU_C * (x + GELU_A * x * x * x)); }

/* (1 + tanh u)/2 = s and (1 - tanh^2 u)/2 = 2 s (1 - s), s = sigmoid(2u) */
INLINE v8f gelu_bwd8(v8f x, v8f g) {
    v8f s = sigmoid8(2.0f * GELU_C * (x + GELU_A * x * x * x));
    v8f du = GELU_C * (1.0f + 3.0f * GELU_A * x * x);
    return g * (s + 2.0f * x * s * (1.0f - s) * du);
}

INLINE v8f quick_fwd8(v8f x) { return x * sigmoid8(QUICK * x); }

INLINE v8f quick_bwd8(v8f x, v8f g) {
    v8f s = sigmoid8(QUICK * x);
    return g * (s + QUICK * x * s * (1.0f - s));
}

/* blocks of 8 from a, b into out; the last partial block through zero-padded copies */
#define MAP(EXPR)                                                        \
    long i = 0;                                                          \
    for (; i + 8 <= n; i += 8) {                                         \
        v8f a, b, r;                                                     \
        memcpy(&a, x + i, 32);                                           \
        memcpy(&b, (second ? second : x) + i, 32);                       \
        r = EXPR;                                                        \
        memcpy(out + i, &r, 32);                                         \
    }                                                                    \
    if (i < n) {                                                         \
        float ta[8] = {0}, tb[8] = {0}, tr[8];                           \
        memcpy(ta, x + i, sizeof(float) * (n - i));                      \
        memcpy(tb, (second ? second : x) + i, sizeof(float) * (n - i));  \
        v8f a, b, r;                                                     \
        memcpy(&a, ta, 32);                                              \
        memcpy(&b, tb, 32);                                              \
        r = EXPR;                                                        \
        memcpy(tr, &r, 32);                                              \
        memcpy(out + i, tr, sizeof(float) * (n - i));                    \
    }

void gelu_tanh_forward(long n, const float *x, float *out) {
    const float *second = 0;
    MAP(gelu_fwd8(a))
}

void gelu_tanh_backward(long n, const float *x, const float *second, float *out) {
    MAP(gelu_bwd8(a, b))
}

void quick_gelu_forward(long n, const float *x, float *out) {
    const float *second = 0;
    MAP(quick_fwd8(a))
}

void quick_gelu_backward(long n, const float *x, const float *second, float *out) {
    MAP(quick_bwd8(a, b))
}

/* out = x * (lane >= threshold ? scale : 0), lanes the int16 view of the int64 words drawn */
void lane_dropout_apply(long n, const float *x, const int16_t *lanes, int threshold, float scale, float *out) {
    for (long i = 0; i < n; i++) out[i] = x[i] * (lanes[i] >= threshold ? scale : 0.0f);
}

/* out[i] = word i of the SplitMix64 stream seeded by key (the header's formula), i < n */
void splitmix64_fill(long n, uint64_t key, uint64_t *out) {
    for (long i = 0; i < n; i++) {
        uint64_t z = key + (uint64_t)(i + 1) * 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        out[i] = z ^ (z >> 31);
    }
}
