/* Fused causal attention core for the CPU kernels (dtcore/kernels.py, dtcore/native.py).

   For one call over B windows of H heads (BH = B x H "heads"): q, k, v, out are [B, H, T, D]
   float32 tensors given by their data and strides (b, h, t; the last dimension contiguous), so the
   head views transformers makes of one [B, T, 3HD] projection are read in place and the output is
   written in the [B, T, H, D] layout its next projection reads. mask is the additive
   [nm, T, T] float32 attention mask shared by `group` = BH / nm consecutive heads (nm = B: per
   window; nm = 1: one for all; nm = BH: per head), or NULL for none; ranges its (first, last) open
   key per row (attn_ranges); lanes the [BH, T, T] int16 dropout lanes torch drew (an element is
   kept when its lane >= threshold: kernels.keep_mask's rule) or NULL for no dropout; probs
   [BH, T, T] contiguous, out.

     scores = (q * scale) k^T + mask, probs = softmax(scores), out = (probs * keep * dscale) v

   the formula of kernels.torch_lane_attention, computed head by head and row by row without
   materialising anything but probs (which the backward pass reads and callers may return). Keys
   whose mask value is below -1e30 at the ends of a row (the causal future, left padding) are
   skipped: their probability is exactly 0 in the formula too (e^(-3.4e38) underflows).
   attn_backward gives dq, dk, dv from dout, in the same strided form.

   Each head's keys and values are first copied into small buffers: the one dotted with a row
   transposed (K forward, V backward), the others at a width rounded up to 8. So every inner loop
   is a run of 8-float vector operations (GCC/Clang vector extensions: one AVX register, or two
   NEON registers): dot products over blocks of 8 keys, weighted sums over the head width. Each
   head is computed in passes over its rows, every row's intermediate kept in a [T, Tp] buffer, so
   consecutive rows are independent and the CPU overlaps their dependency chains (one row at a
   time left it waiting on one chain: scores, maximum, exponentials, sum, weighted sum), and the
   weighted sums run in several accumulator sets (SETS). The backward pass goes row by row: passes
   there, with dk and dv summed over each key's rows in registers, measured no faster. The head
   width D is a compile-time constant for 8, 12, 16, 32 and 64. e^x is vec.h's. */

#include <stdlib.h>

#include "vec.h"

#define MAXT 1024
#define MAXD 256
#define MASKED (-1e30f)
#define NEG_INF (-__builtin_inff())

typedef int16_t v8s __attribute__((vector_size(16)));

static const v8i IOTA = {0, 1, 2, 3, 4, 5, 6, 7};

INLINE v8f load8(const float *p) { v8f v; memcpy(&v, p, 32); return v; }
INLINE void store8(float *p, v8f v) { memcpy(p, &v, 32); }
INLINE float hsum8(v8f v) { return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7])); }
INLINE v8i spliti(int x) { return (v8i){x, x, x, x, x, x, x, x}; }
INLINE v8f max8(v8f a, v8f b) { return select8((v8i)(a > b), a, b); }   /* b where a is NaN */
INLINE float hmax8(v8f v) {
    float m = v[0];
    for (int l = 1; l < 8; l++) m = v[l] > m ? v[l] : m;
    return m;
}

/* the n < 8 floats at p, zero-padded to 8; and the first n of v stored at p */
INLINE v8f load_part(const float *p, int n) {
    float t[8] = {0};
    memcpy(t, p, sizeof(float) * (size_t)n);
    return load8(t);
}
INLINE void store_part(float *p, v8f v, int n) { float t[8]; store8(t, v); memcpy(p, t, sizeof(float) * (size_t)n); }

/* where one [B, H, T, D] tensor's row (b, h, t) starts: strides (b, h, t) */
INLINE long at(const long *s, int b, int h, int t) { return b * s[0] + h * s[1] + t * s[2]; }

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

/* the additive mask over keys j0 .. j0+7 of a row: its values inside [lo, hi], -inf outside */
INLINE v8f mask8(const float *mrow, int j0, int lo, int hi, int T) {
    v8f m = !mrow ? splat(0.0f) : j0 + 8 <= T ? load8(mrow + j0) : load_part(mrow + j0, T - j0);
    v8i j = IOTA + spliti(j0);
    return select8((j >= spliti(lo)) & (j <= spliti(hi)), m, splat(NEG_INF));
}

