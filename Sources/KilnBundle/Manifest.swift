// The manifest schema: what a bundle contains and how to run it. Stored as JSON (sorted keys) in
// the bundle's manifest section. The rules it must satisfy are in Manifest+Validation.swift.

/// The table of contents of a bundle: its functions, their per-target programs, the executables
/// they dispatch and the weights they bind.
///
/// No timestamps or host-specific data: the same compiler input gives a byte-identical bundle.
public struct Manifest: Codable, Sendable, Hashable {
  /// The manifest schema version written by this library; equals the container's major version.
  public static let currentFormatVersion = Int(BundleFormat.currentVersion.major)

  public var formatVersion: Int
  /// Name of the compiled model (e.g. the ONNX graph name).
  public var modelName: String
  /// What produced the model (e.g. the ONNX `producer_name`).
  public var producer: String
  /// The tool and version that wrote the bundle, e.g. `kiln 0.1.0`.
  public var createdBy: String
  public var functions: [Function]
  public var executables: [ExecutableEntry]
  public var weights: [WeightEntry]

  public init(
    formatVersion: Int = Manifest.currentFormatVersion, modelName: String, producer: String,
    createdBy: String, functions: [Function] = [], executables: [ExecutableEntry] = [],
    weights: [WeightEntry] = []
  ) {
    self.formatVersion = formatVersion
    self.modelName = modelName
    self.producer = producer
    self.createdBy = createdBy
    self.functions = functions
    self.executables = executables
    self.weights = weights
  }

  /// The function called `name`, if any.
  public func function(named name: String) -> Function? {
    functions.first { $0.name == name }
  }

  /// The name, element type and shape of a function input or output.
  public struct TensorSignature: Codable, Sendable, Hashable {
    public var name: String
    /// One of the names `Manifest.elementSize(of:)` knows, e.g. `float32`.
    public var dtype: String
    /// The shape; along `dynamicAxis` (format 1.2), the most elements the output can hold.
    public var shape: [Int]
    /// (Outputs, 1.2) The axis whose extent the data decides: the int64 scalar output
    /// `extentOutput` holds it after a run, and the runtime returns the output trimmed to it.
    public var dynamicAxis: Int?
    public var extentOutput: Int?
    /// (Outputs, 1.2) This output holds another output's extent: the runtime reads it and does not
    /// return it. Such outputs come after every other.
    public var isExtent: Bool?

    public init(name: String, dtype: String, shape: [Int], dynamicAxis: Int? = nil, extentOutput: Int? = nil, isExtent: Bool? = nil) {
      self.name = name
      self.dtype = dtype
      self.shape = shape
      self.dynamicAxis = dynamicAxis
      self.extentOutput = extentOutput
      self.isExtent = isExtent
    }
  }

  /// An entry point of the model: its signature and one program per target.
  public struct Function: Codable, Sendable, Hashable {
    public var name: String
    public var inputs: [TensorSignature]
    public var outputs: [TensorSignature]
    public var programs: [Program]

    /// The outputs a caller gets: every output but those holding extents.
    public var visibleOutputs: [TensorSignature] { outputs.filter { $0.isExtent != true } }

    public init(
      name: String, inputs: [TensorSignature], outputs: [TensorSignature], programs: [Program]
    ) {
      self.name = name
      self.inputs = inputs
      self.outputs = outputs
      self.programs = programs
    }

    /// The program for `target` (`vulkan`, `cpu`) on a device whose kernel classes are
    /// `deviceClasses`, best first: the first of those classes the function has a program for,
    /// else one for any class, else any of the target's programs (a program of another class runs
    /// correctly where the device has the features it needs, only not at its best); nil when the
    /// target has none.
    public func program(for target: String, deviceClasses: [String] = []) -> Program? {
      let candidates = programs.filter { $0.target == target }
      for deviceClass in deviceClasses {
        if let program = candidates.first(where: { $0.deviceClass == deviceClass }) { return program }
      }
      return candidates.first { $0.deviceClass == nil } ?? candidates.first
    }
  }

  /// A function lowered for one target: the buffers it needs and the commands to record.
  public struct Program: Codable, Sendable, Hashable {
    /// `vulkan` or `cpu`.
    public var target: String
    /// The class of device whose tuning this program's kernels have (`cpu`: Vulkan on CPU cores,
    /// `gpu`: discrete and integrated GPUs); nil for any device of the target. Added in format 1.1.
    public var deviceClass: String?
    public var buffers: [BufferDecl]
    public var commands: [Command]

