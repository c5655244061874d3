/* The hot loops of Urms(1/2), with run-time choice of the instruction set.
 *
 * 1. ps_sumsq_*: exact sum of squares, min and max of an int16 segment.
 *
 * gcc does not find pmaddwd for this loop by itself (it squares in 32 bits and widens every
 * product), so on x86-64 it is written with intrinsics, one variant per instruction set, chosen
 * once at run time from what the CPU supports (the build stays baseline x86-64, like NumPy's
 * dispatch). pmaddwd gives a*a + b*b per 32-bit lane: at most 2 * 32768**2 = 2**31, exact when
 * read as unsigned. SSE2 zero-extends each lane into 64-bit accumulators (exact for any length);
 * AVX2 and AVX-512 add lanes in 32 bits and fall back to that widening loop when the segment's
 * max |x| does not prove the 32-bit lanes exact (ps_fits_u32). Elsewhere (aarch64...) only the
 * plain loop, which gcc vectorises for NEON. A half cycle is only ~100-200 samples, so the
 * horizontal steps (lanes -> one sum, one min, one max) cost as much as the sums: AVX-512 does
 * them for 16 segments at once (ps_segments_avx512).
 *
 * Every variant returns the same bits (integer arithmetic); the tests run each one the CPU has
 * against the NumPy reference.
 *
 * 2. Urms(1/2) of one channel from those sums: in the same pass (the segment drivers, when
 * given u; AVX-512 8 at a time), or from sums already computed (ps_urms_1ch: the same C loop
 * compiled twice; the AVX-512 copy converts int64 to double, divides and takes square roots
 * 8 at a time). Division and sqrt are correctly rounded in IEEE 754 whatever the width, so
 * all give NumPy's bits (the build passes -fno-math-errno, without which gcc keeps sqrt
 * scalar for errno's sake).
 */
#ifndef PS_SIMD_KERNELS_H
#define PS_SIMD_KERNELS_H

#include <stdint.h>
#include <stddef.h>
#include <math.h>

/* One call per array, not per segment: the per-segment bodies are inlined into a driver per
 * variant (an indirect call per half cycle of ~100 samples is a visible share of the time).
 *
 * The driver also checks the edges as it goes (one compare per segment, instead of a pass of
 * its own) and, when u is not NULL, computes Urms(1/2) of each segment with the one before it
 * while the sums are still in registers (as a pass of its own it took ~15 % of the time).
 * Returns -1, or the first i with edges[i+1] < edges[i] or past nx, the length of x (outputs
 * are then incomplete): no sample past a bad edge is read. */
typedef ptrdiff_t (*ps_sumsq_fn)(const int16_t *x, ptrdiff_t nx, const int64_t *edges,
                                 ptrdiff_t m, int64_t *out, int16_t *mn, int16_t *mx, double *u,
                                 int64_t prev_s, int64_t prev_n, double scale);

#define PS_INLINE static inline __attribute__((always_inline))

/* out[i], mn[i], mx[i] (and u[i]) for segments [edges[i], edges[i+1]), i < m; the caller has
 * checked 0 <= edges[0], every other edge is checked here. u[i] = sqrt((s[i-1] + s[i]) /
 * (n[i-1] + n[i])) * scale with s[-1], n[-1] = prev_s, prev_n: the operations and order of
 * ps_urms_1ch. */
#define PS_SEGMENTS_DRIVER(name, body, attrs)                                                    \
    attrs static ptrdiff_t name(const int16_t *x, ptrdiff_t nx, const int64_t *edges,          \
                                ptrdiff_t m,                                                    \
                                int64_t *out, int16_t *mn, int16_t *mx, double *u,              \
                                int64_t prev_s, int64_t prev_n, double scale) {                 \
        for (ptrdiff_t i = 0; i < m; i++) {                                                     \
            ptrdiff_t a = (ptrdiff_t)edges[i], b = (ptrdiff_t)edges[i + 1];                     \
            int64_t s = 0;                                                                      \
            if (b > nx) return i;                                                               \
            if (b > a) {                                                                        \
                uint64_t t;                                                                     \
                body(x + a, b - a, &t, &mn[i], &mx[i]);                                         \
                s = (int64_t)t;                                                                 \
            } else if (b == a) {                                                                \
                mn[i] = 32767;                                                                  \
                mx[i] = -32768;                                                                 \
            } else {                                                                            \
                return i;                                                                       \
            }                                                                                   \
            out[i] = s;                                                                         \
            if (u) {                                                                            \
                u[i] = sqrt((double)(prev_s + s) / (double)(prev_n + (b - a))) * scale;         \
                prev_s = s;                                                                     \
                prev_n = b - a;                                                                 \
            }                                                                                   \
        }                                                                                       \
        return -1;                                                                              \
    }

