/* Fused causal attention core for the CPU kernels (dtcore/kernels.py, dtcore/native.py).

   For one call: q, k, v, out [BH, T, D] contiguous float32 (BH = batch x heads); mask the additive
   [nm, T, T] float32 attention mask shared by BH / nm consecutive rows of BH (nm = B: per window;
   nm = 1: one for all), or NULL for none; lanes the [BH, T, T] int16 dropout lanes torch drew (an
   element is kept when its lane >= threshold: kernels.keep_mask's rule) or NULL for no dropout;
   probs [BH, T, T] out.

     scores = (q * scale) k^T + mask, probs = softmax(scores), out = (probs * keep * dscale) v

   the formula of kernels.torch_lane_attention, computed row by row without materialising
   anything but probs (which the backward pass reads and callers may return). Keys whose mask
   value is below -1e30 at the ends of a row (the causal future, left padding) are skipped: their
   probability is exactly 0 in the formula too (e^(-3.4e38) underflows). attn_backward gives dq,
   dk, dv from dout.

   Loops run over blocks of 8 keys with GCC/Clang vector extensions (AVX2 or two NEON registers);
   the head width D is a compile-time constant for 8, 12, 16, 32 and 64. e^x is vec.h's. */

#include "vec.h"

typedef float v4f __attribute__((vector_size(16)));

#define MAXT 1024
#define MAXD 256
#define MASKED (-1e30f)
#define NEG_INF (-__builtin_inff())

INLINE v8f load8(const float *p) { v8f v; memcpy(&v, p, 32); return v; }
INLINE void store8(float *p, v8f v) { memcpy(p, &v, 32); }
INLINE v4f load4(const float *p) { v4f v; memcpy(&v, p, 16); return v; }
INLINE void store4(float *p, v4f v) { memcpy(p, &v, 16); }
INLINE v8f max8(v8f a, v8f b) { return select8((v8i)(a > b), a, b); }   /* b where a is NaN */
INLINE float hsum8(v8f v) { return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7])); }
INLINE float hmax8(v8f v) {
    float m = v[0];
    for (int l = 1; l < 8; l++) m = v[l] > m ? v[l] : m;
    return m;
}

/* ranges[r] = (first, last) key above MASKED in each of the nm * T mask rows; (0, T-1) when none is */
void attn_ranges(int nm, int T, const float *mask, int32_t *ranges) {
    for (long r = 0; r < (long)nm * T; r++) {
        const float *row = mask + r * T;
        int a = 0, b = T - 1;
        while (a < T && !(row[a] > MASKED)) a++;
        while (b >= 0 && !(row[b] > MASKED)) b--;
        if (a > b) { a = 0; b = T - 1; }
        ranges[2 * r] = a;
        ranges[2 * r + 1] = b;
    }
}

/* row i's blocks of 8 keys [b0, b1) covering [lo, hi], and its additive mask over them in mpad:
   the mask's values inside [lo, hi], -inf outside (so e^x there is 0) */
INLINE void row_setup(const float *mrow, int lo, int hi, int *b0, int *b1, float *mpad) {
    *b0 = lo >> 3;
    *b1 = (hi >> 3) + 1;
    for (int j = *b0 * 8; j < *b1 * 8; j++)
        mpad[j] = (j < lo || j > hi) ? NEG_INF : (mrow ? mrow[j] : 0.0f);
}

typedef int16_t v8s __attribute__((vector_size(16)));

/* keep (1.0) or drop (0.0) for 8 lanes from key j of a row (lanes past the row's end drop) */
INLINE v8f keep8(const int16_t *row, int j, int T, int threshold) {
    int16_t b[8] = {INT16_MIN, INT16_MIN, INT16_MIN, INT16_MIN, INT16_MIN, INT16_MIN, INT16_MIN, INT16_MIN};
    memcpy(b, row + j, sizeof(int16_t) * (size_t)(T - j < 8 ? T - j : 8));
    v8s l;
    memcpy(&l, b, 16);
    v8i kept = __builtin_convertvector(l, v8i) >= threshold;
    return select8(kept, splat(1.0f), splat(0.0f));
}

