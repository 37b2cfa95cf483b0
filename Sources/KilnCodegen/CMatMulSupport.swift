/// The C every CPU translation unit with a `CMatMulTemplate` kernel carries once: scratch
/// allocation, the 6x16 microkernel (AVX2/FMA when the object is built for x86-64-v3, portable C
/// otherwise) and the loop over a packed block's micro-panels.
enum CMatMulSupport {
  static let source = #"""

    #include <stdlib.h>
    #if defined(__AVX2__) && defined(__FMA__)
    #include <immintrin.h>
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
      __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps(), c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
      __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps(), c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
      __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps(), c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
      for (int64_t k = 0; k < kc; ++k) {
        const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        __m256 x = _mm256_broadcast_ss(a);
        c00 = _mm256_fmadd_ps(x, b0, c00); c01 = _mm256_fmadd_ps(x, b1, c01);
        x = _mm256_broadcast_ss(a + 1);
        c10 = _mm256_fmadd_ps(x, b0, c10); c11 = _mm256_fmadd_ps(x, b1, c11);
        x = _mm256_broadcast_ss(a + 2);
        c20 = _mm256_fmadd_ps(x, b0, c20); c21 = _mm256_fmadd_ps(x, b1, c21);
        x = _mm256_broadcast_ss(a + 3);
        c30 = _mm256_fmadd_ps(x, b0, c30); c31 = _mm256_fmadd_ps(x, b1, c31);
        x = _mm256_broadcast_ss(a + 4);
        c40 = _mm256_fmadd_ps(x, b0, c40); c41 = _mm256_fmadd_ps(x, b1, c41);
        x = _mm256_broadcast_ss(a + 5);
        c50 = _mm256_fmadd_ps(x, b0, c50); c51 = _mm256_fmadd_ps(x, b1, c51);
        a += 6;
        b += ldb;
      }
      if (rows == 6 && cols == 16) {
        float *r0 = c, *r1 = c + ldc, *r2 = c + 2 * ldc, *r3 = c + 3 * ldc, *r4 = c + 4 * ldc, *r5 = c + 5 * ldc;
        if (accumulate) {
          c00 = _mm256_add_ps(c00, _mm256_loadu_ps(r0)); c01 = _mm256_add_ps(c01, _mm256_loadu_ps(r0 + 8));
          c10 = _mm256_add_ps(c10, _mm256_loadu_ps(r1)); c11 = _mm256_add_ps(c11, _mm256_loadu_ps(r1 + 8));
          c20 = _mm256_add_ps(c20, _mm256_loadu_ps(r2)); c21 = _mm256_add_ps(c21, _mm256_loadu_ps(r2 + 8));
          c30 = _mm256_add_ps(c30, _mm256_loadu_ps(r3)); c31 = _mm256_add_ps(c31, _mm256_loadu_ps(r3 + 8));
          c40 = _mm256_add_ps(c40, _mm256_loadu_ps(r4)); c41 = _mm256_add_ps(c41, _mm256_loadu_ps(r4 + 8));
          c50 = _mm256_add_ps(c50, _mm256_loadu_ps(r5)); c51 = _mm256_add_ps(c51, _mm256_loadu_ps(r5 + 8));
        }
        _mm256_storeu_ps(r0, c00); _mm256_storeu_ps(r0 + 8, c01);
        _mm256_storeu_ps(r1, c10); _mm256_storeu_ps(r1 + 8, c11);
        _mm256_storeu_ps(r2, c20); _mm256_storeu_ps(r2 + 8, c21);
        _mm256_storeu_ps(r3, c30); _mm256_storeu_ps(r3 + 8, c31);
        _mm256_storeu_ps(r4, c40); _mm256_storeu_ps(r4 + 8, c41);
        _mm256_storeu_ps(r5, c50); _mm256_storeu_ps(r5 + 8, c51);
        return;
      }
      float tile[6][16] __attribute__((aligned(32)));
      _mm256_store_ps(tile[0], c00); _mm256_store_ps(tile[0] + 8, c01);
      _mm256_store_ps(tile[1], c10); _mm256_store_ps(tile[1] + 8, c11);
      _mm256_store_ps(tile[2], c20); _mm256_store_ps(tile[2] + 8, c21);
      _mm256_store_ps(tile[3], c30); _mm256_store_ps(tile[3] + 8, c31);
      _mm256_store_ps(tile[4], c40); _mm256_store_ps(tile[4] + 8, c41);
      _mm256_store_ps(tile[5], c50); _mm256_store_ps(tile[5] + 8, c51);
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
      __m256 c0 = _mm256_setzero_ps(), c1 = _mm256_setzero_ps();
      for (int64_t k = 0; k < kc; ++k) {
        const __m256 x = _mm256_broadcast_ss(a);
        c0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b), c0);
        c1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b + 8), c1);
        a += 6;
        b += ldb;
      }
      _mm256_store_ps(row, c0);
      _mm256_store_ps(row + 8, c1);
      for (int64_t j = 0; j < cols; ++j) c[j] = accumulate ? c[j] + row[j] : row[j];
    }

    /* At most 8 columns (the last micro-panel of a ragged N, such as 7x7 = 49 outputs): half the
     * 6x16 microkernel's work. (The portable object runs the 6x16 one.) */
    static inline void kiln_gemm_micro_narrow(int64_t kc, const float *restrict a, const float *restrict b, int64_t ldb,
                                              float *restrict c, int64_t ldc, int64_t rows, int64_t cols, int accumulate) {
      float tile[6][8] __attribute__((aligned(32)));
      __m256 c0 = _mm256_setzero_ps(), c1 = _mm256_setzero_ps(), c2 = _mm256_setzero_ps();
      __m256 c3 = _mm256_setzero_ps(), c4 = _mm256_setzero_ps(), c5 = _mm256_setzero_ps();
      for (int64_t k = 0; k < kc; ++k) {
        const __m256 b0 = _mm256_loadu_ps(b);
        c0 = _mm256_fmadd_ps(_mm256_broadcast_ss(a), b0, c0);
        c1 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 1), b0, c1);
        c2 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 2), b0, c2);
        c3 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 3), b0, c3);
        c4 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 4), b0, c4);
        c5 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 5), b0, c5);
        a += 6;
        b += ldb;
      }
      _mm256_store_ps(tile[0], c0); _mm256_store_ps(tile[1], c1); _mm256_store_ps(tile[2], c2);
      _mm256_store_ps(tile[3], c3); _mm256_store_ps(tile[4], c4); _mm256_store_ps(tile[5], c5);
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
