import Foundation
import Testing

@testable import KilnBundle

/// One broken rule: an edit of the sample manifest and the message validation must give.
struct Rule: Sendable, CustomTestStringConvertible {
  let name: String
  let message: String
  let edit: @Sendable (inout Manifest) -> Void

  init(_ name: String, _ message: String, _ edit: @escaping @Sendable (inout Manifest) -> Void) {
    self.name = name
    self.message = message
    self.edit = edit
  }

  var testDescription: String { name }
}

/// Edits the first (vulkan) program of function 'main'.
func vulkan(_ edit: @escaping @Sendable (inout Manifest.Program) -> Void)
  -> @Sendable (inout Manifest) -> Void
{
  { manifest in edit(&manifest.functions[0].programs[0]) }
}

/// Replaces the vulkan program's dispatch (command 2) with an edited copy.
func dispatch(_ edit: @escaping @Sendable (inout Manifest.Dispatch) -> Void)
  -> @Sendable (inout Manifest) -> Void
{
  vulkan { program in
    guard case .dispatch(var value) = program.commands[2] else { return }
    edit(&value)
    program.commands[2] = .dispatch(value)
  }
}

let vulkanContext = "function 'main' program 'vulkan'"

let rules: [Rule] = [
  // Manifest-wide.
  Rule("format version", "manifest formatVersion 2 is not supported (expected 1)") {
    $0.formatVersion = 2
  },
  // Executables.
  Rule(
    "executable section out of range",
    "executable 1 (cpu elf-x86_64): section 9 out of range (bundle has 4 sections)"
  ) {
    $0.executables[1].section = 9
  },
  Rule(
    "executable negative section",
    "executable 1 (cpu elf-x86_64): section -1 out of range (bundle has 4 sections)"
  ) {
    $0.executables[1].section = -1
  },
  Rule(
    "executable section of wrong kind",
    "executable 0 (vulkan spirv): section 0 has kind manifest, expected executable"
  ) {
    $0.executables[0].section = 0
  },
  Rule("executable without entry points", "executable 0 (vulkan spirv): no entry points") {
    $0.executables[0].entryPoints = []
  },
  Rule(
    "executable duplicate entry point",
    "executable 0 (vulkan spirv): entry point 'add' listed twice"
  ) {
    $0.executables[0].entryPoints.append("add")
  },
  Rule("executable empty target", "executable 0 ( spirv): empty target") {
    $0.executables[0].target = ""
  },
  // Weights.
  Rule(
    "weight section of wrong kind",
    "weight 0 'fc.weight': section 1 has kind executable, expected weights"
  ) {
    $0.weights[0].section = 1
  },
  Rule(
    "weight section out of range",
    "weight 0 'fc.weight': section 4 out of range (bundle has 4 sections)"
  ) {
    $0.weights[0].section = 4
  },
  Rule("weight past its section", "weight 1 'fc.bias': offset 64+32 exceeds section 3 length 80") {
    $0.weights[1].length = 32
  },
  Rule(
    "weight offset + length overflows",
    "weight 1 'fc.bias': offset 64+\(Int.max) exceeds section 3 length 80"
  ) {
    $0.weights[1].length = Int.max
  },
  Rule("weight negative", "weight 1 'fc.bias': negative offset 64 or length -1") {
    $0.weights[1].length = -1
  },
  Rule("weight misaligned", "weight 1 'fc.bias': offset 32 is not a multiple of 64") {
    $0.weights[1].offset = 32
  },
  Rule("weight duplicate name", "weight 1 'fc.weight': name already used by weight 0") {
    $0.weights[1].name = "fc.weight"
  },
  // Functions and signatures.
  Rule("duplicate function", "function 'main' is declared twice") {
    $0.functions.append($0.functions[0])
  },
  Rule("empty function name", "function with an empty name") { $0.functions[0].name = "" },
  Rule("duplicate program target", "function 'main': two programs for 'vulkan'") {
    $0.functions[0].programs[1].target = "vulkan"
  },
  Rule("duplicate program class", "function 'main': two programs for 'vulkan/gpu'") {
    $0.functions[0].programs[0].deviceClass = "gpu"
    $0.functions[0].programs.append($0.functions[0].programs[0])
  },
  Rule("empty program class", "function 'main': program 'vulkan' with empty device class") {
    $0.functions[0].programs[0].deviceClass = ""
  },
  Rule("empty program target", "function 'main': program with empty target") {
    $0.functions[0].programs[1].target = ""
  },
  Rule("unknown dtype", "function 'main' input 0 'x': unknown dtype 'float8'") {
    $0.functions[0].inputs[0].dtype = "float8"
  },
  Rule("negative dimension", "function 'main' output 0 'y': negative dimension in shape [1, -4]") {
    $0.functions[0].outputs[0].shape = [1, -4]
  },
  Rule(
    "byte size overflows",
    "function 'main' input 0 'x': byte size of float32[\(Int.max / 2), 2] overflows"
  ) {
    $0.functions[0].inputs[0].shape = [Int.max / 2, 2]
  },
  // Buffers and roles.
  Rule(
    "negative buffer id", "\(vulkanContext) buffer declaration 4: negative id -5",
    vulkan { $0.buffers[4].id = -5 }),
  Rule(
    "duplicate buffer id", "\(vulkanContext): buffer id 3 declared twice",
    vulkan { $0.buffers[4].id = 3 }),
  Rule(
    "negative buffer size", "\(vulkanContext) buffer 4: negative size -64",
    vulkan { $0.buffers[4].size = -64 }),
  Rule(
    "input index out of range",
    "\(vulkanContext) buffer 0: input index 1 out of range (function has 1 inputs)",
    vulkan { $0.buffers[0].role = .input(1) }),
  Rule(
    "input bound twice", "\(vulkanContext) buffer 4: input 0 is already bound by buffer 0",
    vulkan { $0.buffers[4].role = .input(0) }),
  Rule(
    "input size mismatch",
    "\(vulkanContext) buffer 0: size 32 does not match input 0 'x' float32[1, 4] = 16 bytes",
    vulkan { $0.buffers[0].size = 32 }),
  Rule(
    "input without buffer", "\(vulkanContext): input 0 'x' has no buffer",
    vulkan { $0.buffers[0].role = .transient }),
  Rule(
    "output index out of range",
    "\(vulkanContext) buffer 1: output index -1 out of range (function has 1 outputs)",
    vulkan { $0.buffers[1].role = .output(-1) }),
  Rule(
    "output size mismatch",
    "\(vulkanContext) buffer 1: size 8 does not match output 0 'y' float32[1, 4] = 16 bytes",
    vulkan { $0.buffers[1].size = 8 }),
  Rule(
    "output without buffer", "\(vulkanContext): output 0 'y' has no buffer",
    vulkan { $0.buffers[1].role = .transient }),
  Rule(
    "signature changed under the buffers",
    "\(vulkanContext) buffer 0: size 16 does not match input 0 'x' float16[1, 4] = 8 bytes"
  ) {
    $0.functions[0].inputs[0].dtype = "float16"
  },
  Rule(
    "constant weight out of range",
    "\(vulkanContext) buffer 2: constant weight 2 out of range (manifest has 2 weights)",
    vulkan { $0.buffers[2].role = .constant(weight: 2) }),
  Rule(
    "constant size mismatch",
    "\(vulkanContext) buffer 2: size 16 does not match weight 0 'fc.weight' length 12"
  ) {
    $0.weights[0].length = 12
  },
  // Dispatches.
  Rule(
    "dispatch executable out of range",
    "\(vulkanContext) command 2: executable 2 out of range (manifest has 2 executables)",
    dispatch { $0.executable = 2 }),
  Rule(
    "dispatch executable of another target",
    "\(vulkanContext) command 2: executable 1 is for target 'cpu', not 'vulkan'",
    dispatch { $0.executable = 1 }),
  Rule(
    "dispatch unknown entry point",
    "\(vulkanContext) command 2: entry point 'conv' is not exported by executable 0",
    dispatch { $0.entryPoint = "conv" }),
  Rule(
    "dispatch with two workgroup counts",
    "\(vulkanContext) command 2: workgroups has 2 counts, expected 3",
    dispatch { $0.workgroups = [1, 1] }),
  Rule(
    "dispatch with zero workgroups",
    "\(vulkanContext) command 2: workgroup count y=0 is outside 1...65535",
    dispatch { $0.workgroups = [1, 0, 1] }),
  Rule(
    "dispatch with too many workgroups",
    "\(vulkanContext) command 2: workgroup count z=65536 is outside 1...65535",
    dispatch { $0.workgroups = [65535, 1, 65536] }),
  Rule(
    "dispatch with too many push constants",
    "\(vulkanContext) command 2: 33 push constant words exceed the limit of 32",
    dispatch { $0.pushConstants = Array(repeating: 0, count: 33) }),
  Rule(
    "binding to undeclared buffer", "\(vulkanContext) command 2: binding 1 buffer 9 is not declared",
    dispatch { $0.bindings[1].buffer = 9 }),
  Rule(
    "binding past its buffer",
    "\(vulkanContext) command 2: binding 2 offset 56+16 exceeds buffer 4 size 64",
    dispatch { $0.bindings[2].offset = 56 }),
  Rule(
    "binding offset + length overflows",
    "\(vulkanContext) command 2: binding 2 offset 16+\(Int.max) exceeds buffer 4 size 64",
    dispatch {
      $0.bindings[2].offset = 16
      $0.bindings[2].length = Int.max
    }),
  Rule(
    "binding negative offset",
    "\(vulkanContext) command 2: binding 0 has negative offset -16 or length 16",
    dispatch { $0.bindings[0].offset = -16 }),
  // Copies and fills.
  Rule(
    "copy lengths differ",
    "\(vulkanContext) command 4: copy source length 8 differs from destination length 16",
    vulkan {
      $0.commands[4] = .copy(
        .init(
          source: Binding(buffer: 4, offset: 0, length: 8),
          destination: Binding(buffer: 4, offset: 16, length: 16)))
    }),
  Rule(
    "copy ranges overlap", "\(vulkanContext) command 4: copy source and destination overlap in buffer 4",
    vulkan {
      $0.commands[4] = .copy(
        .init(
          source: Binding(buffer: 4, offset: 0, length: 16),
          destination: Binding(buffer: 4, offset: 8, length: 16)))
    }),
  Rule(
    "copy into a constant",
    "\(vulkanContext) command 4: destination buffer 2 is a read-only constant",
    vulkan {
      $0.commands[4] = .copy(
        .init(
          source: Binding(buffer: 4, offset: 0, length: 16),
          destination: Binding(buffer: 2, offset: 0, length: 16)))
    }),
  Rule(
    "copy past the source buffer",
    "\(vulkanContext) command 4: source offset 0+32 exceeds buffer 0 size 16",
    vulkan {
      $0.commands[4] = .copy(
        .init(
          source: Binding(buffer: 0, offset: 0, length: 32),
          destination: Binding(buffer: 4, offset: 0, length: 32)))
    }),
  Rule(
    "fill misaligned",
    "\(vulkanContext) command 0: fill offset 2 and length 60 must be multiples of 4",
    vulkan { $0.commands[0] = .fill(.init(target: Binding(buffer: 4, offset: 2, length: 60), pattern: 1)) }),
  Rule(
    "fill into a constant", "\(vulkanContext) command 0: target buffer 3 is a read-only constant",
    vulkan { $0.commands[0] = .fill(.init(target: Binding(buffer: 3, offset: 0, length: 16), pattern: 1)) }),
  Rule(
    "fill past its buffer", "\(vulkanContext) command 0: target offset 0+68 exceeds buffer 4 size 64",
    vulkan { $0.commands[0] = .fill(.init(target: Binding(buffer: 4, offset: 0, length: 68), pattern: 1)) }),
  Rule(
    "dynamic axis without an extent output",
    "function 'main' output 0 'y': a dynamic axis needs an extent output and an extent output a dynamic axis"
  ) { $0.functions[0].outputs[0].dynamicAxis = 1 },
  Rule("dynamic axis out of range", "function 'main' output 0 'y': dynamic axis 2 of rank 2") {
    $0.functions[0].outputs[0].dynamicAxis = 2
    $0.functions[0].outputs[0].extentOutput = 0
  },
  Rule(
    "extent output that is no extent",
    "function 'main' output 0 'y': extent output 0 is not an int64 scalar extent output"
  ) {
    $0.functions[0].outputs[0].dynamicAxis = 1
    $0.functions[0].outputs[0].extentOutput = 0
  },
  Rule("extent output before another output", "function 'main': extent outputs must come after every other output") {
    $0.functions[0].outputs.insert(.init(name: "n", dtype: "int64", shape: [], isExtent: true), at: 0)
  },
]

