// swift-tools-version: 6.1
// Kiln: an ahead-of-time compiler and runtime for ONNX models on Vulkan devices and the CPU.
import PackageDescription

/// glslang 12 on Debian ships static archives only; this order resolves every symbol (FIELD-NOTES).
let glslangLibraries = [
  "glslang", "SPIRV", "glslang-default-resource-limits", "MachineIndependent", "GenericCodeGen",
  "OSDependent", "OGLCompiler", "SPIRV-Tools-opt", "SPIRV-Tools", "stdc++",
]

let package = Package(
  name: "Kiln",
  platforms: [.macOS(.v15)],
  products: [
    .executable(name: "kiln", targets: ["kiln"]),
    .library(name: "KilnRuntime", targets: ["KilnRuntime"]),
    /// libKilnC.so: the C API of include/kiln.h (installed as libkiln.so by the Python package).
    .library(name: "KilnC", type: .dynamic, targets: ["KilnC"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    .package(url: "https://github.com/apple/swift-protobuf", from: "1.28.0"),
  ],
  targets: [
    // C shims: each is imported by exactly one Kiln target.
    .systemLibrary(name: "CVulkan", pkgConfig: "vulkan", providers: [.apt(["libvulkan-dev"])]),
    .target(
      name: "CGlslang",
      linkerSettings: glslangLibraries.map { .linkedLibrary($0) } + [.linkedLibrary("pthread")]),
    .target(
      name: "CSPIRVTools",
      cxxSettings: [.unsafeFlags(["-std=c++17"])],
      linkerSettings: [
        .linkedLibrary("SPIRV-Tools-opt"), .linkedLibrary("SPIRV-Tools"), .linkedLibrary("stdc++"),
      ]),

    /// Element types (dtypes, float16/bfloat16/8-bit float conversions, sub-byte packing): shared by
    /// the compiler's IR and the runtime's tensor files.
    .target(name: "KilnTensor"),

    // Compiler side.
    .target(name: "KilnIR", dependencies: ["KilnTensor"]),
    .target(
      name: "KilnONNX",
      dependencies: ["KilnIR", .product(name: "SwiftProtobuf", package: "swift-protobuf")]),
    .target(name: "KilnCompiler", dependencies: ["KilnIR", "KilnTensor"]),
    .target(
      name: "KilnCodegen", dependencies: ["KilnIR", "KilnCompiler", "KilnSPIRV", "KilnBundle", "CGlslang", "CKilnProcess"]),
    /// posix_spawn with a working directory, for the C compiler the CPU target runs.
    .target(name: "CKilnProcess"),
    /// SPIR-V validation, reflection and optimisation, shared by the compiler and the Vulkan driver
    /// (which re-validates every module it is given before the driver sees it).
    .target(name: "KilnSPIRV", dependencies: ["CSPIRVTools"]),

    // The one contract between compiler and runtime.
    .target(name: "KilnBundle"),

    // Runtime side.
    .target(name: "KilnHAL"),
    .target(name: "KilnVulkan", dependencies: ["KilnHAL", "KilnSPIRV", "CVulkan"]),
    .target(name: "CKilnCPU"),
    .target(name: "KilnCPU", dependencies: ["KilnHAL", "CKilnCPU"]),
    .target(name: "KilnRuntime", dependencies: ["KilnTensor", "KilnHAL", "KilnBundle", "KilnVulkan", "KilnCPU"]),

    // The C API (include/kiln.h): KilnC defines its functions with @_cdecl; CKilnAPI shows
    // the header to Swift for the kiln_tensor layout and the enums.
    .target(name: "CKilnAPI"),
    .target(
      name: "KilnC",
      dependencies: ["CKilnAPI", "KilnRuntime", "KilnHAL", "KilnBundle", "KilnONNX", "KilnCompiler", "KilnCodegen", "KilnIR"]),

    /// The ONNX backend-test conformance runner, shared by `kiln conformance` and the test suite.
    .target(name: "KilnConformance", dependencies: ["KilnIR", "KilnONNX", "KilnCodegen", "KilnRuntime", "KilnBundle"]),

    .executableTarget(
      name: "kiln",
      dependencies: [
        "KilnRuntime", "KilnIR", "KilnONNX", "KilnCompiler", "KilnCodegen", "KilnBundle", "KilnConformance",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ]),

    // Fuzzing (tools/fuzz): the one-input function of each parser of untrusted bytes, and one
    // executable per target that hands it to libFuzzer (built with -DKILN_FUZZ) or replays files.
    .target(
      name: "KilnFuzzTargets", dependencies: ["KilnONNX", "KilnIR", "KilnCompiler", "KilnBundle", "KilnRuntime"]),
    .executableTarget(name: "fuzz-importer", dependencies: ["KilnFuzzTargets"]),
    .executableTarget(name: "fuzz-bundle", dependencies: ["KilnFuzzTargets"]),
    .executableTarget(name: "fuzz-npy", dependencies: ["KilnFuzzTargets"]),
    .executableTarget(name: "fuzz-pb", dependencies: ["KilnFuzzTargets"]),

    // Tests.
    .target(
      name: "KilnTestSupport",
      dependencies: ["KilnHAL", "KilnVulkan", "KilnCPU", "KilnCodegen", "KilnRuntime"],
      path: "Tests/KilnTestSupport"),
    .testTarget(name: "KilnHALTests", dependencies: ["KilnTestSupport", "KilnHAL", "KilnCodegen", "KilnCompiler", "KilnIR", "KilnVulkan", "KilnSPIRV"]),
    .testTarget(name: "KilnIRTests", dependencies: ["KilnIR"]),
    .testTarget(name: "KilnONNXTests", dependencies: ["KilnONNX", "KilnIR"]),
    .testTarget(
      name: "KilnCodegenTests", dependencies: ["KilnCodegen", "KilnCompiler", "KilnIR", "KilnTestSupport"],
      exclude: ["Golden"]),
    .testTarget(name: "KilnBundleTests", dependencies: ["KilnBundle"]),
    .testTarget(name: "KilnCompilerTests", dependencies: ["KilnCompiler", "KilnIR"]),
    .testTarget(name: "KilnRuntimeTests", dependencies: ["KilnRuntime"]),
    .testTarget(
      name: "KilnEndToEndTests",
      dependencies: ["KilnONNX", "KilnCompiler", "KilnCodegen", "KilnRuntime", "KilnBundle", "KilnSPIRV", "KilnTestSupport"]),
    .testTarget(name: "KilnConformanceTests", dependencies: ["KilnConformance", "KilnTestSupport"]),
    .testTarget(name: "KilnCPUTests", dependencies: ["KilnCPU", "KilnCodegen", "KilnHAL"]),
    /// Replays every input under Tests/FuzzCorpus through its fuzz target.
    .testTarget(name: "KilnFuzzTests", dependencies: ["KilnFuzzTargets"]),
  ]
)
