#version 450
// Kiln's cooperative-matrix contraction (the Vulkan coopmat class, `--precision fp16`):
// out[outer, m, n] = epilogue(sum_k A(outer, m, k) * B(outer, k, n)) with float16 operands and
// float32 accumulation on the GPU's matrix units (VK_NV_cooperative_matrix, 16x16x16 fragments).
//
// A workgroup of WARPS_M x WARPS_N subgroups of 32 invocations computes a BM x BN block; each
// subgroup owns a WM x WN warp tile of FM x FN accumulator fragments. Per step of BK along the
// reduction the workgroup stages A's BM x BK and B's BK x BN tiles in shared memory as float16
// (converted from the operands' own types; consecutive invocations read consecutive k of A and
// consecutive n of B, so global reads coalesce for row-major weights and NCHW activations), and
// every subgroup multiplies its fragments out of them. Rows are padded by 8 halves: fragment
// loads need 16-byte aligned rows, and the padding spreads rows over the banks.
//
// The epilogue goes through shared memory one fragment position at a time: each subgroup stores
// its accumulator fragment, and every invocation applies the fused epilogue to some of the
// stored elements and writes them out (a fragment's element-to-lane mapping is opaque).
//
// Split-K (when the output has too few blocks to fill the device) is as in matmul_shared.comp:
// SPLIT workgroups share each block, each summing one slice of the reduction into the scratch
// buffer (PHASE 0); a second dispatch of the same module (PHASE 1) adds the slices and applies
// the epilogue.
//
// With KILN_COOPMAT_EMULATED defined, fragments are emulated on 32-invocation groups of the
// workgroup (a fragment operand is its place in shared memory; an accumulator is 8 floats per
// invocation): the same staging, tiling and epilogue then run on any Vulkan device, which is how
// devices without cooperative matrices (lavapipe in CI) test everything but the fragment
// instructions themselves.
#extension GL_EXT_shader_explicit_arithmetic_types : require
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_shader_8bit_storage : require
#ifndef KILN_COOPMAT_EMULATED
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
#endif
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const int WARPS_M = 2;
layout(constant_id = 2) const int WARPS_N = 2;
layout(constant_id = 3) const int FM = 2;
layout(constant_id = 4) const int FN = 2;
layout(constant_id = 5) const int BK = 32;
layout(constant_id = 6) const int SPLIT = 1;
layout(constant_id = 7) const int PHASE = 0;
@BINDINGS@
@HELPERS@
const int M = @M@;
const int N = @N@;
const int K = @K@;
const int BATCH = @BATCH@;
const int WARPS = WARPS_M * WARPS_N;
const int THREADS = WARPS * 32;
const int WM = FM * 16;
const int WN = FN * 16;
const int BM = WARPS_M * WM;
const int BN = WARPS_N * WN;
const int BLOCKS_M = (M + BM - 1) / BM;
const int BLOCKS_N = (N + BN - 1) / BN;
// Each split-K slice covers a whole number of BK steps.
const int SLICE = ((K + SPLIT - 1) / SPLIT + BK - 1) / BK * BK;
@OPERANDS@

const int LDA = BK + 8;
const int LDB = BN + 8;
shared float16_t tileA[BM * LDA];
shared float16_t tileB[BK * LDB];
// One 16 x 16 float32 fragment per subgroup, for the epilogue.
shared float tileC[WARPS * 256];

