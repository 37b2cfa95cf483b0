import Dispatch
import Foundation
import KilnBundle
import KilnCompiler
import KilnIR

/// The targets a bundle can carry code for.
public enum Target: String, Sendable, CaseIterable {
  case vulkan
  case cpu
}

/// The storage precision of the Vulkan programs' contraction weights; arithmetic is float32.
public enum Precision: String, Sendable, CaseIterable {
  case fp32
  case fp16
}

public struct CompileOptions: Sendable {
  public var targets: [Target]
  /// Passes after which to print the IR (`all` for every pass).
  public var printIRAfter: Set<String>
  /// Where to write per-pass IR, each kernel's GLSL, SPIR-V disassembly and the CPU source.
  public var dumpDirectory: URL?
  public var modelName: String
  /// Receives `--print-ir-after` output (default: standard error).
  public var printer: @Sendable (String) -> Void
  /// CPU variants to build, best first (`x86-64-v3`, `baseline`); the runtime picks the best one
  /// the host runs. Test runs that only need correctness build `baseline` alone.
  public var cpuVariants: [String] = CompileOptions.knownCPUVariants
  public static let knownCPUVariants = ["x86-64-v3", "baseline"]
  /// Extra flags for the C compiler (e.g. `-O1` to compile faster).
  public var cpuFlags: [String] = []
  /// Whether CPU contractions use the blocked GEMM (`CMatMulTemplate`); `KILN_CPU_GEMM=0` in the
  /// environment turns it off, to compare with the generic per-element loops.
  public var cpuGEMM = ProcessInfo.processInfo.environment["KILN_CPU_GEMM"] != "0"
  /// Compiled kernels to reuse, and to add to (nil: compile everything).
  public var cache: KernelCache?
  /// The Vulkan device classes to build a program for; the runtime runs the program of the
  /// device's class. With one class only, that program serves every Vulkan device. nil: `cpu`
  /// and `gpu`, and `coopmat` too with `--precision fp16`.
  public var vulkanClasses: [VulkanClass]?
  /// `fp16`: the Vulkan gpu and coopmat classes read contraction weights as float16
  /// (`HalfPrecisionWeights`); the coopmat class rounds every contraction operand to float16.
  public var precision: Precision = .fp32
  /// The coopmat class's contractions emulate their fragments with ordinary arithmetic, so that
  /// devices without cooperative matrices can test the class (`CoopMatTemplate.emulated`).
  public var emulateCooperativeMatrix = false
  /// The Vulkan programs bind an operand larger than this in parts of at most this many bytes
  /// (`VulkanBindingLayout`): Vulkan guarantees a `maxStorageBufferRange` of 2^27 only. Tests set
  /// it lower to run the split paths on small tensors; a multiple of 256 (offset alignment).
  public var vulkanMaximumBindingBytes = 1 << 27
  /// Whether SPIRV-Tools optimises each shader for speed (inlining, constant propagation,
  /// unrolling) rather than only for size (debug names stripped, locals to SSA, dead code; the
  /// default). Every Vulkan driver optimises the module again, and on lavapipe run times and
  /// pipeline creation did not change with it (docs/benchmarks.md), while inlining the large
  /// operand loaders of concatenations cost most of DenseNet-121's Vulkan compile time.
  public var optimizeSPIRV = false

  /// `vulkanClasses`, or the default for `precision`.
  public var resolvedVulkanClasses: [VulkanClass] {
    vulkanClasses ?? (precision == .fp16 ? [.cpu, .gpu, .coopmat] : [.cpu, .gpu])
  }

  public init(
    targets: [Target] = Target.allCases, printIRAfter: Set<String> = [], dumpDirectory: URL? = nil,
    modelName: String = "model", printer: @escaping @Sendable (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
  ) {
    self.targets = targets
    self.printIRAfter = printIRAfter
    self.dumpDirectory = dumpDirectory
    self.modelName = modelName
    self.printer = printer
  }
}

/// A compiled model: the manifest and the sections a `BundleWriter` writes.
public struct CompiledModel: Sendable {
  public var manifest: Manifest
  public var writer: BundleWriter
  public var kernelCount: Int
  public var timings: [(pass: String, seconds: Double)]
}

/// Compiles a graph into a bundle's manifest and sections by running its pipeline
/// (`pipeline()`, in `ModelCompiler+Pipeline.swift`): the target-independent passes of
/// `MiddleEnd`, then per target its schedule, code and program. The pass list is the code that
/// runs; `passNames` is derived from it.
///
/// Thread-safety: a value type; `compile` may run on several threads at once (each call has its
/// own state). The shader and C builds it starts in the background are waited for before it
/// returns or throws.
public struct ModelCompiler: Sendable {
  /// Every pass a pipeline can run, in order (what `--print-ir-after` accepts).
  public static let passNames: [String] = {
    var options = CompileOptions()
    options.precision = .fp16
    return ModelCompiler(options: options).pipeline().names
  }()

  public var options: CompileOptions

  public init(options: CompileOptions = CompileOptions()) {
    self.options = options
  }

  public func compile(_ input: Graph) throws -> CompiledModel {
    let vulkanClasses = options.resolvedVulkanClasses
    if options.targets.contains(.vulkan), vulkanClasses.isEmpty {
      throw CodegenError(.invalidInput, "the Vulkan target needs at least one device class")
    }
    if options.targets.contains(.vulkan), vulkanClasses.contains(.coopmat), options.precision != .fp16 {
      throw CodegenError(
        .invalidInput, "the Vulkan coopmat class rounds contraction operands to float16: it needs --precision fp16")
    }
    if options.precision == .fp16, !usesHalfPrecisionWeights {
      options.printer("note: --precision fp16 applies to the Vulkan gpu and coopmat classes' programs only; this bundle has neither, so it is all fp32")
    }
    var state = CompileState(
      lowering: LoweringState(graph: input),
      manifest: Manifest(modelName: options.modelName, producer: "kiln", createdBy: "kiln \(KilnCodegenVersion.string)"))
    // The shader and C builds run in the background from their passes on; wait for them on any exit.
    defer {
      state.vulkanBuild?.group.wait()
      state.cpuBuild?.group.wait()
    }
    var instrumentation = PassInstrumentation()
    instrumentation.printAfter = options.printIRAfter
    instrumentation.dumpDirectory = options.dumpDirectory
    instrumentation.printer = options.printer
    let timings = try pipeline().run(&state, instrumentation)
    options.cache?.prune()
    let kernelCount = state.lowering.plan?.kernels.count ?? 0
    return CompiledModel(manifest: state.manifest, writer: state.writer, kernelCount: kernelCount, timings: timings)
  }

  /// Whether `fp16-weights` runs: a Vulkan target with a GPU class, at `--precision fp16`.
  var usesHalfPrecisionWeights: Bool {
    options.targets.contains(.vulkan) && options.precision == .fp16 && options.resolvedVulkanClasses.contains { $0 != .cpu }
  }
}

public enum KilnCodegenVersion {
  public static let string = "0.1.0"
}
