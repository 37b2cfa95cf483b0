import KilnCompiler

/// A contraction on the GPU's matrix units (`shaders/matmul_coopmat.comp`, the Vulkan `coopmat`
/// class): float16 operands staged in shared memory, 16 x 16 x 16 cooperative-matrix fragments
/// (VK_NV_cooperative_matrix) with float32 accumulators, the register-blocked template's operands
/// and fused epilogue, and split-K as in `SharedMatMulTemplate`.
///
/// The operands are rounded to float16 (values beyond 65504 become infinite), which is why the
/// class exists only in bundles compiled with `--precision fp16`.
public struct CoopMatTemplate: TiledContraction, Sendable, Hashable {
  /// A workgroup of `warpsM x warpsN` subgroups of 32 invocations, each with `fm x fn` fragments.
  public struct Tile: ContractionBlock, Sendable, Hashable {
    public var warpsM: Int
    public var warpsN: Int
    public var fm: Int
    public var fn: Int
    public var bk: Int
    public var bm: Int { warpsM * fm * 16 }
    public var bn: Int { warpsN * fn * 16 }
    public var threads: Int { warpsM * warpsN * 32 }
    /// Shared memory: the two float16 tiles (rows padded by 8 halves) and a float32 fragment per subgroup.
    public var sharedBytes: Int { 2 * bm * (bk + 8) + 2 * bk * (bn + 8) + 4 * 256 * warpsM * warpsN }
  }

  public var base: MatMulTemplate
  public var tile: Tile
  public var split: Int
  /// Fragments emulated with ordinary arithmetic (no cooperative-matrix instructions): the same
  /// kernel for devices without matrix units, to test the class on (lavapipe in CI).
  public var emulated: Bool

  /// Largest block first; the first that yields `SharedMatMulTemplate.targetBlocks` blocks is
  /// taken, else the smallest with split-K. Each stays under 28 KiB of shared memory. Shapes
  /// after the usual tensor-core GEMMs (a 64 x 32 warp tile of 4 x 2 fragments in the largest);
  /// not yet measured on a GPU (none has been lent to this project's sessions).
  public static let tiles = [
    Tile(warpsM: 2, warpsN: 4, fm: 4, fn: 2, bk: 32),
    Tile(warpsM: 2, warpsN: 2, fm: 2, fn: 2, bk: 32),
    Tile(warpsM: 2, warpsN: 2, fm: 1, fn: 1, bk: 32),
  ]

  /// The coopmat template for `base` (a register-blocked match), or nil where the shared-memory
  /// one should serve: no M axis, or fewer than 16 rows, columns or steps of reduction.
  static func match(base: MatMulTemplate, emulated: Bool) -> CoopMatTemplate? {
    guard base.mAxis != nil, base.m >= 16, base.n >= 16, base.k >= 16 else { return nil }
    let (tile, split) = choose(from: tiles, base: base)
    return CoopMatTemplate(base: base, tile: tile, split: split, emulated: emulated)
  }

  public static func match(_ kernel: Kernel, emulated: Bool = false) -> CoopMatTemplate? {
    MatMulTemplate.match(kernel).flatMap { match(base: $0, emulated: emulated) }
  }

  /// Specialization constants by id: the workgroup size, WARPS_M, WARPS_N, FM, FN, BK, SPLIT and PHASE.
  public func specializationConstants(phase: Int) -> [UInt32] {
    [tile.threads, tile.warpsM, tile.warpsN, tile.fm, tile.fn, tile.bk, split, phase].map { UInt32($0) }
  }

  public func source() -> String {
    SharedMatMulTemplate.instantiate(
      .matmulCoopmat, name: emulated ? "matmul_coopmat, emulated" : "matmul_coopmat",
      defines: emulated ? ["#define KILN_COOPMAT_EMULATED"] : [], base: base, split: split, value: "v")
  }
}