/* dscale (kept) or 0 (dropped) for the lanes of keys j0 .. j0+7 of a row (lanes past T drop) */
INLINE v8f keep8(const int16_t *row, int j0, int T, int threshold, float dscale) {
    v8s l;
    if (j0 + 8 <= T) {
        memcpy(&l, row + j0, 16);
    } else {
        int16_t b[8] = {INT16_MIN, INT16_MIN, INT16_MIN, INT16_MIN, INT16_MIN, INT16_MIN, INT16_MIN, INT16_MIN};
        memcpy(b, row + j0, sizeof(int16_t) * (size_t)(T - j0));
        memcpy(&l, b, 16);
    }
    return select8(__builtin_convertvector(l, v8i) >= spliti(threshold), splat(dscale), splat(0.0f));
}

/* independent accumulator sets for a sum over keys of Dv-wide rows: enough to keep four vector
   FMA chains in flight (an FMA's latency is four times its issue interval on current x86) */
#define SETS(Dv) ((Dv) >= 32 ? 1 : 32 / (Dv))

/* one head's x [T, D] (strided rows) into xt [D, Tp], transposed, zero past T */
INLINE void load_transposed(const int D, int T, int Tp, const float *x, long st, float *xt) {
    for (int c = 0; c < D; c++) {
        for (int j = 0; j < T; j++) xt[c * Tp + j] = x[j * st + c];
        for (int j = T; j < Tp; j++) xt[c * Tp + j] = 0.0f;
    }
}

/* one head's x [T, D] (strided rows) into xp [T, Dv], zero past D */
INLINE void load_padded(const int D, const int Dv, int T, const float *x, long st, float *xp) {
    for (int j = 0; j < T; j++) {
        memcpy(xp + j * Dv, x + j * st, sizeof(float) * D);
        for (int c = D; c < Dv; c++) xp[j * Dv + c] = 0.0f;
    }
}

/* the first D floats of Dv / 8 vectors, stored at p */
INLINE void store_row(const int D, float *p, const v8f *x) {
    for (int c = 0; c < D / 8; c++) store8(p + 8 * c, x[c]);
    if (D % 8) store_part(p + 8 * (D / 8), x[D / 8], D % 8);
}

/* out = the sum over j in [lo, hi] of w[j] x[j], x's rows Dv floats wide, in SETS(Dv) accumulator sets */
INLINE void weighted_sum(const int Dv, int lo, int hi, const float *w, const float *x, v8f *out) {
    const int NS = SETS(Dv);
    v8f acc[NS][Dv / 8];
    for (int u = 0; u < NS; u++)
        for (int c = 0; c < Dv / 8; c++) acc[u][c] = splat(0.0f);
    int j = lo;
    for (; j + NS <= hi + 1; j += NS)
        for (int u = 0; u < NS; u++)
            for (int c = 0; c < Dv / 8; c++) acc[u][c] += w[j + u] * load8(x + (j + u) * Dv + 8 * c);
    for (; j <= hi; j++)
        for (int c = 0; c < Dv / 8; c++) acc[0][c] += w[j] * load8(x + j * Dv + 8 * c);
    for (int c = 0; c < Dv / 8; c++) {
        out[c] = acc[0][c];
        for (int u = 1; u < NS; u++) out[c] += acc[u][c];
    }
}

/* strides: q, k, v, out, 3 each. Per head in three passes over its rows (scores and their
   maximum; softmax, probabilities and dropout; weighted values), each row's result kept in S, so
   the rows of a pass are independent and their dependency chains overlap. */
