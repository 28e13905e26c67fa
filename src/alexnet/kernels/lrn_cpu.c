/* Cross-channel LRN for CPUs, one pass over the tensor each way (see lrn_native.py).

   The tensors are channels-last, so each position's channels are one contiguous row. A row
   is widened to float, its window sums are formed there (shifted adds over a zero-padded
   copy, which the compiler vectorises without edge masks) and the results are narrowed
   back: nothing but the output and the window sums s touches memory. Per channel i, with
   the window W(i) = i-lo .. i+hi inside i's group and w the weight of each term:

       forward    d_i = k + w * s_i,  s_i = sum_{j in W(i)} x_j^2,   y_i = x_i * d_i^-beta
       backward   t_c = g_c * x_c * d_c^(-beta-1)
                  dx_i = g_i * d_i^-beta - 2 w beta x_i * sum_{c : i in W(c)} t_c

   With `relu`, x is replaced by max(x, 0) first and no gradient reaches negative inputs.
   Tensors hold float32 or bfloat16 (`is_bf16`); arithmetic is in float32. */

#include <math.h>
#include <stdint.h>
#include <string.h>

typedef uint16_t bf16;

static inline float from_bf16(bf16 v) {
    union { uint32_t u; float f; } c;
    c.u = (uint32_t)v << 16;
    return c.f;
}