/* Plain C: the reference, the tail of the vector variants, and the only variant off x86. */
PS_INLINE void ps_sumsq_scalar_from(const int16_t *x, ptrdiff_t j, ptrdiff_t n, uint64_t acc,
                                    int16_t lo, int16_t hi, uint64_t *sum, int16_t *mn,
                                    int16_t *mx) {
    for (; j < n; j++) {
        int16_t v = x[j];
        /* v*v <= 2**30 fits int32; the non-negative product widens by zero extension */
        acc += (uint64_t)(uint32_t)((int32_t)v * (int32_t)v);
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    *sum = acc;
    *mn = lo;
    *mx = hi;
}

PS_INLINE void ps_sumsq_scalar(const int16_t *x, ptrdiff_t n, uint64_t *sum, int16_t *mn,
                               int16_t *mx) {
    ps_sumsq_scalar_from(x, 0, n, 0, 32767, -32768, sum, mn, mx);
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define PS_HAVE_X86 1

/* 8 int16 lanes -> their min / max (SSE2 shifts; lane 0 ends with the answer). */
static inline int16_t ps_hmin8(__m128i v) {
    v = _mm_min_epi16(v, _mm_srli_si128(v, 8));
    v = _mm_min_epi16(v, _mm_srli_si128(v, 4));
    v = _mm_min_epi16(v, _mm_srli_si128(v, 2));
    return (int16_t)_mm_extract_epi16(v, 0);
}

static inline int16_t ps_hmax8(__m128i v) {
    v = _mm_max_epi16(v, _mm_srli_si128(v, 8));
    v = _mm_max_epi16(v, _mm_srli_si128(v, 4));
    v = _mm_max_epi16(v, _mm_srli_si128(v, 2));
    return (int16_t)_mm_extract_epi16(v, 0);
}

/* The same with SSE4.1 phminposuw (one instruction for 8 unsigned lanes): flipping the sign bit
 * maps int16 order onto uint16 order, and x ^ 0x7fff onto the reverse order, for the max. */
__attribute__((target("sse4.1")))
static inline int16_t ps_hmin8_41(__m128i v) {
    const __m128i s = _mm_set1_epi16((short)0x8000);
    return (int16_t)(_mm_cvtsi128_si32(_mm_minpos_epu16(_mm_xor_si128(v, s))) ^ 0x8000);
}

__attribute__((target("sse4.1")))
static inline int16_t ps_hmax8_41(__m128i v) {
    const __m128i s = _mm_set1_epi16(0x7fff);
    return (int16_t)(_mm_cvtsi128_si32(_mm_minpos_epu16(_mm_xor_si128(v, s))) ^ 0x7fff);
}

static inline uint64_t ps_hsum2(__m128i a) {
    a = _mm_add_epi64(a, _mm_unpackhi_epi64(a, a));
    return (uint64_t)_mm_cvtsi128_si64(a);
}

/* SSE2 is part of x86-64: always available. 16 samples per step, two independent chains. */
PS_INLINE void ps_sumsq_sse2(const int16_t *x, ptrdiff_t n, uint64_t *sum, int16_t *mn,
                             int16_t *mx) {
    const __m128i z = _mm_setzero_si128();
    __m128i a0 = z, a1 = z, a2 = z, a3 = z;
    __m128i vl = _mm_set1_epi16(32767), vh = _mm_set1_epi16(-32768);
    ptrdiff_t j = 0;
    for (; j + 16 <= n; j += 16) {
        __m128i u = _mm_loadu_si128((const __m128i *)(x + j));
        __m128i w = _mm_loadu_si128((const __m128i *)(x + j + 8));
        __m128i p = _mm_madd_epi16(u, u);
        __m128i q = _mm_madd_epi16(w, w);
        a0 = _mm_add_epi64(a0, _mm_unpacklo_epi32(p, z));
        a1 = _mm_add_epi64(a1, _mm_unpackhi_epi32(p, z));
        a2 = _mm_add_epi64(a2, _mm_unpacklo_epi32(q, z));
        a3 = _mm_add_epi64(a3, _mm_unpackhi_epi32(q, z));
        vl = _mm_min_epi16(vl, _mm_min_epi16(u, w));
        vh = _mm_max_epi16(vh, _mm_max_epi16(u, w));
    }
    a0 = _mm_add_epi64(_mm_add_epi64(a0, a1), _mm_add_epi64(a2, a3));
    ps_sumsq_scalar_from(x, j, n, ps_hsum2(a0), ps_hmin8(vl), ps_hmax8(vh), sum, mn, mx);
}

/* Is a 32-bit lane sum of k pmaddwd results exact? Each is at most 2 * B**2, B = max |x| over
 * the samples summed (from their min lo and max hi). */
static inline int ps_fits_u32(int16_t lo, int16_t hi, uint64_t k) {
    uint64_t b = (uint64_t)(-(int32_t)lo > (int32_t)hi ? -(int32_t)lo : (int32_t)hi);
    /* multiply, not divide: a 64-bit division per half cycle costs more than the sums.
     * 2 * b * b <= 2**31 and k < 2**32, so the product cannot overflow 64 bits. */
    return k < (UINT64_C(1) << 32) && 2 * b * b * k <= UINT64_C(0xffffffff);
}

/* AVX2, optimistic like the AVX-512 variant below (see there): 32 samples per step summed in
 * 32-bit lanes, the exact widening loop when the bound does not prove them exact; the last
 * n % 32 samples in the scalar loop. */
__attribute__((target("avx2,sse4.1")))
static uint64_t ps_sumsq_avx2_wide(const int16_t *x, ptrdiff_t n) {
    const __m256i z = _mm256_setzero_si256();
    __m256i a0 = z, a1 = z;
    for (ptrdiff_t j = 0; j + 16 <= n; j += 16) {
        __m256i u = _mm256_loadu_si256((const __m256i *)(x + j));
        __m256i p = _mm256_madd_epi16(u, u);
        a0 = _mm256_add_epi64(a0, _mm256_unpacklo_epi32(p, z));
        a1 = _mm256_add_epi64(a1, _mm256_unpackhi_epi32(p, z));
    }
    a0 = _mm256_add_epi64(a0, a1);
    return ps_hsum2(_mm_add_epi64(_mm256_castsi256_si128(a0), _mm256_extracti128_si256(a0, 1)));
}

__attribute__((target("avx2,sse4.1")))
PS_INLINE void ps_sumsq_avx2(const int16_t *x, ptrdiff_t n, uint64_t *sum, int16_t *mn,
                             int16_t *mx) {
    const __m256i z = _mm256_setzero_si256();
    __m256i a0 = z, a1 = z;
    __m256i vl = _mm256_set1_epi16(32767), vh = _mm256_set1_epi16(-32768);
    ptrdiff_t j = 0;
    for (; j + 32 <= n; j += 32) {
        __m256i u = _mm256_loadu_si256((const __m256i *)(x + j));
        __m256i w = _mm256_loadu_si256((const __m256i *)(x + j + 16));
        a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(u, u));
        a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(w, w));
        vl = _mm256_min_epi16(vl, _mm256_min_epi16(u, w));
        vh = _mm256_max_epi16(vh, _mm256_max_epi16(u, w));
    }
    __m128i l = _mm_min_epi16(_mm256_castsi256_si128(vl), _mm256_extracti128_si256(vl, 1));
    __m128i h = _mm_max_epi16(_mm256_castsi256_si128(vh), _mm256_extracti128_si256(vh, 1));
    int16_t lo = ps_hmin8_41(l), hi = ps_hmax8_41(h);
    uint64_t acc;
    if (ps_fits_u32(lo, hi, (uint64_t)(j / 32))) {
        __m256i w = _mm256_add_epi64(
            _mm256_add_epi64(_mm256_cvtepu32_epi64(_mm256_castsi256_si128(a0)),
                             _mm256_cvtepu32_epi64(_mm256_extracti128_si256(a0, 1))),
            _mm256_add_epi64(_mm256_cvtepu32_epi64(_mm256_castsi256_si128(a1)),
                             _mm256_cvtepu32_epi64(_mm256_extracti128_si256(a1, 1))));
        acc = ps_hsum2(_mm_add_epi64(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1)));
    } else {
        acc = ps_sumsq_avx2_wide(x, j);
    }
    ps_sumsq_scalar_from(x, j, n, acc, lo, hi, sum, mn, mx);
}

