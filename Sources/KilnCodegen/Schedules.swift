import KilnCompiler
import KilnIR

/// How one kernel runs on the CPU target. Chosen once per kernel by `schedule-cpu`
/// (`CPUSchedules.run`) from the kernel's region and the weights it could read pre-packed;
/// the C source (`CKernel.translationUnit`) and the dispatch's workgroups both read it.
public enum CPUSchedule: Sendable {
  /// A 3x3 stride-1 convolution whose weights were Winograd-transformed at compile time.
  case winograd(CWinogradTemplate)
  /// A stated contraction as a cache-blocked GEMM.
  case gemm(CMatMulTemplate)
  /// A window over the two trailing axes as a direct convolution (or maximum) per plane.
  case window(CWindowTemplate)
  /// Loops over the output elements (rows of the innermost axis where that pays).
  case loops
  /// A custom region's program, a few invocations per workgroup.
  case program(KernelProgram)

  /// The schedule of `kernel` as bound (`prepacked`: the operands it reads pre-packed): Winograd
  /// where its weights were transformed for it, else a GEMM of a stated contraction, else a
  /// window, else loops. `schedule-cpu` calls this once per kernel.
  public static func choose(_ kernel: Kernel, prepacked: Set<CMatMulTemplate.Operand> = []) -> CPUSchedule {
    if let program = kernel.region.program { return .program(program) }
    if prepacked.contains(CWinogradTemplate.weightsOperand) {
      guard let template = CWinogradTemplate.match(kernel) else {
        preconditionFailure("\(kernel.name): Winograd-transformed weights, but no Winograd convolution")
      }
      return .winograd(template)
    }
    if let template = CMatMulTemplate.match(kernel, prepacked: prepacked) { return .gemm(template) }
    if let template = CWindowTemplate.match(kernel) { return .window(template) }
    return .loops
  }

  public func workgroups(for kernel: Kernel) -> Int {
    switch self {
    case .winograd(let template): template.workgroups
    case .gemm(let template): template.workgroups
    case .window(let template): template.workgroups
    case .loops: CKernel.workgroups(for: kernel.output.elementCount)
    case .program(let program): (program.invocations + CKernel.invocationsPerWorkgroup - 1) / CKernel.invocationsPerWorkgroup
    }
  }

  /// The C of `kernel` under this schedule, its entry point called `name` (the kernel's own name
  /// by default; `CKernel.translationUnit` also asks for a neutral one, and kernels whose code
  /// is then the same share one body).
  func source(for kernel: Kernel, named name: String? = nil) -> String {
    var renamed = kernel
    if let name {
      renamed.name = name
      renamed.sourceOps = []
    }
    switch self {
    case .winograd(var template):
      template.kernel = renamed
      return template.source()
    case .gemm(var template):
      template.kernel = renamed
      return template.source()
    case .window(var template):
      template.kernel = renamed
      return template.source()
    case .loops: return CKernel.function(for: renamed)
    case .program(let program): return CKernel.programFunction(for: renamed, program: program)
    }
  }

  /// Bytes of the program's scratch memory this kernel uses.
  public var scratchBytes: Int { if case .program(let program) = self { program.scratchBytes } else { 0 } }

  /// The schedule in a few words, as `--print-ir-after schedule-cpu` prints it.
  public var summary: String {
    switch self {
    case .winograd(let template): template.summary
    case .gemm(let template):
      template.summary + (template.prepacked.isEmpty ? "" : ", pre-packed \(template.prepacked.map(\.label).sorted().joined(separator: " "))")
    case .window(let template): template.summary
    case .loops: "cpu loops"
    case .program(let program): "cpu program, \(program.invocations) invocations"
    }
  }
}

extension CMatMulTemplate.Operand {
  /// `a0`, `b1`, ...: the side and contraction (`winograd` for transformed weights).
  var label: String { winograd ? "winograd" : (a ? "a" : "b") + "\(contraction)" }
}

/// How one kernel runs in a Vulkan device class's program. Chosen once per kernel and class by
/// `schedule-vulkan` (`VulkanSchedule.choose`); the shader and its dispatches are made from it.
public enum VulkanSchedule: Sendable {
  /// A contraction on cooperative matrices (the `coopmat` class).
  case cooperativeMatrix(CoopMatTemplate)
  /// A contraction in shared-memory tiles, split-K below enough blocks (the `gpu` class).
  case sharedTiles(SharedMatMulTemplate)
  /// A contraction in register blocks, no shared memory (the `cpu` class, and small ones elsewhere).
  case registerTiles(MatMulTemplate)
  /// One invocation per output element.
  case perElement
  /// A custom region's program, one invocation per shader invocation.
  case program(KernelProgram)

  /// The schedule of `kernel` in `deviceClass`'s program: a stated contraction takes the class's
  /// contraction template where its shape suits it, everything else one invocation per element.
  public static func choose(
    _ kernel: Kernel, deviceClass: VulkanClass, emulateCooperativeMatrix: Bool, maximumBindingBytes: Int
  ) -> VulkanSchedule {
    if let program = kernel.region.program { return .program(program) }
    guard let tiles = MatMulTemplate.match(kernel, maximumBindingBytes: maximumBindingBytes) else { return .perElement }
    if deviceClass == .coopmat, let coop = CoopMatTemplate.match(base: tiles, emulated: emulateCooperativeMatrix) {
      return .cooperativeMatrix(coop)
    }
    if deviceClass != .cpu, let shared = SharedMatMulTemplate.match(base: tiles) { return .sharedTiles(shared) }
    return .registerTiles(tiles)
  }

  /// The schedule for `kernel` renamed `name` with no source ops: its shader differs from
  /// another kernel's only where their code does (`startVulkanBuild` compiles each such shader
  /// once).
  func neutral(_ kernel: Kernel, named name: String) -> (VulkanSchedule, Kernel) {
    var renamed = kernel
    renamed.name = name
    renamed.sourceOps = []
    switch self {
    case .cooperativeMatrix(var template):
      template.base.kernel = renamed
      return (.cooperativeMatrix(template), renamed)
    case .sharedTiles(var template):
      template.base.kernel = renamed
      return (.sharedTiles(template), renamed)
    case .registerTiles(var template):
      template.kernel = renamed
      return (.registerTiles(template), renamed)
    case .perElement: return (.perElement, renamed)
    case .program: return (self, renamed)
    }
  }

  /// The schedule in a few words, as `--print-ir-after schedule-vulkan` prints it.
  public var summary: String {
    switch self {
    case .cooperativeMatrix(let t):
      "cooperative matrices \(t.base.batchCount)x\(t.base.m)x\(t.base.n)x\(t.base.k): \(t.tile.warpsM)x\(t.tile.warpsN) subgroups of \(t.tile.fm)x\(t.tile.fn) fragments, BK \(t.tile.bk), split \(t.split)"
    case .sharedTiles(let t):
      "shared tiles \(t.base.batchCount)x\(t.base.m)x\(t.base.n)x\(t.base.k): \(t.tile.bm)x\(t.tile.bn)x\(t.tile.bk) blocks of \(t.tile.tm)x\(t.tile.tn), split \(t.split)"
    case .registerTiles(let t):
      "register tiles \(t.batchCount)x\(t.m)x\(t.n)x\(t.k): \(t.tileM)x\(t.tileN) per invocation, \(t.lanes) lanes"
        + (t.vectorA != nil ? ", vec4 A" : "") + (t.vectorB != nil ? ", vec4 B" : "")
    case .perElement: "one invocation per element"
    case .program(let program): "program, \(program.invocations) invocations"
    }
  }
}