static inline bf16 to_bf16(float f) {   /* round to nearest even; NaN stays NaN */
    union { uint32_t u; float f; } c;
    c.f = f;
    uint32_t rounded = (c.u + 0x7fffu + ((c.u >> 16) & 1u)) >> 16;
    uint32_t quiet_nan = (c.u >> 16) | 0x40u;
    return (bf16)((c.u & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded);
}

static inline void load_row(const void *src, int is_bf16, int64_t at, int n, float *row) {
    if (is_bf16) {
        const bf16 *s = (const bf16 *)src + at;
        for (int i = 0; i < n; i++) row[i] = from_bf16(s[i]);
    } else {
        memcpy(row, (const float *)src + at, (size_t)n * sizeof(float));
    }
}

static inline void store_row(void *dst, int is_bf16, int64_t at, int n, const float *row) {
    if (is_bf16) {
        bf16 *d = (bf16 *)dst + at;
        for (int i = 0; i < n; i++) d[i] = to_bf16(row[i]);
    } else {
        memcpy((float *)dst + at, row, (size_t)n * sizeof(float));
    }
}

/* out[i] = sum over i's window (lo channels before i, hi after, inside its group) of the
   channels held in padded: per group, lo zeros, its channels, hi zeros. The padded copies
   are written for a whole block of rows before any is read here: a read at an offset that
   straddles two recent vector stores would otherwise wait for them (store forwarding
   fails on misaligned reloads), which cost more than all the arithmetic. */
static inline void window_sums(const float *restrict padded, float *restrict out, int channels,
                               int groups, int lo, int hi) {
    int per_group = channels / groups, taps = lo + hi + 1;
    for (int g = 0; g < groups; g++) {
        const float *pg = padded + g * (per_group + lo + hi);
        float *og = out + g * per_group;
        for (int i = 0; i < per_group; i++) og[i] = pg[i];
        for (int j = 1; j < taps; j++)
            for (int i = 0; i < per_group; i++) og[i] += pg[i + j];
    }
}

/* padded (see window_sums) from v; `before` zeros ahead of each group, `after` behind */
static inline void pad_groups(const float *restrict v, float *restrict padded, int channels,
                              int groups, int before, int after) {
    int per_group = channels / groups;
    for (int g = 0; g < groups; g++) {
        float *pg = padded + g * (per_group + before + after);
        for (int i = 0; i < before; i++) pg[i] = 0.0f;
        for (int i = 0; i < per_group; i++) pg[before + i] = v[g * per_group + i];
        for (int i = 0; i < after; i++) pg[before + per_group + i] = 0.0f;
    }
}

/* d^-beta and d^(-beta-1), from q = 1/sqrt(d): for the paper's beta = 3/4, d^-beta = q * sqrt(q)
   (no power), and dividing by d is multiplying by q * q. */
static inline float inverse_power(float d, float beta, float *over_d) {
    float q = 1.0f / sqrtf(d);
    float p = beta == 0.75f ? q * sqrtf(q) : powf(d, -beta);
    if (over_d) *over_d = p * q * q;
    return p;
}

static inline float rectified(float v, int relu) { return relu && v < 0.0f ? 0.0f : v; }

/* Rows go in blocks of BLOCK (see window_sums). The block functions are inlined into each
   call below, so that for the networks' own shapes every loop has a constant trip count and
   compiles to straight vector code without the checks and remainders that a row of only 64
   channels would otherwise pay for each loop. */
#define BLOCK 16
#define INLINE static inline __attribute__((always_inline)) void

INLINE forward_block(const void *x, void *y, void *s_out, int64_t row, int rows, int channels,
                     int groups, int lo, int hi, float k, float w, float beta, int relu,
                     int is_bf16) {
    int width = channels + groups * (lo + hi);
    float xr[BLOCK][channels], sq[BLOCK][channels], s[BLOCK][channels];
    float padded[BLOCK][width];
    for (int b = 0; b < rows; b++) {
        load_row(x, is_bf16, (row + b) * channels, channels, xr[b]);
        for (int i = 0; i < channels; i++) {
            xr[b][i] = rectified(xr[b][i], relu);
            sq[b][i] = xr[b][i] * xr[b][i];
        }
        pad_groups(sq[b], padded[b], channels, groups, lo, hi);
    }
    for (int b = 0; b < rows; b++) {
        window_sums(padded[b], s[b], channels, groups, lo, hi);
        for (int i = 0; i < channels; i++)   /* y, over x's squares now unused */
            sq[b][i] = xr[b][i] * inverse_power(k + w * s[b][i], beta, NULL);
        store_row(y, is_bf16, (row + b) * channels, channels, sq[b]);
        store_row(s_out, is_bf16, (row + b) * channels, channels, s[b]);
    }
}

INLINE backward_block(const void *grad, const void *x, const void *s_in, void *dx, int64_t row,
                      int rows, int channels, int groups, int lo, int hi, float k, float w,
                      float beta, int relu, int is_bf16) {
    int width = channels + groups * (lo + hi);
    float g[BLOCK][channels], xr[BLOCK][channels], p[BLOCK][channels], t[BLOCK][channels];
    float padded[BLOCK][width];
    for (int b = 0; b < rows; b++) {
        int64_t at = (row + b) * channels;
        load_row(grad, is_bf16, at, channels, g[b]);
        load_row(x, is_bf16, at, channels, xr[b]);
        load_row(s_in, is_bf16, at, channels, t[b]);
        for (int i = 0; i < channels; i++) {
            float p_over_d;
            p[b][i] = inverse_power(k + w * t[b][i], beta, &p_over_d);
            t[b][i] = g[b][i] * rectified(xr[b][i], relu) * p_over_d;
        }
        /* the transposed window: channel i receives from every c whose window holds i */
        pad_groups(t[b], padded[b], channels, groups, hi, lo);
    }
    for (int b = 0; b < rows; b++) {
        window_sums(padded[b], t[b], channels, groups, hi, lo);
        for (int i = 0; i < channels; i++) {
            float v = g[b][i] * p[b][i] - 2.0f * w * beta * rectified(xr[b][i], relu) * t[b][i];
            t[b][i] = relu && !(xr[b][i] > 0.0f) ? 0.0f : v;
        }
        store_row(dx, is_bf16, (row + b) * channels, channels, t[b]);
    }
}

/* Calls BLOCK_CALL with the shape as constants where it is one of the networks' (the CIFAR
   nets' 64 channels, window 9; the paper's 96 and 256 in two towers, window 5). */
#define FOR_EACH_SHAPE(BLOCK_CALL)                                                          \
    if (channels == 64 && groups == 1 && lo == 4 && hi == 4) BLOCK_CALL(64, 1, 4, 4);        \
    else if (channels == 96 && groups == 2 && lo == 2 && hi == 2) BLOCK_CALL(96, 2, 2, 2);   \
    else if (channels == 256 && groups == 2 && lo == 2 && hi == 2) BLOCK_CALL(256, 2, 2, 2); \
    else BLOCK_CALL(channels, groups, lo, hi)

void lrn_forward(const void *x, void *y, void *s_out, int64_t rows, int channels, int groups,
                 int lo, int hi, float k, float w, float beta, int relu, int is_bf16,
                 int threads) {
#define FORWARD(C, G, LO, HI) \
    forward_block(x, y, s_out, row, n, C, G, LO, HI, k, w, beta, relu, is_bf16)
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t row = 0; row < rows; row += BLOCK) {
        int n = rows - row < BLOCK ? (int)(rows - row) : BLOCK;
        FOR_EACH_SHAPE(FORWARD);
    }
}

void lrn_backward(const void *grad, const void *x, const void *s_in, void *dx, int64_t rows,
                  int channels, int groups, int lo, int hi, float k, float w, float beta,
                  int relu, int is_bf16, int threads) {
#define BACKWARD(C, G, LO, HI) \
    backward_block(grad, x, s_in, dx, row, n, C, G, LO, HI, k, w, beta, relu, is_bf16)
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t row = 0; row < rows; row += BLOCK) {
        int n = rows - row < BLOCK ? (int)(rows - row) : BLOCK;
        FOR_EACH_SHAPE(BACKWARD);
    }
}