INLINE void forward_d(const int D, int BH, int H, int T, float scale, const float *q, const float *k,
                      const float *v, const float *mask, const int32_t *ranges, const int16_t *lanes,
                      int threshold, float dscale, float *probs, float *out) {
    int Tp = (T + 7) & ~7;
    float kt[D * Tp], s[Tp], mpad[Tp];          /* on the stack, sized by this call: 4 KB at D = 16, T = 60 */
    for (int bh = 0; bh < BH; bh++) {
        const float *qb = q + (long)bh * T * D, *kb = k + (long)bh * T * D, *vb = v + (long)bh * T * D;
        long r0 = mask ? (long)(bh / H) * T : -1;
        float *pb = probs + (long)bh * T * T, *ob = out + (long)bh * T * D;
        const int16_t *kpb = lanes ? lanes + (long)bh * T * T : 0;
        for (int c = 0; c < D; c++) {
            for (int j = 0; j < T; j++) kt[c * Tp + j] = kb[j * D + c];
            for (int j = T; j < Tp; j++) kt[c * Tp + j] = 0.0f;
        }
        for (int i = 0; i < T; i++) {
            int lo = mask ? ranges[2 * (r0 + i)] : 0, hi = mask ? ranges[2 * (r0 + i) + 1] : T - 1, b0, b1;
            row_setup(mask ? mask + (r0 + i) * T : 0, lo, hi, &b0, &b1, mpad);
            const float *qi = qb + i * D;
            v8f mx = splat(NEG_INF);
            for (int b = b0; b < b1; b++) {
                v8f acc = load8(mpad + 8 * b);
                for (int c = 0; c < D; c++) acc += (qi[c] * scale) * load8(kt + c * Tp + 8 * b);
                store8(s + 8 * b, acc);
                mx = max8(acc, mx);
            }
            float m = hmax8(mx);
            v8f sum = splat(0.0f);
            for (int b = b0; b < b1; b++) {
                v8f e = exp_le0(load8(s + 8 * b) - m);
                store8(s + 8 * b, e);
                sum += e;
            }
            v8f inv = splat(1.0f / hsum8(sum));
            float *prow = pb + (long)i * T;
            memset(prow, 0, sizeof(float) * T);
            for (int b = b0; b < b1; b++) store8(s + 8 * b, load8(s + 8 * b) * inv);
            memcpy(prow + 8 * b0, s + 8 * b0, sizeof(float) * ((b1 * 8 < T ? b1 * 8 : T) - 8 * b0));
            if (kpb)
                for (int b = b0; b < b1; b++)
                    store8(s + 8 * b, load8(s + 8 * b) * keep8(kpb + (long)i * T, 8 * b, T, threshold) * dscale);
            v4f o[D / 4];
            for (int c = 0; c < D / 4; c++) o[c] = (v4f){0, 0, 0, 0};
            for (int j = lo; j <= hi; j++) {
                float w = s[j];
                const float *vj = vb + j * D;
                for (int c = 0; c < D / 4; c++) o[c] += w * load4(vj + 4 * c);
            }
            for (int c = 0; c < D / 4; c++) store4(ob + i * D + 4 * c, o[c]);
        }
    }
}