/* AVX-512BW, optimistic: pmaddwd results are summed in 32-bit lanes (one add per 32 samples
 * instead of two widenings and two 64-bit adds), which is exact when no lane can pass 2**32:
 * each lane receives k = ceil(n / 32) pair sums of at most 2 * B**2, B = max |x| of the segment,
 * known from the min/max computed in the same pass. When k * 2 * B**2 might reach 2**32 (signals
 * near full scale over long segments) the sum is recomputed by the widening loop: still exact,
 * one more pass. The tail is one masked step (no scalar loop), which matters for half cycles of
 * ~100-200 samples: masked-off lanes load as 0 (nothing added) and stay out of min/max. */
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,sse4.1")))
static uint64_t ps_sumsq_avx512_wide(const int16_t *x, ptrdiff_t n) {
    const __m512i z = _mm512_setzero_si512();
    __m512i a0 = z, a1 = z;
    ptrdiff_t j = 0;
    for (; j + 32 <= n; j += 32) {
        __m512i u = _mm512_loadu_si512((const void *)(x + j));
        __m512i p = _mm512_madd_epi16(u, u);
        a0 = _mm512_add_epi64(a0, _mm512_unpacklo_epi32(p, z));
        a1 = _mm512_add_epi64(a1, _mm512_unpackhi_epi32(p, z));
    }
    if (j < n) {
        __mmask32 k = (__mmask32)((1ULL << (n - j)) - 1);
        __m512i u = _mm512_maskz_loadu_epi16(k, (const void *)(x + j));
        __m512i p = _mm512_madd_epi16(u, u);
        a0 = _mm512_add_epi64(a0, _mm512_unpacklo_epi32(p, z));
        a1 = _mm512_add_epi64(a1, _mm512_unpackhi_epi32(p, z));
    }
    return (uint64_t)_mm512_reduce_add_epi64(_mm512_add_epi64(a0, a1));
}