    public init(target: String, deviceClass: String? = nil, buffers: [BufferDecl], commands: [Command]) {
      self.target = target
      self.deviceClass = deviceClass
      self.buffers = buffers
      self.commands = commands
    }

    /// `target`, or `target/class` for a program of one device class.
    public var label: String { deviceClass.map { "\(target)/\($0)" } ?? target }
  }

  /// A buffer a program uses; commands refer to it by `id`.
  public struct BufferDecl: Codable, Sendable, Hashable {
    public var id: Int
    /// Size in bytes.
    public var size: Int
    public var role: BufferRole

    public init(id: Int, size: Int, role: BufferRole) {
      self.id = id
      self.size = size
      self.role = role
    }
  }

  /// Where a buffer's memory comes from. JSON: `{"kind": "input", "index": 0}`,
  /// `{"kind": "output", "index": 0}`, `{"kind": "transient"}`, `{"kind": "constant", "weight": 3}`.
  public enum BufferRole: Codable, Sendable, Hashable {
    /// The caller's input tensor at this index of `Function.inputs`.
    case input(Int)
    /// The output tensor at this index of `Function.outputs`.
    case output(Int)
    /// Scratch memory allocated by the runtime (the arena).
    case transient
    /// Read-only data: the weight at this index of `Manifest.weights`.
    case constant(weight: Int)

    private enum CodingKeys: String, CodingKey { case kind, index, weight }

    public init(from decoder: any Decoder) throws {
      let container = try decoder.container(keyedBy: CodingKeys.self)
      let kind = try container.decode(String.self, forKey: .kind)
      switch kind {
      case "input": self = .input(try container.decode(Int.self, forKey: .index))
      case "output": self = .output(try container.decode(Int.self, forKey: .index))
      case "transient": self = .transient
      case "constant": self = .constant(weight: try container.decode(Int.self, forKey: .weight))
      default:
        throw DecodingError.dataCorruptedError(
          forKey: .kind, in: container, debugDescription: "unknown buffer role '\(kind)'")
      }
    }

    public func encode(to encoder: any Encoder) throws {
      var container = encoder.container(keyedBy: CodingKeys.self)
      switch self {
      case .input(let index):
        try container.encode("input", forKey: .kind)
        try container.encode(index, forKey: .index)
      case .output(let index):
        try container.encode("output", forKey: .kind)
        try container.encode(index, forKey: .index)
      case .transient:
        try container.encode("transient", forKey: .kind)
      case .constant(let weight):
        try container.encode("constant", forKey: .kind)
        try container.encode(weight, forKey: .weight)
      }
    }
  }

  /// One step of a program, recorded in order. JSON: the payload's fields plus a `kind`
  /// discriminator (`dispatch`, `barrier`, `copy`, `fill`).
  public enum Command: Codable, Sendable, Hashable {
    case dispatch(Dispatch)
    /// All earlier commands' writes are visible to later commands.
    case barrier
    case copy(Copy)
    case fill(Fill)

    private enum CodingKeys: String, CodingKey { case kind }

    public init(from decoder: any Decoder) throws {
      let container = try decoder.container(keyedBy: CodingKeys.self)
      let kind = try container.decode(String.self, forKey: .kind)
      switch kind {
      case "dispatch": self = .dispatch(try Dispatch(from: decoder))
      case "barrier": self = .barrier
      case "copy": self = .copy(try Copy(from: decoder))
      case "fill": self = .fill(try Fill(from: decoder))
      default:
        throw DecodingError.dataCorruptedError(
          forKey: .kind, in: container, debugDescription: "unknown command kind '\(kind)'")
      }
    }

    public func encode(to encoder: any Encoder) throws {
      var container = encoder.container(keyedBy: CodingKeys.self)
      switch self {
      case .dispatch(let dispatch):
        try container.encode("dispatch", forKey: .kind)
        try dispatch.encode(to: encoder)
      case .barrier:
        try container.encode("barrier", forKey: .kind)
      case .copy(let copy):
        try container.encode("copy", forKey: .kind)
        try copy.encode(to: encoder)
      case .fill(let fill):
        try container.encode("fill", forKey: .kind)
        try fill.encode(to: encoder)
      }
    }
  }

