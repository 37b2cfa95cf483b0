import KilnCompiler
import KilnIR

/// The Vulkan device classes Kiln generates kernels for, each with its own tuning table. A bundle
/// carries one Vulkan program per class it was compiled for; the runtime runs the program of the
/// device's class (`KernelClass` in KilnHAL names the same strings).
public enum VulkanClass: String, Sendable, CaseIterable, Hashable {
  /// Vulkan on CPU cores (lavapipe, SwiftShader): register blocking, no shared memory and no
  /// barriers (`MatMulTemplate`), vec4 loads, workgroups of 8-wide SIMD lanes.
  case cpu
  /// Discrete and integrated GPUs: shared-memory tiled contractions (`SharedMatMulTemplate`),
  /// split-K where blocks underfill the device. Every other kernel is the same as `cpu`'s.
  case gpu
  /// GPUs with cooperative matrices (VK_NV_cooperative_matrix, 16x16x16 float16 fragments with
  /// float32 accumulators, 32-invocation subgroups): contractions on the matrix units
  /// (`CoopMatTemplate`), with float16 operands, so only with `--precision fp16`. Every other
  /// kernel is the same as `gpu`'s; the runtime falls back to `gpu` on other GPUs.
  case coopmat
}

/// A contraction as a shared-memory tiled GEMM for GPUs (`shaders/matmul_shared.comp`): the
/// register-blocked template's match (operands, epilogue, axes) with the GPU class's tile sizes,
/// chosen per shape from `tiles`, and a split-K factor.
public struct SharedMatMulTemplate: TiledContraction, Sendable, Hashable {
  public struct Tile: ContractionBlock, Sendable, Hashable {
    public var bm: Int
    public var bn: Int
    public var bk: Int
    public var tm: Int
    public var tn: Int
    public var threads: Int { (bm / tm) * (bn / tn) }
    /// Shared memory the two staged tiles take.
    public var sharedBytes: Int { 4 * bk * (bm + 1 + bn) }
  }

  public var base: MatMulTemplate
  public var tile: Tile
  /// Workgroups per output block summing slices of the reduction (1: no split).
  public var split: Int

  /// The GPU class's tuning table, largest block first; every entry runs 256 invocations and
  /// stages at most 8.3 KiB (NVIDIA, AMD and Intel all give a workgroup at least 32 KiB). The first
  /// block that yields `targetBlocks` blocks is taken; below that the smallest is taken, and
  /// split-K multiplies the blocks. These are the usual shapes of shared-memory SGEMM kernels; they
  /// have not been measured on a GPU yet (no GPU has been lent to this project's sessions).
  public static let tiles = [
    Tile(bm: 128, bn: 128, bk: 8, tm: 8, tn: 8),
    Tile(bm: 64, bn: 64, bk: 16, tm: 4, tn: 4),
    Tile(bm: 32, bn: 64, bk: 16, tm: 2, tn: 4),
    Tile(bm: 32, bn: 32, bk: 16, tm: 2, tn: 2),
  ]
  /// Blocks that fill a large GPU twice over (an H100 has 132 multiprocessors).
  static let targetBlocks = 256
  /// Split-K leaves each slice at least this many steps of k, and at most `maximumSplit` slices.
  static let minimumSlice = 128
  static let maximumSplit = 16
  /// The scratch buffer of the slices' partial sums stays at or below this size.
  static let maximumScratchBytes = 64 << 20

  /// The GPU template for `kernel`, or nil where the register-blocked one serves as well (no M
  /// axis, or fewer than 16 rows: too few to share a staged tile of B).
  public static func match(_ kernel: Kernel) -> SharedMatMulTemplate? {
    MatMulTemplate.match(kernel).flatMap(match(base:))
  }

  /// `match` from the register-blocked template's match of the kernel.
  static func match(base: MatMulTemplate) -> SharedMatMulTemplate? {
    guard base.mAxis != nil, base.m >= 16, base.n >= 16 else { return nil }
    let (tile, split) = choose(from: tiles, base: base)
    return SharedMatMulTemplate(base: base, tile: tile, split: split)
  }