/* The lanes of one segment, before any horizontal step: 32-bit sums of pmaddwd, and the int16
 * min and max per lane. An empty segment leaves the initial values (0, 32767, -32768), which
 * are what an empty segment must report. */
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,sse4.1")))
PS_INLINE void ps_lanes_avx512(const int16_t *x, ptrdiff_t n, __m512i *sum, __m512i *mn,
                               __m512i *mx) {
    __m512i acc = _mm512_setzero_si512();
    __m512i vl = _mm512_set1_epi16(32767), vh = _mm512_set1_epi16(-32768);
    ptrdiff_t j = 0;
    for (; j + 32 <= n; j += 32) {
        __m512i u = _mm512_loadu_si512((const void *)(x + j));
        acc = _mm512_add_epi32(acc, _mm512_madd_epi16(u, u));
        vl = _mm512_min_epi16(vl, u);
        vh = _mm512_max_epi16(vh, u);
    }
    if (j < n) {
        __mmask32 k = (__mmask32)((1ULL << (n - j)) - 1);
        __m512i u = _mm512_maskz_loadu_epi16(k, (const void *)(x + j));
        acc = _mm512_add_epi32(acc, _mm512_madd_epi16(u, u));
        vl = _mm512_mask_min_epi16(vl, k, vl, u);
        vh = _mm512_mask_max_epi16(vh, k, vh, u);
    }
    *sum = acc;
    *mn = vl;
    *mx = vh;
}

/* Horizontal steps for 16 segments at once. Reducing each segment's vectors on its own takes
 * ~40 shuffle/min/add instructions per half cycle of ~100 samples, more than the 4 loads that
 * sum it; a transposing tree over 16 segments needs ~12. One tree level merges vector pairs
 * (v[2k], v[2k+1]) each holding G segments x L lanes into one holding 2G segments x L/2 lanes:
 * w = op(permute(v[2k], v[2k+1], lo), permute(..., hi)), lo picking each segment's first L/2
 * lanes and hi its last L/2, segments kept in order. */
typedef struct {
    int64_t q[3][2][8];   /* 64-bit lanes: G = 1, 2, 4 */
    int32_t d[4][2][16];  /* 32-bit lanes: G = 1, 2, 4, 8 */
} ps_tree_idx;

