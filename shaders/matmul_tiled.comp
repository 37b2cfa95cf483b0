#version 450
// Kiln's register-tiled matrix multiplication: C[b, m, n] = epilogue(sum_k A[b, m, k] * B[b, k, n]).
//
// Each invocation computes a TM x TN tile of C in registers with no shared memory and no barriers
// (what lavapipe runs fastest: barriers there are coroutine switches), 64 invocations per
// workgroup, workgroups folded into x and y. The compiler instantiates this template per kernel:
// it bakes the sizes and the affine index maps of A and B (any strides, so transposed operands
// and broadcast batches need no copies) and splices the fused epilogue (bias, activation,
// residual, casts: any elementwise expression of the output coordinates) at the end.
#extension GL_EXT_shader_explicit_arithmetic_types : require
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_shader_8bit_storage : require
layout(local_size_x = 64) in;
@BINDINGS@
@HELPERS@
const int M = @M@;
const int N = @N@;
const int K = @K@;
const int BATCH = @BATCH@;
const int TM = 4;
const int TN = 4;
const int TILES_M = (M + TM - 1) / TM;
const int TILES_N = (N + TN - 1) / TN;

void main() {
  uint group = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  int tile = int(group) * 64 + int(gl_LocalInvocationID.x);
  if (tile >= TILES_M * TILES_N * BATCH) return;
  int batch = tile / (TILES_M * TILES_N);
  int within = tile - batch * (TILES_M * TILES_N);
  int m0 = (within / TILES_N) * TM;
  int n0 = (within - (within / TILES_N) * TILES_N) * TN;
@BATCH_COORDINATES@
  int aBase = @A_BASE@;
  int bBase = @B_BASE@;
  float acc[TM][TN];
  for (int i = 0; i < TM; ++i) for (int j = 0; j < TN; ++j) acc[i][j] = 0.0;
  for (int k = 0; k < K; ++k) {
    float av[TM];
    float bv[TN];
    for (int i = 0; i < TM; ++i) av[i] = (m0 + i < M) ? float(@A@[aBase + (m0 + i) * @A_M@ + k * @A_K@]) : 0.0;
    for (int j = 0; j < TN; ++j) bv[j] = (n0 + j < N) ? float(@B@[bBase + k * @B_K@ + (n0 + j) * @B_N@]) : 0.0;
    for (int i = 0; i < TM; ++i) for (int j = 0; j < TN; ++j) acc[i][j] += av[i] * bv[j];
  }
  for (int i = 0; i < TM; ++i) {
    for (int j = 0; j < TN; ++j) {
      if (m0 + i >= M || n0 + j >= N) continue;
      int cm = m0 + i;
      int cn = n0 + j;
      float accumulated = acc[i][j];
@EPILOGUE@
    }
  }
}
