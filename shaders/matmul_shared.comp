#version 450
// Kiln's shared-memory contraction for GPUs: out[outer, m, n] = epilogue(sum_k A(outer, m, k) * B(outer, k, n)).
//
// Each workgroup computes a BM x BN block of the output. Per step of BK along the reduction, its
// invocations stage A's BM x BK and B's BK x BN tiles in shared memory (consecutive invocations
// read consecutive k of A and consecutive n of B, so global reads coalesce for row-major weights
// and NCHW activations), then each invocation multiplies a TM x TN register block out of them.
// An invocation's rows and columns are strided by BM / TM and BN / TN, so the invocations of a
// warp read consecutive shared-memory words of B and one broadcast word of A.
//
// The tile sizes are specialization constants: the compiler picks them per kernel from the GPU
// class's tuning table and writes them into the bundle; the driver specializes (and unrolls the
// register loops) when it builds the pipeline. The workgroup has (BM / TM) * (BN / TN) invocations.
//
// Split-K (when the output has too few blocks to fill the device): SPLIT workgroups share each
// block, each summing one slice of the reduction into the scratch buffer (PHASE 0); a second
// dispatch of the same module (PHASE 1) adds the slices and applies the epilogue.
//
// The compiler instantiates the operand loaders kiln_a / kiln_b and the epilogue kiln_store per
// kernel exactly as for matmul_tiled.comp, and the index helpers kiln_load_a / kiln_load_b /
// kiln_store_at that map (batch, m, k, n) to the kernel's coordinates.
#extension GL_EXT_shader_explicit_arithmetic_types : require
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_shader_8bit_storage : require
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const int BM = 64;
layout(constant_id = 2) const int BN = 64;
layout(constant_id = 3) const int BK = 16;
layout(constant_id = 4) const int TM = 4;
layout(constant_id = 5) const int TN = 4;
layout(constant_id = 6) const int SPLIT = 1;
layout(constant_id = 7) const int PHASE = 0;
@BINDINGS@
@HELPERS@
const int M = @M@;
const int N = @N@;
const int K = @K@;
const int BATCH = @BATCH@;
const int RM = BM / TM;
const int RN = BN / TN;
const int THREADS = RM * RN;
const int BLOCKS_M = (M + BM - 1) / BM;
const int BLOCKS_N = (N + BN - 1) / BN;
// Each split-K slice covers a whole number of BK steps.
const int SLICE = ((K + SPLIT - 1) / SPLIT + BK - 1) / BK * BK;
@OPERANDS@

// A's rows are padded by one word, so the BK-strided stores of a warp land in distinct banks.
const int LDA = BM + 1;
shared float tileA[BK * LDA];
shared float tileB[BK * BN];

void main() {
  int tid = int(gl_LocalInvocationID.x);
  int group = int(gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x);
@REDUCE_PHASE@
  int nb = group % BLOCKS_N;
  int rest = group / BLOCKS_N;
  int mb = rest % BLOCKS_M;
  rest /= BLOCKS_M;
  int batch = rest % BATCH;
  int slice = rest / BATCH;
  // Uniform across the workgroup, so no invocation skips a barrier.
  if (slice >= SPLIT) return;
  int m0 = mb * BM;
  int n0 = nb * BN;
  int kBegin = slice * SLICE;
  int kEnd = min(K, kBegin + SLICE);
  int ty = tid / RN;
  int tx = tid % RN;
  float acc[TM * TN];
  for (int i = 0; i < TM * TN; ++i) acc[i] = 0.0;
  for (int k0 = kBegin; k0 < kEnd; k0 += BK) {
    for (int e = tid; e < BM * BK; e += THREADS) {
      int kk = e % BK;
      int mm = e / BK;
      float v = 0.0;
      if (m0 + mm < M && k0 + kk < kEnd) v = kiln_load_a(batch, m0 + mm, k0 + kk);
      tileA[kk * LDA + mm] = v;
    }
    for (int e = tid; e < BK * BN; e += THREADS) {
      int nn = e % BN;
      int kk = e / BN;
      float v = 0.0;
      if (n0 + nn < N && k0 + kk < kEnd) v = kiln_load_b(batch, k0 + kk, n0 + nn);
      tileB[kk * BN + nn] = v;
    }
    barrier();
    for (int kk = 0; kk < BK; ++kk) {
      float a[TM];
      float b[TN];
      for (int i = 0; i < TM; ++i) a[i] = tileA[kk * LDA + ty + i * RM];
      for (int j = 0; j < TN; ++j) b[j] = tileB[kk * BN + tx + j * RN];
      for (int i = 0; i < TM; ++i) {
        for (int j = 0; j < TN; ++j) acc[i * TN + j] += a[i] * b[j];
      }
    }
    barrier();
  }
  for (int i = 0; i < TM; ++i) {
    int m = m0 + ty + i * RM;
    if (m >= M) break;
    for (int j = 0; j < TN; ++j) {
      int n = n0 + tx + j * RN;
      if (n >= N) break;
@STORE@
    }
  }
}