static void ps_tree_index_fill(ps_tree_idx *t) {
    for (int lvl = 0; lvl < 4; lvl++)
        for (int w = 0; w < 2; w++) {
            int nl = w ? 8 : 16, G = 1 << lvl, L = nl / G, h = L / 2;
            if (w && lvl == 3) continue;
            for (int pos = 0; pos < nl; pos++) {
                int g = pos / h, l = pos % h;
                int src = (g < G ? 0 : nl) + (g % G) * L + l;  /* nl: lane index in 2nd vector */
                if (w) { t->q[lvl][0][pos] = src; t->q[lvl][1][pos] = src + h; }
                else { t->d[lvl][0][pos] = src; t->d[lvl][1][pos] = src + h; }
            }
        }
}

#define PS_TREE_LEVEL(v, npairs, op, perm, lo, hi)                                              \
    for (int k = 0; k < (npairs); k++)                                                          \
        v[k] = op(perm(v[2 * k], lo, v[2 * k + 1]), perm(v[2 * k], hi, v[2 * k + 1]));

/* 16 vectors of 32 int16 lanes -> the 16 mins (or maxes), in order. */
#define PS_TREE_I16(v, op, t, out16)                                                           \
    do {                                                                                        \
        for (int lvl = 0; lvl < 4; lvl++) {                                                     \
            __m512i lo = _mm512_load_si512((const void *)(t)->d[lvl][0]);                       \
            __m512i hi = _mm512_load_si512((const void *)(t)->d[lvl][1]);                       \
            PS_TREE_LEVEL(v, 8 >> lvl, op, _mm512_permutex2var_epi32, lo, hi)                  \
        }                                                                                       \
        /* v[0]: segment k's last two lanes in 32-bit lane k; fold them, keep the low half */   \
        out16 = _mm512_cvtepi32_epi16(op(v[0], _mm512_srli_epi32(v[0], 16)));                  \
    } while (0)

/* ps_fits_u32 for 16 segments: bit k set when segment k's 32-bit lane sums are exact (its
 * k_j = ceil(n_j / 32) adds per lane of at most 2 * B_j**2 each stay below 2**32). */
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,sse4.1")))
static inline __mmask16 ps_fits_u32_x16(__m256i lo16, __m256i hi16, __m512i n0, __m512i n1) {
    __m512i lo = _mm512_cvtepi16_epi32(lo16), hi = _mm512_cvtepi16_epi32(hi16);
    __m512i b = _mm512_max_epi32(_mm512_sub_epi32(_mm512_setzero_si512(), lo), hi);
    __m512i b2 = _mm512_mullo_epi32(b, b);  /* <= 2**30; an empty segment's k is 0 anyway */
    const __m512i lim = _mm512_set1_epi64(0xffffffff);
    __mmask16 ok = 0;
    for (int h = 0; h < 2; h++) {
        __m512i n = h ? n1 : n0;
        __m512i k = _mm512_srli_epi64(_mm512_add_epi64(n, _mm512_set1_epi64(31)), 5);
        __m512i bb = _mm512_cvtepu32_epi64(h ? _mm512_extracti64x4_epi64(b2, 1)
                                             : _mm512_castsi512_si256(b2));
        /* bb < 2**31 and k < 2**32 (checked), so 2 * bb * k < 2**64 */
        __mmask8 f = _mm512_cmpeq_epi64_mask(_mm512_srli_epi64(k, 32), _mm512_setzero_si512())
                     & _mm512_cmple_epu64_mask(_mm512_slli_epi64(_mm512_mul_epu32(bb, k), 1), lim);
        ok |= (__mmask16)((unsigned)f << (8 * h));
    }
    return ok;
}

