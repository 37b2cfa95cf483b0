import ArgumentParser
import Foundation
import KilnHAL
import KilnRuntime

/// `kiln devices`: every device with its URIs, type, driver, API version, limits and features.
struct DevicesCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "devices", abstract: "List the devices Kiln can run on, best first.")

  @Flag(help: "Print JSON instead of text.")
  var json = false

  @Flag(help: "Compile and run a small kernel on every device and check its output.")
  var check = false

  func run() throws {
    let registry = DeviceRegistry()
    let devices = registry.allDevices
    if json {
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
      let data = try encoder.encode(devices)
      print(String(decoding: data, as: UTF8.self))
      return
    }
    if let error = registry.vulkanError {
      print("vulkan: unavailable (\(error))\n")
    }
    for skipped in registry.vulkan?.skippedDevices ?? [] { print("vulkan: skipped \(skipped)") }
    let autoURI = (try? registry.resolve(.auto))?.shortURI
    for device in devices {
      print(describe(device, isAuto: device.shortURI == autoURI))
    }
    if check { try runChecks(registry) }
  }

  private func runChecks(_ registry: DeviceRegistry) throws {
    var failures = 0
    print("device check: y = a*x + x*x over 1M floats, every element compared")
    for info in registry.allDevices {
      do {
        let device = try registry.open(info)
        let result = try DeviceCheck.run(on: device)
        print(
          "  \(info.shortURI.padding(toLength: 10, withPad: " ", startingAt: 0)) ok   compile \(format(result.compileMilliseconds)) ms, "
            + "first run \(format(result.firstRunMilliseconds)) ms, run \(format(result.runMilliseconds)) ms")
      } catch {
        failures += 1
        print("  \(info.shortURI.padding(toLength: 10, withPad: " ", startingAt: 0)) FAIL \(error)")
      }
    }
    if failures > 0 { throw ExitCode(1) }
  }

  private func format(_ value: Double) -> String {
    String(format: "%.2f", value)
  }

  private func describe(_ d: DeviceInfo, isAuto: Bool) -> String {
    let l = d.limits
    let f = d.features
    func yes(_ flag: Bool) -> String { flag ? "yes" : "no" }
    func bytes(_ n: Int) -> String {
      if n >= 1 << 30 && n % (1 << 30) == 0 { return "\(n >> 30) GiB" }
      if n >= 1 << 20 && n % (1 << 20) == 0 { return "\(n >> 20) MiB" }
      if n >= 1 << 10 && n % (1 << 10) == 0 { return "\(n >> 10) KiB" }
      return "\(n) B"
    }
    var lines = [
      "\(d.shortURI)\(isAuto ? "  (auto)" : "")  \(d.name)",
      "  uri:       \(d.uri)",
      "  type:      \(d.type.rawValue)    driver: \(d.driver) (\(d.driverName)\(d.driverVersion.isEmpty ? "" : " \(d.driverVersion)"))"
        + (d.driver == "vulkan" ? "    kernels: \(d.kernelClasses[0]) class" : ""),
      "  api:       \(d.apiVersion)",
      "  limits:    workgroup \(l.maxWorkgroupSize.map(String.init).joined(separator: "x")) / \(l.maxWorkgroupInvocations) invocations, "
        + "shared memory \(bytes(l.maxSharedMemoryBytes)), push constants \(l.maxPushConstantBytes) B",
      "             storage buffer range \(bytes(l.maxStorageBufferRange)), max allocation \(bytes(l.maxMemoryAllocationSize)), "
        + "offset alignment \(l.minStorageBufferOffsetAlignment) B, \(l.maxStorageBuffersPerDispatch) buffers per dispatch",
      "  features:  fp16 \(yes(f.float16)), fp64 \(yes(f.float64)), int8 \(yes(f.int8)), int16 \(yes(f.int16)), int64 \(yes(f.int64)), "
        + "8/16-bit storage \(yes(f.storage8Bit))/\(yes(f.storage16Bit))",
      "             subgroup size \(f.subgroupSize) (arithmetic \(yes(f.subgroupArithmetic))), cooperative matrix \(yes(f.cooperativeMatrix)), "
        + "push descriptors \(yes(f.pushDescriptors)), timeline semaphores \(yes(f.timelineSemaphores))"
        + (f.concurrency > 0 ? ", \(f.concurrency) threads" : ""),
    ]
    lines.append("")
    return lines.joined(separator: "\n")
  }
}
