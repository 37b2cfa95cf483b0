#version 450
// Kiln's register-blocked contraction: out[outer, m, n] = epilogue(sum_k A(outer, m, k) * B(outer, k, n)).
//
// Covers MatMul/Gemm and convolutions (implicit GEMM: the im2col index map lives in B's loads).
// Each invocation computes a TM x TN block of outputs in registers with no shared memory and no
// barriers (what lavapipe runs fastest: barriers there are coroutine switches). The lanes of a
// workgroup share one m block and take consecutive n blocks, so A's loads (the weights of a conv)
// are uniform across the workgroup. The compiler instantiates this template per kernel: it
// generates the operand loaders kiln_a / kiln_b (any affine or clamped-and-masked index, so
// transposed operands, broadcast batches and padded, strided, dilated windows need no copies),
// the reduction loops, the unrolled block and the fused epilogue kiln_store (bias, activation,
// residual, casts: any elementwise expression of the output coordinates).
#extension GL_EXT_shader_explicit_arithmetic_types : require
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_shader_8bit_storage : require
layout(local_size_x = @LANES@) in;
@BINDINGS@
@HELPERS@
const int M = @M@;
const int N = @N@;
const int BATCH = @BATCH@;
const int TM = @TM@;
const int TN = @TN@;
const int TILES_M = (M + TM - 1) / TM;
const int TILES_N = (N + TN - 1) / TN;
const int N_GROUPS = (TILES_N + @LANES@ - 1) / @LANES@;
@OPERANDS@

void main() {
  uint group = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  int rest = int(group / uint(N_GROUPS));
  int nTile = int(group % uint(N_GROUPS)) * @LANES@ + int(gl_LocalInvocationID.x);
  if (rest >= TILES_M * BATCH || nTile >= TILES_N) return;
  int m0 = (rest % TILES_M) * TM;
  int batch = rest / TILES_M;
  int n0 = nTile * TN;
@BLOCK@
}