/* The AVX-512 driver: segments in blocks of 16 (see above). After the trees, all in vectors:
 * the exactness check of each segment's 32-bit lane sums (the rare segment that fails is
 * summed again by the widening loop), then Urms(1/2), 8 divisions and square roots at a time.
 * Same contract as PS_SEGMENTS_DRIVER. */
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,sse4.1")))
static ptrdiff_t ps_segments_avx512(const int16_t *x, ptrdiff_t nx, const int64_t *edges,
                                    ptrdiff_t m,
                                    int64_t *out, int16_t *mn, int16_t *mx, double *u,
                                    int64_t prev_s, int64_t prev_n, double scale) {
    ps_tree_idx t __attribute__((aligned(64)));
    ps_tree_index_fill(&t);
    const __m512i low32 = _mm512_set1_epi64(0xffffffff);
    __m512i ps = _mm512_set1_epi64(prev_s), pn = _mm512_set1_epi64(prev_n);  /* lane 7 used */
    for (ptrdiff_t i0 = 0; i0 < m; i0 += 16) {
        int nb = m - i0 < 16 ? (int)(m - i0) : 16;
        __m512i vs[16], vl[16], vh[16];
        for (int k = 0; k < 16; k++) {
            ptrdiff_t a = 0, b = 0;
            if (k < nb) {
                a = (ptrdiff_t)edges[i0 + k];
                b = (ptrdiff_t)edges[i0 + k + 1];
                if (b < a || b > nx) return i0 + k;
            }
            ps_lanes_avx512(x + a, b - a, &vs[k], &vl[k], &vh[k]);  /* padding: empty */
            /* 16 x u32 -> 8 x u64 (lane pairs: low half + high half), exact */
            vs[k] = _mm512_add_epi64(_mm512_and_si512(vs[k], low32), _mm512_srli_epi64(vs[k], 32));
        }
        __m256i lo16, hi16;
        PS_TREE_I16(vl, _mm512_min_epi16, &t, lo16);
        PS_TREE_I16(vh, _mm512_max_epi16, &t, hi16);
        for (int lvl = 0; lvl < 3; lvl++) {
            __m512i lo = _mm512_load_si512((const void *)t.q[lvl][0]);
            __m512i hi = _mm512_load_si512((const void *)t.q[lvl][1]);
            PS_TREE_LEVEL(vs, 8 >> lvl, _mm512_add_epi64, _mm512_permutex2var_epi64, lo, hi)
        }
        __mmask16 keep = (__mmask16)((1u << nb) - 1);
        __mmask8 k0 = (__mmask8)keep, k1 = (__mmask8)(keep >> 8);
        __m512i n0 = _mm512_sub_epi64(_mm512_maskz_loadu_epi64(k0, edges + i0 + 1),
                                      _mm512_maskz_loadu_epi64(k0, edges + i0));
        __m512i n1 = _mm512_sub_epi64(_mm512_maskz_loadu_epi64(k1, edges + i0 + 9),
                                      _mm512_maskz_loadu_epi64(k1, edges + i0 + 8));
        __mmask16 redo = keep & ~ps_fits_u32_x16(lo16, hi16, n0, n1);
        if (redo) {  /* rare: near full scale over long segments */
            int64_t tmp[16] __attribute__((aligned(64)));
            _mm512_store_si512((void *)tmp, vs[0]);
            _mm512_store_si512((void *)(tmp + 8), vs[1]);
            for (int k = 0; k < nb; k++) {
                ptrdiff_t a = (ptrdiff_t)edges[i0 + k], b = (ptrdiff_t)edges[i0 + k + 1];
                if (redo & (1u << k))
                    tmp[k] = (int64_t)ps_sumsq_avx512_wide(x + a, b - a);
            }
            vs[0] = _mm512_load_si512((const void *)tmp);
            vs[1] = _mm512_load_si512((const void *)(tmp + 8));
        }
        _mm256_mask_storeu_epi16((void *)(mn + i0), keep, lo16);
        _mm256_mask_storeu_epi16((void *)(mx + i0), keep, hi16);
        _mm512_mask_storeu_epi64((void *)(out + i0), k0, vs[0]);
        _mm512_mask_storeu_epi64((void *)(out + i0 + 8), k1, vs[1]);
        if (u) {
            /* the segment before each: lanes shifted up by one, lane 0 from the last block */
            const __m512d sc = _mm512_set1_pd(scale);
            for (int h = 0; h < 2; h++) {
                __m512i s = vs[h], n = h ? n1 : n0;
                __m512i sp = _mm512_alignr_epi64(s, ps, 7), np_ = _mm512_alignr_epi64(n, pn, 7);
                __m512d q = _mm512_div_pd(_mm512_cvtepi64_pd(_mm512_add_epi64(sp, s)),
                                          _mm512_cvtepi64_pd(_mm512_add_epi64(np_, n)));
                _mm512_mask_storeu_pd(u + i0 + 8 * h, h ? k1 : k0,
                                      _mm512_mul_pd(_mm512_sqrt_pd(q), sc));
                ps = s;
                pn = n;
            }
        }
    }
    return -1;
}
#endif

/* Segment drivers by level (index into ps_sumsq_names, best last); NULL when the CPU lacks
 * the instructions. */
PS_SEGMENTS_DRIVER(ps_segments_scalar, ps_sumsq_scalar, )
#ifdef PS_HAVE_X86
PS_SEGMENTS_DRIVER(ps_segments_sse2, ps_sumsq_sse2, )
PS_SEGMENTS_DRIVER(ps_segments_avx2, ps_sumsq_avx2, __attribute__((target("avx2,sse4.1"))))
#endif