@Suite struct ManifestValidationTests {
  @Test func sampleIsValid() throws {
    let (manifest, _) = Fixtures.sample()
    try manifest.validate(sections: Fixtures.sampleSections())
  }

  @Test(arguments: rules)
  func brokenRuleIsReported(rule: Rule) throws {
    var (manifest, _) = Fixtures.sample()
    rule.edit(&manifest)
    #expect(throws: BundleError(.invalidManifest, rule.message)) {
      try manifest.validate(sections: Fixtures.sampleSections())
    }
  }

  /// The writer validates too, so it never produces a bundle the reader would reject.
  @Test(arguments: rules.prefix(12))
  func writerRefusesBrokenManifest(rule: Rule) throws {
    var (manifest, writer) = Fixtures.sample()
    rule.edit(&manifest)
    #expect(throws: BundleError(.invalidManifest, rule.message)) {
      try writer.serialize(manifest: manifest)
    }
  }

  @Test func byteCountOfSignatures() throws {
    #expect(try Manifest.TensorSignature(name: "s", dtype: "float32", shape: []).byteCount() == 4)
    #expect(try Manifest.TensorSignature(name: "e", dtype: "int64", shape: [3, 0]).byteCount() == 0)
    #expect(try Manifest.TensorSignature(name: "b", dtype: "bfloat16", shape: [2, 3]).byteCount() == 12)
    #expect(throws: BundleError(.invalidManifest, "tensor 'q': unknown dtype 'qint4'")) {
      try Manifest.TensorSignature(name: "q", dtype: "qint4", shape: [2]).byteCount()
    }
  }

  @Test func elementSizes() {
    let expected: [String: Int] = [
      "bool": 1, "int8": 1, "uint8": 1, "float16": 2, "bfloat16": 2, "int16": 2, "uint16": 2,
      "float32": 4, "int32": 4, "uint32": 4, "float64": 8, "int64": 8, "uint64": 8,
    ]
    for (dtype, size) in expected { #expect(Manifest.elementSize(of: dtype) == size) }
    #expect(Manifest.elementSize(of: "Float32") == nil)
  }

  @Test func lookups() {
    let (manifest, _) = Fixtures.sample()
    #expect(manifest.function(named: "main")?.program(for: "cpu")?.target == "cpu")
    #expect(manifest.function(named: "other") == nil)
    #expect(manifest.functions[0].program(for: "metal") == nil)
  }
}