  /// Specialization constants by id: the workgroup size, BM, BN, BK, TM, TN, SPLIT and PHASE.
  public func specializationConstants(phase: Int) -> [UInt32] {
    [tile.threads, tile.bm, tile.bn, tile.bk, tile.tm, tile.tn, split, phase].map { UInt32($0) }
  }

  /// The instantiated GLSL. Its tile sizes are specialization constants; the ones in the source
  /// are the defaults only.
  public func source() -> String {
    Self.instantiate(.matmulShared, name: "matmul_shared", base: base, split: split, value: "acc[i * TN + j]")
  }

  /// `shader` (matmul_shared.comp or matmul_coopmat.comp) instantiated for `base`'s operands,
  /// epilogue and sizes: the operand loaders, the (batch, m, k, n) index helpers, split-K's
  /// scratch binding and reduce phase, and the store of `value` (the accumulated element of output
  /// row `m`, column `n`) to the output or, with a split, to the slice's scratch.
  static func instantiate(
    _ shader: ShaderTemplate, name: String, defines: [String] = [], base: MatMulTemplate, split: Int, value: String
  ) -> String {
    let kernel = base.kernel
    var bindings = base.dialect.bufferDeclarations(scratch: split > 1)
    bindings.removeLast()
    let rank = kernel.shape.count
    // (batch, m, k, n) -> the kernel's coordinates and loop variables: `flat` split into the
    // digits of `parts`, the last one varying fastest.
    func digits(_ flat: String, _ parts: [(name: String, extent: Int)]) -> [String] {
      var lines: [String] = []
      var inner = 1
      for part in parts.reversed() {
        lines.append("  int \(part.name) = (\(flat) / \(inner)) % \(part.extent);")
        inner *= part.extent
      }
      return lines
    }
    func outerLines() -> [String] { digits("batch", base.outerAxes.map { ("c\($0)", kernel.shape[$0]) }) }
    func nLines() -> [String] { digits("n", base.nAxes.map { ("c\($0)", kernel.shape[$0]) }) }
    func kLines() -> [String] { digits("k", base.loops.map { ("v\($0.variable)", $0.extent) }) }
    let coordinates = (0..<rank).map { axis -> String in
      if axis == base.mAxis { return "m" }
      return "c\(axis)"
    }
    let variables = base.loops.map { "v\($0.variable)" }
    let mAxis = base.mAxis ?? -1
    func zeroed(_ axes: [Int]) -> [String] { axes.map { "  int c\($0) = 0;" } }
    var helpers = base.operandFunctions() + "\n"
    helpers += "float kiln_load_a(int batch, int m, int k) {\n"
    helpers += (outerLines() + zeroed(base.nAxes) + kLines()).joined(separator: "\n")
    helpers += "\n  return kiln_a(\((coordinates + variables).joined(separator: ", ")));\n}\n"
    helpers += "float kiln_load_b(int batch, int k, int n) {\n"
    helpers += (outerLines() + zeroed([mAxis].filter { $0 >= 0 }) + nLines() + kLines()).joined(separator: "\n")
    helpers += "\n  return kiln_b(\((coordinates.map { $0 == "m" ? "c\(mAxis)" : $0 } + variables).joined(separator: ", ")));\n}\n"
    helpers += "void kiln_store_at(int batch, int m, int n, float v) {\n"
    helpers += (outerLines() + nLines()).joined(separator: "\n")
    helpers += "\n  kiln_store(\(coordinates.joined(separator: ", ")), v);\n}"
    let reducePhase =
      split > 1
      ? """
          if (PHASE == 1) {
            int e = group * THREADS + tid;
            if (e >= BATCH * M * N) return;
            float sum = 0.0;
            for (int s = 0; s < SPLIT; ++s) sum += scratch[s * BATCH * M * N + e];
            kiln_store_at(e / (M * N), (e / N) % M, e % N, sum);
            return;
          }
        """ : ""
    let store =
      split > 1
      ? "      scratch[((slice * BATCH + batch) * M + m) * N + n] = \(value);"
      : "      kiln_store_at(batch, m, n, \(value));"
    return shader.instantiate(
      header: ["// \(kernel.name): \(kernel.sourceOps.joined(separator: ", ")) (\(name))"] + defines,
      [
        .bindings: .code(bindings), .helpers: .code(base.dialect.helperFunctions()), .m: .integer(base.m), .n: .integer(base.n),
        .k: .integer(base.k), .batch: .integer(base.batchCount), .operands: .code(helpers), .reducePhase: .code(reducePhase),
        .store: .code(store),
      ])
  }
}