static const char *const ps_sumsq_names[] = {"scalar", "sse2", "avx2", "avx512"};

static ps_sumsq_fn ps_sumsq_lookup(int level) {
    switch (level) {
    case 0: return ps_segments_scalar;
#ifdef PS_HAVE_X86
    case 1: return ps_segments_sse2;
    case 2: return __builtin_cpu_supports("avx2") ? ps_segments_avx2 : NULL;
    case 3: return (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
                    && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
                   ? ps_segments_avx512 : NULL;
#endif
    default: return NULL;
    }
}

/* u[i] = sqrt((s[i-1] + s[i]) / (n[i-1] + n[i])) * scale, with s[-1], n[-1] = prev_s, prev_n.
 * Same operations, same order as ref.urms_half. */
#define PS_URMS_1CH_BODY                                                                        \
    if (m <= 0) return;                                                                         \
    out[0] = sqrt((double)(prev_s + s[0]) / (double)(prev_n + n[0])) * scale;                   \
    for (ptrdiff_t i = 1; i < m; i++)                                                           \
        out[i] = sqrt((double)(s[i - 1] + s[i]) / (double)(n[i - 1] + n[i])) * scale;

static void ps_urms_1ch_plain(const int64_t *s, const int64_t *n, ptrdiff_t m, int64_t prev_s,
                              int64_t prev_n, double scale, double *out) {
    PS_URMS_1CH_BODY
}

#ifdef PS_HAVE_X86
__attribute__((target("avx512f,avx512dq,avx512vl,avx2")))
static void ps_urms_1ch_avx512(const int64_t *s, const int64_t *n, ptrdiff_t m, int64_t prev_s,
                               int64_t prev_n, double scale, double *out) {
    PS_URMS_1CH_BODY
}
#endif

static void ps_urms_1ch(const int64_t *s, const int64_t *n, ptrdiff_t m, int64_t prev_s,
                        int64_t prev_n, double scale, double *out, int level) {
    (void)level;  /* only the x86 variants use it */
#ifdef PS_HAVE_X86
    if (level >= 3) {  /* ps_sumsq_lookup(3) checked f/bw/dq/vl when the level was chosen */
        ps_urms_1ch_avx512(s, n, m, prev_s, prev_n, scale, out);
        return;
    }
#endif
    ps_urms_1ch_plain(s, n, m, prev_s, prev_n, scale, out);
}

/* 3. Block sums (boxcar decimation before the frequency FIR): out[i] = sum of x[i*d .. i*d+d),
 * exact in int32 for d <= 65536 (the caller checks). AVX-512: pmaddwd against ones gives pair
 * sums, and the lanes of 16 blocks are reduced at once by the same tree as the half cycles. */
static void ps_block_sum_plain(const int16_t *x, ptrdiff_t nb, ptrdiff_t d, double *out) {
    for (ptrdiff_t i = 0; i < nb; i++) {
        int32_t acc = 0;
        for (ptrdiff_t k = 0; k < d; k++)
            acc += x[i * d + k];
        out[i] = (double)acc;
    }
}

#ifdef PS_HAVE_X86
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,sse4.1")))
static void ps_block_sum_avx512(const int16_t *x, ptrdiff_t nb, ptrdiff_t d, double *out) {
    ps_tree_idx t __attribute__((aligned(64)));
    ps_tree_index_fill(&t);
    const __m512i ones = _mm512_set1_epi16(1);
    for (ptrdiff_t i0 = 0; i0 < nb; i0 += 16) {
        int n = nb - i0 < 16 ? (int)(nb - i0) : 16;
        __m512i v[16];
        for (int k = 0; k < 16; k++) {
            __m512i acc = _mm512_setzero_si512();
            if (k < n) {
                const int16_t *p = x + (i0 + k) * d;
                ptrdiff_t j = 0;
                for (; j + 32 <= d; j += 32)
                    acc = _mm512_add_epi32(acc, _mm512_madd_epi16(
                        _mm512_loadu_si512((const void *)(p + j)), ones));
                if (j < d) {
                    __mmask32 m = (__mmask32)((1ULL << (d - j)) - 1);
                    acc = _mm512_add_epi32(acc, _mm512_madd_epi16(
                        _mm512_maskz_loadu_epi16(m, (const void *)(p + j)), ones));
                }
            }
            v[k] = acc;
        }
        for (int lvl = 0; lvl < 4; lvl++) {
            __m512i lo = _mm512_load_si512((const void *)t.d[lvl][0]);
            __m512i hi = _mm512_load_si512((const void *)t.d[lvl][1]);
            PS_TREE_LEVEL(v, 8 >> lvl, _mm512_add_epi32, _mm512_permutex2var_epi32, lo, hi)
        }
        /* int32 partial sums never wrap: |sum| <= d * 32768 <= 2**31, and -2**31 is exact */
        __mmask16 keep = (__mmask16)((1u << n) - 1);
        _mm512_mask_storeu_pd(out + i0, (__mmask8)keep,
                              _mm512_cvtepi32_pd(_mm512_castsi512_si256(v[0])));
        _mm512_mask_storeu_pd(out + i0 + 8, (__mmask8)(keep >> 8),
                              _mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(v[0], 1)));
    }
}
#endif

