import KilnBundle
import Testing

/// Which of a function's programs a device runs: its class's, else the class-free one, else any.
struct ProgramSelectionTests {
  func program(_ target: String, _ deviceClass: String?) -> Manifest.Program {
    Manifest.Program(target: target, deviceClass: deviceClass, buffers: [], commands: [])
  }

  func function(_ programs: [Manifest.Program]) -> Manifest.Function {
    Manifest.Function(name: "main", inputs: [], outputs: [], programs: programs)
  }

  @Test func theDeviceClassesProgramFirst() {
    let both = function([program("cpu", nil), program("vulkan", "cpu"), program("vulkan", "gpu")])
    #expect(both.program(for: "vulkan", deviceClasses: ["gpu"])?.deviceClass == "gpu")
    #expect(both.program(for: "vulkan", deviceClasses: ["cpu"])?.deviceClass == "cpu")
    #expect(both.program(for: "cpu", deviceClasses: ["cpu"])?.target == "cpu")
    // A class the bundle lacks still runs, on one of the target's programs.
    #expect(both.program(for: "vulkan", deviceClasses: ["npu"])?.target == "vulkan")
    #expect(both.program(for: "metal", deviceClasses: ["gpu"]) == nil)
    // A class-free program serves every class the bundle has no program of its own for.
    let generic = function([program("vulkan", "gpu"), program("vulkan", nil)])
    #expect(generic.program(for: "vulkan", deviceClasses: ["cpu"])?.deviceClass == nil)
    #expect(generic.program(for: "vulkan", deviceClasses: ["gpu"])?.deviceClass == "gpu")
    #expect(generic.program(for: "vulkan")?.deviceClass == nil)
  }

  /// A device's classes are tried best first; a coopmat program is never the fallback of a device
  /// that does not list it while another class's program is there.
  @Test func classesAreTriedInTheDevicesOrder() {
    let common = function([program("vulkan", "cpu"), program("vulkan", "gpu")])
    #expect(common.program(for: "vulkan", deviceClasses: ["coopmat", "gpu", "cpu"])?.deviceClass == "gpu")
    let half = function([program("vulkan", "coopmat"), program("vulkan", "cpu")])
    #expect(half.program(for: "vulkan", deviceClasses: ["gpu", "cpu"])?.deviceClass == "cpu")
    #expect(half.program(for: "vulkan", deviceClasses: ["coopmat", "gpu", "cpu"])?.deviceClass == "coopmat")
  }

  @Test func labelsNameTheClass() {
    #expect(program("vulkan", "gpu").label == "vulkan/gpu")
    #expect(program("cpu", nil).label == "cpu")
  }
}