INLINE void backward_d(const int D, int BH, int H, int T, float scale, const float *q, const float *k,
                       const float *v, const float *mask, const int32_t *ranges, const int16_t *lanes,
                       int threshold, float dscale, const float *probs, const float *dout, float *dq, float *dk, float *dv) {
    int Tp = (T + 7) & ~7;
    float vt[D * Tp], p[Tp], w[Tp], ds[Tp];
    for (int bh = 0; bh < BH; bh++) {
        const float *qb = q + (long)bh * T * D, *kb = k + (long)bh * T * D, *vb = v + (long)bh * T * D;
        const float *gb = dout + (long)bh * T * D, *pb = probs + (long)bh * T * T;
        long r0 = mask ? (long)(bh / H) * T : -1;
        const int16_t *kpb = lanes ? lanes + (long)bh * T * T : 0;
        float *dqb = dq + (long)bh * T * D, *dkb = dk + (long)bh * T * D, *dvb = dv + (long)bh * T * D;
        memset(dkb, 0, sizeof(float) * T * D);
        memset(dvb, 0, sizeof(float) * T * D);
        for (int c = 0; c < D; c++) {
            for (int j = 0; j < T; j++) vt[c * Tp + j] = vb[j * D + c];
            for (int j = T; j < Tp; j++) vt[c * Tp + j] = 0.0f;
        }
        for (int i = 0; i < T; i++) {
            int lo = mask ? ranges[2 * (r0 + i)] : 0, hi = mask ? ranges[2 * (r0 + i) + 1] : T - 1;
            int b0 = lo >> 3, b1 = (hi >> 3) + 1;
            const float *gi = gb + i * D, *qi = qb + i * D;
            memset(p + 8 * b0, 0, sizeof(float) * 8 * (b1 - b0));
            memcpy(p + lo, pb + (long)i * T + lo, sizeof(float) * (hi - lo + 1));   /* 0 outside [lo, hi] */
            v8f dot = splat(0.0f);
            for (int b = b0; b < b1; b++) {
                v8f dw = splat(0.0f);
                for (int c = 0; c < D; c++) dw += gi[c] * load8(vt + c * Tp + 8 * b);
                v8f pv = load8(p + 8 * b);
                if (kpb) {
                    v8f f = keep8(kpb + (long)i * T, 8 * b, T, threshold) * dscale;
                    dw *= f;
                    store8(w + 8 * b, pv * f);
                } else {
                    store8(w + 8 * b, pv);
                }
                store8(ds + 8 * b, dw);
                dot += dw * pv;
            }
            float dt = hsum8(dot);
            for (int b = b0; b < b1; b++)
                store8(ds + 8 * b, load8(p + 8 * b) * (load8(ds + 8 * b) - dt) * scale);
            v4f gq[D / 4], qq[D / 4], acc[D / 4];
            for (int c = 0; c < D / 4; c++) {
                gq[c] = load4(gi + 4 * c);
                qq[c] = load4(qi + 4 * c);
                acc[c] = (v4f){0, 0, 0, 0};
            }
            for (int j = lo; j <= hi; j++) {
                float wj = w[j], dj = ds[j];
                const float *kj = kb + j * D;
                float *dvj = dvb + j * D, *dkj = dkb + j * D;
                for (int c = 0; c < D / 4; c++) {
                    store4(dvj + 4 * c, load4(dvj + 4 * c) + wj * gq[c]);
                    acc[c] += dj * load4(kj + 4 * c);
                    store4(dkj + 4 * c, load4(dkj + 4 * c) + dj * qq[c]);
                }
            }
            for (int c = 0; c < D / 4; c++) store4(dqb + i * D + 4 * c, acc[c]);
        }
    }
}

#define DISPATCH(F, ...)                \
    switch (d) {                        \
    case 8: F(8, __VA_ARGS__); break;   \
    case 12: F(12, __VA_ARGS__); break; \
    case 16: F(16, __VA_ARGS__); break; \
    case 32: F(32, __VA_ARGS__); break; \
    case 64: F(64, __VA_ARGS__); break; \
    default: F(d, __VA_ARGS__);         \
    }

int attn_forward(int BH, int H, int T, int d, float scale, const float *q, const float *k, const float *v,
                 const float *mask, const int32_t *ranges, const int16_t *lanes, int threshold, float dscale,
                 float *probs,
                 float *out) {
    if (T > MAXT || d > MAXD || d % 4) return -1;
    DISPATCH(forward_d, BH, H, T, scale, q, k, v, mask, ranges, lanes, threshold, dscale, probs, out)
    return 0;
}

int attn_backward(int BH, int H, int T, int d, float scale, const float *q, const float *k, const float *v,
                  const float *mask, const int32_t *ranges, const int16_t *lanes, int threshold, float dscale,
                  const float *probs, const float *dout, float *dq, float *dk, float *dv) {
    if (T > MAXT || d > MAXD || d % 4) return -1;
    DISPATCH(backward_d, BH, H, T, scale, q, k, v, mask, ranges, lanes, threshold, dscale, probs, dout, dq, dk, dv)
    return 0;
}

/* y = e^x elementwise by vec.h's exp_le0 (n a multiple of 8): for the tests */
void attn_exp(long n, const float *x, float *y) {
    for (long i = 0; i + 8 <= n; i += 8) store8(y + i, exp_le0(load8(x + i)));
}