/// A workgroup's block of a tiled contraction's output.
public protocol ContractionBlock {
  var bm: Int { get }
  var bn: Int { get }
  /// Invocations per workgroup.
  var threads: Int { get }
}

/// What the shared-memory contraction templates (`SharedMatMulTemplate`, `CoopMatTemplate`) have in
/// common: one workgroup per output block and split-K slice, the block chosen from a tuning table
/// by how many blocks it makes, and with a split a reduce phase of one invocation per output.
public protocol TiledContraction {
  associatedtype Block: ContractionBlock
  var base: MatMulTemplate { get }
  var tile: Block { get }
  /// Workgroups per output block summing slices of the reduction (1: no split).
  var split: Int { get }
  /// The specialization constants of the GEMM phase (0) or the reduce phase (1).
  func specializationConstants(phase: Int) -> [UInt32]
  /// The instantiated GLSL (one module serves both phases).
  func source() -> String
}

extension TiledContraction {
  static func blocks(_ base: MatMulTemplate, _ tile: some ContractionBlock) -> Int {
    base.batchCount * ((base.m + tile.bm - 1) / tile.bm) * ((base.n + tile.bn - 1) / tile.bn)
  }

  /// The first of `tiles` (largest first) that makes `SharedMatMulTemplate.targetBlocks` blocks,
  /// else the last; and the split-K factor for it.
  static func choose(from tiles: [Block], base: MatMulTemplate) -> (tile: Block, split: Int) {
    let tile = tiles.first { blocks(base, $0) >= SharedMatMulTemplate.targetBlocks } ?? tiles[tiles.count - 1]
    return (tile, split(base: base, blocks: blocks(base, tile)))
  }

  /// The split-K factor for `blocks` output blocks: enough slices to reach `targetBlocks`, each
  /// at least `minimumSlice` deep, with the partial sums within `maximumScratchBytes`.
  static func split(base: MatMulTemplate, blocks: Int) -> Int {
    typealias Limits = SharedMatMulTemplate
    guard blocks < Limits.targetBlocks else { return 1 }
    let wanted = (Limits.targetBlocks + blocks - 1) / blocks
    var split = max(1, min(wanted, Limits.maximumSplit, base.k / Limits.minimumSlice))
    while split > 1, split * base.batchCount * base.m * base.n * 4 > Limits.maximumScratchBytes { split -= 1 }
    return split
  }

  /// Blocks of the output (each one workgroup per split-K slice).
  var blocks: Int { Self.blocks(base, tile) }

  /// Bytes of the partial sums split-K writes (0 without a split).
  public var scratchBytes: Int { split > 1 ? split * base.batchCount * base.m * base.n * 4 : 0 }

  /// Workgroups of the GEMM phase (one per block and slice), and of the reduce phase (one
  /// invocation per output element), folded into x and y.
  public func workgroups(phase: Int) -> [Int] {
    let groups = phase == 0 ? blocks * split : (base.batchCount * base.m * base.n + tile.threads - 1) / tile.threads
    let x = min(groups, 65535)
    return [x, (groups + x - 1) / x, 1]
  }
}