INLINE void forward_d(const int D, int B, int H, int group, int T, float scale, const float *q, const float *k,
                      const float *v, const long *st, const float *mask, const int32_t *ranges,
                      const int16_t *lanes, int threshold, float dscale, float *probs, float *out, float *buf) {
    const int Tp = (T + 7) & ~7, Dv = (D + 7) & ~7;
    float *kt = buf, *vp = kt + D * Tp, *S = vp + T * Dv, *rmax = S + T * Tp;    /* [D, Tp], [T, Dv], [T, Tp], [T] */
    for (int bh = 0; bh < B * H; bh++) {
        int b = bh / H, h = bh % H;
        const float *qb = q + at(st, b, h, 0);
        float *ob = out + at(st + 9, b, h, 0), *pb = probs + (long)bh * T * T;
        long r0 = mask ? (long)(bh / group) * T : -1;
        const int16_t *kpb = lanes ? lanes + (long)bh * T * T : 0;
        load_transposed(D, T, Tp, k + at(st + 3, b, h, 0), st[5], kt);
        load_padded(D, Dv, T, v + at(st + 6, b, h, 0), st[8], vp);
        for (int i = 0; i < T; i++) {                                   /* scores, row maxima */
            int lo = mask ? ranges[2 * (r0 + i)] : 0, hi = mask ? ranges[2 * (r0 + i) + 1] : T - 1;
            int j0 = lo & ~7, j1 = (hi & ~7) + 8;
            const float *mrow = mask ? mask + (r0 + i) * T : 0;
            float qs[D], *s = S + (long)i * Tp;
            for (int c = 0; c < D; c++) qs[c] = qb[i * st[2] + c] * scale;
            v8f mx = splat(NEG_INF);
            for (int j8 = j0; j8 < j1; j8 += 8) {
                v8f acc = mask8(mrow, j8, lo, hi, T);
                for (int c = 0; c < D; c++) acc += qs[c] * load8(kt + c * Tp + j8);
                store8(s + j8, acc);
                mx = max8(acc, mx);
            }
            rmax[i] = hmax8(mx);
        }
        for (int i = 0; i < T; i++) {                                   /* softmax, probs, dropout */
            int lo = mask ? ranges[2 * (r0 + i)] : 0, hi = mask ? ranges[2 * (r0 + i) + 1] : T - 1;
            int j0 = lo & ~7, j1 = (hi & ~7) + 8;
            float m = rmax[i], *s = S + (long)i * Tp;
            v8f sum = splat(0.0f);
            for (int j8 = j0; j8 < j1; j8 += 8) {
                v8f e = exp_le0(load8(s + j8) - m);
                store8(s + j8, e);
                sum += e;
            }
            v8f inv = splat(1.0f / hsum8(sum));
            float *prow = pb + (long)i * T;
            memset(prow, 0, sizeof(float) * (size_t)j0);
            for (int j8 = j0; j8 < j1; j8 += 8) {
                v8f p = load8(s + j8) * inv;
                if (j8 + 8 <= T) store8(prow + j8, p); else store_part(prow + j8, p, T - j8);
                store8(s + j8, kpb ? p * keep8(kpb + (long)i * T, j8, T, threshold, dscale) : p);
            }
            if (j1 < T) memset(prow + j1, 0, sizeof(float) * (size_t)(T - j1));
        }
        for (int i = 0; i < T; i++) {                                   /* weighted values */
            int lo = mask ? ranges[2 * (r0 + i)] : 0, hi = mask ? ranges[2 * (r0 + i) + 1] : T - 1;
            v8f o[Dv / 8];
            weighted_sum(Dv, lo, hi, S + (long)i * Tp, vp, o);
            store_row(D, ob + i * st[11], o);
        }
    }
}