#ifdef KILN_COOPMAT_EMULATED
// A fragment operand: where its 16 x 16 elements start in shared memory, and its row stride.
struct Fragment { int offset; int stride; };
// Invocation `lane` of a 32-invocation group holds row lane / 2, columns (lane % 2) * 8 + 0..7.
struct Accumulator { float v[8]; };
#define FRAGMENT_A Fragment
#define FRAGMENT_B Fragment
#define ACCUMULATOR Accumulator
int lane;
Accumulator kiln_zero() {
  Accumulator c;
  for (int i = 0; i < 8; ++i) c.v[i] = 0.0;
  return c;
}
#define kiln_load_fragment_a(f, offset, stride) f = Fragment(offset, stride)
#define kiln_load_fragment_b(f, offset, stride) f = Fragment(offset, stride)
Accumulator kiln_mul_add(Fragment a, Fragment b, Accumulator c) {
  int r = lane / 2;
  for (int i = 0; i < 8; ++i) {
    int col = (lane % 2) * 8 + i;
    float sum = c.v[i];
    for (int k = 0; k < 16; ++k) sum += float(tileA[a.offset + r * a.stride + k]) * float(tileB[b.offset + k * b.stride + col]);
    c.v[i] = sum;
  }
  return c;
}
void kiln_store_fragment(Accumulator c, int offset, int stride) {
  for (int i = 0; i < 8; ++i) tileC[offset + (lane / 2) * stride + (lane % 2) * 8 + i] = c.v[i];
}
#else
#define FRAGMENT_A fcoopmatNV<16, gl_ScopeSubgroup, 16, 16>
#define FRAGMENT_B fcoopmatNV<16, gl_ScopeSubgroup, 16, 16>
#define ACCUMULATOR fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>
#define kiln_zero() ACCUMULATOR(0.0)
// Row-major fragments: element (i, j) at offset + i * stride + j.
#define kiln_load_fragment_a(f, offset, stride) coopMatLoadNV(f, tileA, uint(offset), uint(stride), false)
#define kiln_load_fragment_b(f, offset, stride) coopMatLoadNV(f, tileB, uint(offset), uint(stride), false)
#define kiln_mul_add(a, b, c) coopMatMulAddNV(a, b, c)
#define kiln_store_fragment(c, offset, stride) coopMatStoreNV(c, tileC, uint(offset), uint(stride), false)
#endif

void main() {
  int tid = int(gl_LocalInvocationID.x);
  int group = int(gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x);
@REDUCE_PHASE@
#ifdef KILN_COOPMAT_EMULATED
  int warp = tid / 32;
  lane = tid % 32;
#else
  // The device runs 32-invocation subgroups (the runtime picks this class only then), so the
  // workgroup has exactly WARPS of them.
  int warp = int(gl_SubgroupID);
#endif
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
  int wm = (warp / WARPS_N) * WM;
  int wn = (warp % WARPS_N) * WN;
  ACCUMULATOR acc[FM * FN];
  for (int f = 0; f < FM * FN; ++f) acc[f] = kiln_zero();
  for (int k0 = kBegin; k0 < kEnd; k0 += BK) {
    for (int e = tid; e < BM * BK; e += THREADS) {
      int kk = e % BK;
      int mm = e / BK;
      float v = 0.0;
      if (m0 + mm < M && k0 + kk < kEnd) v = kiln_load_a(batch, m0 + mm, k0 + kk);
      tileA[mm * LDA + kk] = float16_t(v);
    }
    for (int e = tid; e < BK * BN; e += THREADS) {
      int nn = e % BN;
      int kk = e / BN;
      float v = 0.0;
      if (n0 + nn < N && k0 + kk < kEnd) v = kiln_load_b(batch, k0 + kk, n0 + nn);
      tileB[kk * LDB + nn] = float16_t(v);
    }
    barrier();
    for (int kk = 0; kk < BK; kk += 16) {
      FRAGMENT_A a[FM];
      for (int i = 0; i < FM; ++i) kiln_load_fragment_a(a[i], (wm + i * 16) * LDA + kk, LDA);
      for (int j = 0; j < FN; ++j) {
        FRAGMENT_B b;
        kiln_load_fragment_b(b, kk * LDB + wn + j * 16, LDB);
        for (int i = 0; i < FM; ++i) acc[i * FN + j] = kiln_mul_add(a[i], b, acc[i * FN + j]);
      }
    }
    barrier();
  }
  for (int f = 0; f < FM * FN; ++f) {
    kiln_store_fragment(acc[f], warp * 256, 16);
    barrier();
    for (int e = tid; e < WARPS * 256; e += THREADS) {
      int w = e / 256;
      int m = m0 + (w / WARPS_N) * WM + (f / FN) * 16 + (e % 256) / 16;
      int n = n0 + (w % WARPS_N) * WN + (f % FN) * 16 + e % 16;
      if (m < M && n < N) {
        float v = tileC[e];
@STORE@
      }
    }
    barrier();
  }
}
