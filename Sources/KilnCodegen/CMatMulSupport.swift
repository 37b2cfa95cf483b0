/// The C every CPU translation unit with a `CMatMulTemplate` kernel carries once: scratch
/// allocation, the 6x16 microkernel (AVX2/FMA when the object is built for x86-64-v3, portable C
/// otherwise) and the loop over a packed block's micro-panels.
enum CMatMulSupport {
  static let source = #"""

    #include <stdlib.h>
    #if defined(__AVX2__) && defined(__FMA__)
    /* The few 8-lane operations the kernels use. With clang they are its vector extensions and
     * builtins: parsing <immintrin.h> took clang 0.2-0.25 s per object, a tenth of ResNet-50's CPU
     * build. Other compilers get the same names over the intrinsics. */
    #if defined(__clang__)
    typedef float kiln_f8 __attribute__((vector_size(32), aligned(32)));
    typedef float kiln_f8u __attribute__((vector_size(32), aligned(4), may_alias));
    typedef int kiln_i8 __attribute__((vector_size(32), aligned(32)));
    static inline kiln_f8 kiln_f8_zero(void) { return (kiln_f8){0, 0, 0, 0, 0, 0, 0, 0}; }
    static inline kiln_f8 kiln_f8_broadcast(const float *p) { const float x = *p; return (kiln_f8){x, x, x, x, x, x, x, x}; }
    static inline kiln_f8 kiln_f8_loadu(const float *p) { return *(const kiln_f8u *)p; }
    static inline void kiln_f8_storeu(float *p, kiln_f8 v) { *(kiln_f8u *)p = v; }
    static inline void kiln_f8_store(float *p, kiln_f8 v) { *(kiln_f8 *)p = v; }
    static inline kiln_f8 kiln_f8_add(kiln_f8 a, kiln_f8 b) { return a + b; }
    static inline kiln_f8 kiln_f8_fma(kiln_f8 a, kiln_f8 b, kiln_f8 c) { return __builtin_ia32_vfmaddps256(a, b, c); }
    static inline kiln_i8 kiln_i8_zero(void) { return (kiln_i8){0, 0, 0, 0, 0, 0, 0, 0}; }
    static inline kiln_i8 kiln_i8_set1(int x) { return (kiln_i8){x, x, x, x, x, x, x, x}; }
    static inline kiln_i8 kiln_i8_load(const kiln_i8 *p) { return *p; }
    static inline kiln_i8 kiln_i8_add(kiln_i8 a, kiln_i8 b) { return a + b; }
    static inline kiln_i8 kiln_i8_and(kiln_i8 a, kiln_i8 b) { return a & b; }
    static inline kiln_i8 kiln_i8_xor(kiln_i8 a, kiln_i8 b) { return a ^ b; }
    static inline kiln_i8 kiln_i8_cmpeq(kiln_i8 a, kiln_i8 b) { return a == b; }
    static inline kiln_i8 kiln_i8_cmpgt(kiln_i8 a, kiln_i8 b) { return a > b; }
    static inline kiln_f8 kiln_i8_as_f8(kiln_i8 a) { return (kiln_f8)a; }
    static inline int kiln_i8_all(kiln_i8 a) { return __builtin_ia32_movmskps256(kiln_i8_as_f8(a)) == 0xff; }
    /* max(acc, x) per lane, NaN from either side kept (NaN in acc stays; a NaN x replaces acc). */
    static inline kiln_f8 kiln_f8_max_nan(kiln_f8 acc, kiln_f8 x) {
      const kiln_f8 m = __builtin_ia32_maxps256(x, acc);
      const kiln_i8 nan = x != x;
      return (kiln_f8)(((kiln_i8)m & ~nan) | ((kiln_i8)x & nan));
    }
    /* Elements 0, 2, 4, 6 of a and 1, 3, 5, 7 of b. */
    static inline kiln_f8 kiln_f8_even(kiln_f8 a, kiln_f8 b) { return __builtin_shufflevector(a, b, 0, 2, 4, 6, 9, 11, 13, 15); }
    #define kiln_f8_gather(src, base, index, mask, scale) \
      ((kiln_f8)__builtin_ia32_gatherd_ps256((src), (const float *)(base), (index), (mask), (scale)))
    #else
    #include <immintrin.h>
    typedef __m256 kiln_f8;
    typedef __m256i kiln_i8;
    #define kiln_f8_zero _mm256_setzero_ps
    #define kiln_f8_broadcast _mm256_broadcast_ss
    #define kiln_f8_loadu _mm256_loadu_ps
    #define kiln_f8_storeu _mm256_storeu_ps
    #define kiln_f8_store _mm256_store_ps
    #define kiln_f8_add _mm256_add_ps
    #define kiln_f8_fma _mm256_fmadd_ps
    #define kiln_i8_zero _mm256_setzero_si256
    #define kiln_i8_set1 _mm256_set1_epi32
    #define kiln_i8_load _mm256_load_si256
    #define kiln_i8_add _mm256_add_epi32
    #define kiln_i8_and _mm256_and_si256
    #define kiln_i8_xor _mm256_xor_si256
    #define kiln_i8_cmpeq _mm256_cmpeq_epi32
    #define kiln_i8_cmpgt _mm256_cmpgt_epi32
    #define kiln_i8_as_f8 _mm256_castsi256_ps
    #define kiln_f8_gather _mm256_mask_i32gather_ps
    #define kiln_i8_all(a) (_mm256_movemask_ps(_mm256_castsi256_ps(a)) == 0xff)
    static inline __m256 kiln_f8_max_nan(__m256 acc, __m256 x) {
      return _mm256_blendv_ps(_mm256_max_ps(x, acc), x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
    }
    static inline __m256 kiln_f8_even(__m256 a, __m256 b) {
      return _mm256_permutevar8x32_ps(_mm256_blend_ps(a, b, 0xaa), _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
    }
    #endif
    #endif

    /* Packed panels: A as MR-row panels (kc x 6, row-interleaved), B as NR-column panels (kc x 16). */
    static float *kiln_gemm_alloc(int64_t floats) {
      size_t bytes = ((size_t)floats * sizeof(float) + 63) & ~(size_t)63;
      return (float *)aligned_alloc(64, bytes ? bytes : 64);
    }

    static void kiln_gemm_free(float *p) { free(p); }

    /* c[rows x cols] (row stride ldc) = (accumulate ? c : 0) + a-panel x b-panel over kc; the
     * b-panel's 16 columns of step k start ldb floats after those of step k - 1 (16 when packed). */
    static inline void kiln_gemm_micro(int64_t kc, const float *restrict a, const float *restrict b, int64_t ldb,
                                       float *restrict c, int64_t ldc, int64_t rows, int64_t cols, int accumulate) {
    #if defined(__AVX2__) && defined(__FMA__)
      kiln_f8 c00 = kiln_f8_zero(), c01 = kiln_f8_zero(), c10 = kiln_f8_zero(), c11 = kiln_f8_zero();
      kiln_f8 c20 = kiln_f8_zero(), c21 = kiln_f8_zero(), c30 = kiln_f8_zero(), c31 = kiln_f8_zero();
      kiln_f8 c40 = kiln_f8_zero(), c41 = kiln_f8_zero(), c50 = kiln_f8_zero(), c51 = kiln_f8_zero();
      for (int64_t k = 0; k < kc; ++k) {
        const kiln_f8 b0 = kiln_f8_loadu(b), b1 = kiln_f8_loadu(b + 8);
        kiln_f8 x = kiln_f8_broadcast(a);
        c00 = kiln_f8_fma(x, b0, c00); c01 = kiln_f8_fma(x, b1, c01);
        x = kiln_f8_broadcast(a + 1);
        c10 = kiln_f8_fma(x, b0, c10); c11 = kiln_f8_fma(x, b1, c11);
        x = kiln_f8_broadcast(a + 2);
        c20 = kiln_f8_fma(x, b0, c20); c21 = kiln_f8_fma(x, b1, c21);
        x = kiln_f8_broadcast(a + 3);
        c30 = kiln_f8_fma(x, b0, c30); c31 = kiln_f8_fma(x, b1, c31);
        x = kiln_f8_broadcast(a + 4);
        c40 = kiln_f8_fma(x, b0, c40); c41 = kiln_f8_fma(x, b1, c41);
        x = kiln_f8_broadcast(a + 5);
        c50 = kiln_f8_fma(x, b0, c50); c51 = kiln_f8_fma(x, b1, c51);
        a += 6;
        b += ldb;
      }
      if (rows == 6 && cols == 16) {
        float *r0 = c, *r1 = c + ldc, *r2 = c + 2 * ldc, *r3 = c + 3 * ldc, *r4 = c + 4 * ldc, *r5 = c + 5 * ldc;
        if (accumulate) {
          c00 = kiln_f8_add(c00, kiln_f8_loadu(r0)); c01 = kiln_f8_add(c01, kiln_f8_loadu(r0 + 8));
          c10 = kiln_f8_add(c10, kiln_f8_loadu(r1)); c11 = kiln_f8_add(c11, kiln_f8_loadu(r1 + 8));
          c20 = kiln_f8_add(c20, kiln_f8_loadu(r2)); c21 = kiln_f8_add(c21, kiln_f8_loadu(r2 + 8));
          c30 = kiln_f8_add(c30, kiln_f8_loadu(r3)); c31 = kiln_f8_add(c31, kiln_f8_loadu(r3 + 8));
          c40 = kiln_f8_add(c40, kiln_f8_loadu(r4)); c41 = kiln_f8_add(c41, kiln_f8_loadu(r4 + 8));
          c50 = kiln_f8_add(c50, kiln_f8_loadu(r5)); c51 = kiln_f8_add(c51, kiln_f8_loadu(r5 + 8));
        }
        kiln_f8_storeu(r0, c00); kiln_f8_storeu(r0 + 8, c01);
        kiln_f8_storeu(r1, c10); kiln_f8_storeu(r1 + 8, c11);
        kiln_f8_storeu(r2, c20); kiln_f8_storeu(r2 + 8, c21);
        kiln_f8_storeu(r3, c30); kiln_f8_storeu(r3 + 8, c31);
        kiln_f8_storeu(r4, c40); kiln_f8_storeu(r4 + 8, c41);
        kiln_f8_storeu(r5, c50); kiln_f8_storeu(r5 + 8, c51);
        return;
      }
      float tile[6][16] __attribute__((aligned(32)));
      kiln_f8_store(tile[0], c00); kiln_f8_store(tile[0] + 8, c01);
      kiln_f8_store(tile[1], c10); kiln_f8_store(tile[1] + 8, c11);
      kiln_f8_store(tile[2], c20); kiln_f8_store(tile[2] + 8, c21);
      kiln_f8_store(tile[3], c30); kiln_f8_store(tile[3] + 8, c31);
      kiln_f8_store(tile[4], c40); kiln_f8_store(tile[4] + 8, c41);
      kiln_f8_store(tile[5], c50); kiln_f8_store(tile[5] + 8, c51);
    #else
      float tile[6][16];
      for (int i = 0; i < 6; ++i)
        for (int j = 0; j < 16; ++j) tile[i][j] = 0.0f;
      for (int64_t k = 0; k < kc; ++k) {
        for (int i = 0; i < 6; ++i) {
          const float x = a[i];
          for (int j = 0; j < 16; ++j) tile[i][j] += x * b[j];
        }
        a += 6;
        b += ldb;
      }
    #endif
      for (int64_t i = 0; i < rows; ++i) {
        float *row = c + i * ldc;
        if (accumulate) {
          for (int64_t j = 0; j < cols; ++j) row[j] += tile[i][j];
        } else {
          for (int64_t j = 0; j < cols; ++j) row[j] = tile[i][j];
        }
      }
    }

    #if defined(__AVX2__) && defined(__FMA__)
    /* One row of A (a matrix-vector product, or the last row of an M block): the 6-row
     * microkernel would do six times the work for it. (The portable object runs the 6x16 one.) */
    static inline void kiln_gemm_micro_row(int64_t kc, const float *restrict a, const float *restrict b, int64_t ldb,
                                           float *restrict c, int64_t cols, int accumulate) {
      float row[16] __attribute__((aligned(32)));
      kiln_f8 c0 = kiln_f8_zero(), c1 = kiln_f8_zero();
      for (int64_t k = 0; k < kc; ++k) {
        const kiln_f8 x = kiln_f8_broadcast(a);
        c0 = kiln_f8_fma(x, kiln_f8_loadu(b), c0);
        c1 = kiln_f8_fma(x, kiln_f8_loadu(b + 8), c1);
        a += 6;
        b += ldb;
      }
      kiln_f8_store(row, c0);
      kiln_f8_store(row + 8, c1);
      for (int64_t j = 0; j < cols; ++j) c[j] = accumulate ? c[j] + row[j] : row[j];
    }

    /* At most 8 columns (the last micro-panel of a ragged N, such as 7x7 = 49 outputs): half the
     * 6x16 microkernel's work. (The portable object runs the 6x16 one.) */
    static inline void kiln_gemm_micro_narrow(int64_t kc, const float *restrict a, const float *restrict b, int64_t ldb,
                                              float *restrict c, int64_t ldc, int64_t rows, int64_t cols, int accumulate) {
      float tile[6][8] __attribute__((aligned(32)));
      kiln_f8 c0 = kiln_f8_zero(), c1 = kiln_f8_zero(), c2 = kiln_f8_zero();
      kiln_f8 c3 = kiln_f8_zero(), c4 = kiln_f8_zero(), c5 = kiln_f8_zero();
      for (int64_t k = 0; k < kc; ++k) {
        const kiln_f8 b0 = kiln_f8_loadu(b);
        c0 = kiln_f8_fma(kiln_f8_broadcast(a), b0, c0);
        c1 = kiln_f8_fma(kiln_f8_broadcast(a + 1), b0, c1);
        c2 = kiln_f8_fma(kiln_f8_broadcast(a + 2), b0, c2);
        c3 = kiln_f8_fma(kiln_f8_broadcast(a + 3), b0, c3);
        c4 = kiln_f8_fma(kiln_f8_broadcast(a + 4), b0, c4);
        c5 = kiln_f8_fma(kiln_f8_broadcast(a + 5), b0, c5);
        a += 6;
        b += ldb;
      }
      kiln_f8_store(tile[0], c0); kiln_f8_store(tile[1], c1); kiln_f8_store(tile[2], c2);
      kiln_f8_store(tile[3], c3); kiln_f8_store(tile[4], c4); kiln_f8_store(tile[5], c5);
      for (int64_t i = 0; i < rows; ++i) {
        float *row = c + i * ldc;
        for (int64_t j = 0; j < cols; ++j) row[j] = accumulate ? row[j] + tile[i][j] : tile[i][j];
      }
    }
    #endif

    /* Runs a packed rows x cols block over kc into c (row stride ldc): B micro-panels outer (each
     * stays in L1), A micro-panels inner (the block stays in L2). Consecutive micro-panels are
     * astride (A) and bstride (B) floats apart, and a B micro-panel's rows ldb floats apart: packed
     * per block that is kc x width and 16, pre-packed at compile time K x width and 16, and read
     * in place from a row-major B 16 and its row stride. Not inlined: one copy of the microkernel
     * per translation unit keeps the C compiler fast on models with many kernels. */
    __attribute__((noinline)) static void kiln_gemm_block(int64_t kc, const float *restrict packa, int64_t astride,
                                const float *restrict packb, int64_t bstride, int64_t ldb, float *restrict c,
                                int64_t ldc, int64_t rows_total, int64_t cols_total, int accumulate) {
      for (int64_t j = 0; j < cols_total; j += 16) {
        const float *bp = packb + (j / 16) * bstride;
        const int64_t cols = cols_total - j < 16 ? cols_total - j : 16;
        for (int64_t i = 0; i < rows_total; i += 6) {
          const float *ap = packa + (i / 6) * astride;
          const int64_t rows = rows_total - i < 6 ? rows_total - i : 6;
    #if defined(__AVX2__) && defined(__FMA__)
          if (rows == 1) {
            kiln_gemm_micro_row(kc, ap, bp, ldb, c + i * ldc + j, cols, accumulate);
            continue;
          }
          if (cols <= 8) {
            kiln_gemm_micro_narrow(kc, ap, bp, ldb, c + i * ldc + j, ldc, rows, cols, accumulate);
            continue;
          }
    #endif
          kiln_gemm_micro(kc, ap, bp, ldb, c + i * ldc + j, ldc, rows, cols, accumulate);
        }
      }
    }

    """#
}