  /// Run one entry point of an executable over a grid of workgroups.
  public struct Dispatch: Codable, Sendable, Hashable {
    /// Index into `Manifest.executables`; its target must be the program's.
    public var executable: Int
    /// One of the executable's `entryPoints`.
    public var entryPoint: String
    /// Binding `i` is descriptor binding `i` (Vulkan) or argument `i` (CPU).
    public var bindings: [Binding]
    /// At most 32 words (128 bytes, Vulkan's guaranteed minimum).
    public var pushConstants: [UInt32]
    /// Workgroup counts x, y, z; each in 1...65535.
    public var workgroups: [Int]
    /// ONNX node names fused into this dispatch, for diagnostics and profiling.
    public var sourceOps: [String]

    public init(
      executable: Int, entryPoint: String, bindings: [Binding], pushConstants: [UInt32] = [],
      workgroups: [Int], sourceOps: [String] = []
    ) {
      self.executable = executable
      self.entryPoint = entryPoint
      self.bindings = bindings
      self.pushConstants = pushConstants
      self.workgroups = workgroups
      self.sourceOps = sourceOps
    }
  }

  /// A byte range of a program buffer.
  public struct Binding: Codable, Sendable, Hashable {
    /// A `BufferDecl.id` of the same program.
    public var buffer: Int
    public var offset: Int
    public var length: Int

    public init(buffer: Int, offset: Int, length: Int) {
      self.buffer = buffer
      self.offset = offset
      self.length = length
    }
  }

  /// Copy `source` to `destination`; both ranges have the same length.
  public struct Copy: Codable, Sendable, Hashable {
    public var source: Binding
    public var destination: Binding

    public init(source: Binding, destination: Binding) {
      self.source = source
      self.destination = destination
    }
  }

  /// Fill `target` with a repeated 32-bit pattern; offset and length are multiples of 4.
  public struct Fill: Codable, Sendable, Hashable {
    public var target: Binding
    public var pattern: UInt32

    public init(target: Binding, pattern: UInt32) {
      self.target = target
      self.pattern = pattern
    }
  }

  /// One executable section and what it exports.
  public struct ExecutableEntry: Codable, Sendable, Hashable {
    /// `vulkan` or `cpu`; only programs of this target may dispatch it.
    public var target: String
    /// `spirv`, `elf-x86_64`, ...
    public var format: String
    /// Index of a section of kind `executable`.
    public var section: Int
    public var entryPoints: [String]
    /// CPU feature level it was built for, e.g. `x86-64-v3` or `baseline`.
    public var variant: String?
    /// SPIR-V specialization constant values, by constant id.
    public var specializationConstants: [UInt32]?

    public init(
      target: String, format: String, section: Int, entryPoints: [String], variant: String? = nil,
      specializationConstants: [UInt32]? = nil
    ) {
      self.target = target
      self.format = format
      self.section = section
      self.entryPoints = entryPoints
      self.variant = variant
      self.specializationConstants = specializationConstants
    }
  }

  /// A named weight: a byte range of a weights section. Several weights share one section.
  public struct WeightEntry: Codable, Sendable, Hashable {
    /// Unique within the manifest (usually the ONNX initializer name).
    public var name: String
    /// Index of a section of kind `weights`.
    public var section: Int
    /// Byte offset inside the section; a multiple of `BundleFormat.weightAlignment`.
    public var offset: Int
    public var length: Int

    public init(name: String, section: Int, offset: Int, length: Int) {
      self.name = name
      self.section = section
      self.offset = offset
      self.length = length
    }
  }

  /// Bytes per element of a manifest dtype name, or nil for an unknown name.
  public static func elementSize(of dtype: String) -> Int? {
    switch dtype {
    case "bool", "int8", "uint8": 1
    // Low-precision types, one element per byte (4-bit and 2-bit ones unpacked).
    case "float8e4m3fn", "float8e4m3fnuz", "float8e5m2", "float8e5m2fnuz", "float8e8m0", "float4e2m1": 1
    case "int4", "uint4", "int2", "uint2": 1
    case "float16", "bfloat16", "int16", "uint16": 2
    case "float32", "int32", "uint32": 4
    case "float64", "int64", "uint64": 8
    default: nil
    }
  }
}