static void ps_block_sum_i16(const int16_t *x, ptrdiff_t nb, ptrdiff_t d, double *out,
                             int level) {
    (void)level;  /* only the x86 variants use it */
#ifdef PS_HAVE_X86
    if (level >= 3) {  /* ps_sumsq_lookup(3) checked f/bw/dq/vl when the level was chosen */
        ps_block_sum_avx512(x, nb, d, out);
        return;
    }
#endif
    ps_block_sum_plain(x, nb, d, out);
}

/* 4. FIR, valid part: y[j] = sum_k taps[k] * z[j + k] for j < n, each output adding its taps in
 * ascending order from 0.0, multiply then add (no FMA: -ffp-contract=off), as the NumPy
 * reference does; the order across outputs is free. Plain: tap-major over blocks of outputs, which
 * gcc vectorises at the baseline width. AVX-512: 64 outputs in 8 registers across all taps (no
 * load and store of y per tap). */
static void ps_fir_plain(const double *z, const double *taps, ptrdiff_t nt, ptrdiff_t n,
                         double *y) {
    for (ptrdiff_t b = 0; b < n; b += 2048) {  /* blocks of outputs stay in L1 across taps */
        ptrdiff_t e = b + 2048 < n ? b + 2048 : n;
        for (ptrdiff_t j = b; j < e; j++)
            y[j] = 0.0;
        for (ptrdiff_t k = 0; k < nt; k++) {
            double tk = taps[k];
            for (ptrdiff_t j = b; j < e; j++)
                y[j] = y[j] + tk * z[j + k];
        }
    }
}

#ifdef PS_HAVE_X86
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,sse4.1")))
static void ps_fir_avx512(const double *z, const double *taps, ptrdiff_t nt, ptrdiff_t n,
                          double *y) {
    ptrdiff_t j = 0;
    for (; j + 64 <= n; j += 64) {
        __m512d a[8];
        for (int i = 0; i < 8; i++)
            a[i] = _mm512_setzero_pd();
        for (ptrdiff_t k = 0; k < nt; k++) {
            __m512d tk = _mm512_set1_pd(taps[k]);
            for (int i = 0; i < 8; i++)
                a[i] = _mm512_add_pd(a[i], _mm512_mul_pd(tk, _mm512_loadu_pd(z + j + 8 * i + k)));
        }
        for (int i = 0; i < 8; i++)
            _mm512_storeu_pd(y + j + 8 * i, a[i]);
    }
    for (; j < n; j += 8) {  /* the last < 64 outputs, 8 at a time, the final step masked */
        __mmask8 m = n - j >= 8 ? (__mmask8)0xff : (__mmask8)((1u << (n - j)) - 1);
        __m512d a = _mm512_setzero_pd();
        for (ptrdiff_t k = 0; k < nt; k++)
            a = _mm512_add_pd(a, _mm512_mul_pd(_mm512_set1_pd(taps[k]),
                                               _mm512_maskz_loadu_pd(m, z + j + k)));
        _mm512_mask_storeu_pd(y + j, m, a);
    }
}
#endif

static void ps_fir(const double *z, const double *taps, ptrdiff_t nt, ptrdiff_t n, double *y,
                   int level) {
    (void)level;  /* only the x86 variants use it */
#ifdef PS_HAVE_X86
    if (level >= 3) {
        ps_fir_avx512(z, taps, nt, n, y);
        return;
    }
#endif
    ps_fir_plain(z, taps, nt, n, y);
}

#endif