/* strides: q, k, v, dout, dq, dk, dv, 3 each */
INLINE void backward_d(const int D, int B, int H, int group, int T, float scale, const float *q, const float *k,
                       const float *v, const long *st, const int32_t *ranges, const int16_t *lanes, int threshold,
                       float dscale, const float *probs, const float *dout, float *dq, float *dk, float *dv,
                       float *buf) {
    const int Tp = (T + 7) & ~7, Dv = (D + 7) & ~7;
    float *vt = buf, *kp = vt + D * Tp, *dkp = kp + T * Dv, *dvp = dkp + T * Dv;   /* [D, Tp], 3 x [T, Dv] */
    float *w = dvp + T * Dv, *ds = w + Tp;                                         /* [Tp] each */
    for (int bh = 0; bh < B * H; bh++) {
        int b = bh / H, h = bh % H;
        const float *qb = q + at(st, b, h, 0), *gb = dout + at(st + 9, b, h, 0), *pb = probs + (long)bh * T * T;
        long r0 = ranges ? (long)(bh / group) * T : -1;
        const int16_t *kpb = lanes ? lanes + (long)bh * T * T : 0;
        load_transposed(D, T, Tp, v + at(st + 6, b, h, 0), st[8], vt);
        load_padded(D, Dv, T, k + at(st + 3, b, h, 0), st[5], kp);
        memset(dkp, 0, sizeof(float) * (size_t)(2 * T * Dv));                    /* dkp and dvp */
        for (int i = 0; i < T; i++) {
            int lo = ranges ? ranges[2 * (r0 + i)] : 0, hi = ranges ? ranges[2 * (r0 + i) + 1] : T - 1;
            int j0 = lo & ~7, j1 = (hi & ~7) + 8;
            const float *prow = pb + (long)i * T;                     /* 0 outside [lo, hi] (forward_d) */
            float g[Dv], qq[Dv];
            memcpy(g, gb + i * st[11], sizeof(float) * D);
            memcpy(qq, qb + i * st[2], sizeof(float) * D);
            for (int c = D; c < Dv; c++) g[c] = qq[c] = 0.0f;
            v8f dot = splat(0.0f);
            for (int j8 = j0; j8 < j1; j8 += 8) {
                v8f dw = splat(0.0f);
                for (int c = 0; c < D; c++) dw += g[c] * load8(vt + c * Tp + j8);
                v8f p = j8 + 8 <= T ? load8(prow + j8) : load_part(prow + j8, T - j8);
                if (kpb) {
                    v8f f = keep8(kpb + (long)i * T, j8, T, threshold, dscale);
                    dw *= f;
                    store8(w + j8, p * f);
                } else {
                    store8(w + j8, p);
                }
                store8(ds + j8, dw);
                dot += dw * p;
            }
            float dt = hsum8(dot);
            for (int j8 = j0; j8 < j1; j8 += 8) {
                v8f p = j8 + 8 <= T ? load8(prow + j8) : load_part(prow + j8, T - j8);
                store8(ds + j8, p * (load8(ds + j8) - dt) * scale);
            }
            v8f gv[Dv / 8], qv[Dv / 8], acc[Dv / 8];
            for (int c = 0; c < Dv / 8; c++) {
                gv[c] = load8(g + 8 * c);
                qv[c] = load8(qq + 8 * c);
                acc[c] = splat(0.0f);
            }
            for (int j = lo; j <= hi; j++) {
                float wj = w[j], dj = ds[j];
                for (int c = 0; c < Dv / 8; c++) {
                    long o = j * Dv + 8 * c;
                    store8(dvp + o, load8(dvp + o) + wj * gv[c]);
                    acc[c] += dj * load8(kp + o);
                    store8(dkp + o, load8(dkp + o) + dj * qv[c]);
                }
            }
            store_row(D, dq + at(st + 12, b, h, i), acc);
        }
        for (int j = 0; j < T; j++) {
            memcpy(dk + at(st + 15, b, h, j), dkp + j * Dv, sizeof(float) * D);
            memcpy(dv + at(st + 18, b, h, j), dvp + j * Dv, sizeof(float) * D);
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

/* one call's buffers (floats): forward [D, Tp] + [T, Dv] + [T, Tp] + [T]; backward [D, Tp] + 3 [T, Dv] + 2 [Tp] */
static float *buffers(int T, int d, int backward) {
    long Tp = (T + 7) & ~7, Dv = (d + 7) & ~7;
    long n = backward ? d * Tp + 3 * T * Dv + 2 * Tp : d * Tp + T * Dv + T * Tp + T;
    return malloc(sizeof(float) * (size_t)n);
}

int attn_forward(int B, int H, int group, int T, int d, float scale, const float *q, const float *k, const float *v,
                 const long *strides, const float *mask, const int32_t *ranges, const int16_t *lanes, int threshold,
                 float dscale, float *probs, float *out) {
    if (T > MAXT || d > MAXD || d % 4) return -1;
    float *buf = buffers(T, d, 0);
    if (!buf) return -2;
    DISPATCH(forward_d, B, H, group, T, scale, q, k, v, strides, mask, ranges, lanes, threshold, dscale, probs, out,
             buf)
    free(buf);
    return 0;
}

/* ranges NULL: no mask */
int attn_backward(int B, int H, int group, int T, int d, float scale, const float *q, const float *k,
                  const float *v, const long *strides, const int32_t *ranges, const int16_t *lanes, int threshold,
                  float dscale, const float *probs, const float *dout, float *dq, float *dk, float *dv) {
    if (T > MAXT || d > MAXD || d % 4) return -1;
    float *buf = buffers(T, d, 1);
    if (!buf) return -2;
    DISPATCH(backward_d, B, H, group, T, scale, q, k, v, strides, ranges, lanes, threshold, dscale, probs, dout, dq,
             dk, dv, buf)
    free(buf);
    return 0;
}

/* y = e^x elementwise by vec.h's exp_le0 (n a multiple of 8): for the tests */
void attn_exp(long n, const float *x, float *y) {
    for (long i = 0; i + 8 <= n; i += 8) store8(y + i, exp_le0(load8(x + i)));
}
