import CKilnCPU
import Foundation
import KilnHAL

/// Kiln's CPU driver: one device that runs native kernels (shared objects following the ABI in
/// `kiln_cpu_abi.h`) on a pool of host threads.
///
/// The driver is a value: each configuration describes the one device it enumerates. Tests shrink
/// the limits or the thread count; everything else uses `CPUDriver()`.
public struct CPUDriver: Driver {
  public let name = "cpu"
  /// The device this driver enumerates and opens.
  public let deviceInfo: DeviceInfo
  /// Threads that run a dispatch's workgroups (the submission thread included).
  public let threadCount: Int
  /// How long a submission waits for its semaphore waits before it fails with `.timeout`.
  public let submissionWaitTimeout: Duration

  /// - Parameters:
  ///   - limits: the device limits to report and enforce; `nil` for the host's (`hostLimits()`).
  ///     `maxPushConstantBytes` is capped at 128 (the ABI passes at most 32 words).
  ///   - threadCount: threads per dispatch; `nil` for the active processor count. At least 1.
  ///   - submissionWaitTimeout: the longest a queued submission waits for its semaphores.
  public init(limits: DeviceLimits? = nil, threadCount: Int? = nil, submissionWaitTimeout: Duration = .seconds(60)) {
    var limits = limits ?? Self.hostLimits()
    limits.maxPushConstantBytes = min(limits.maxPushConstantBytes, 128)
    let threads = max(1, threadCount ?? ProcessInfo.processInfo.activeProcessorCount)
    self.threadCount = threads
    self.submissionWaitTimeout = submissionWaitTimeout
    self.deviceInfo = DeviceInfo(
      uri: "cpu", shortURI: "cpu", driver: "cpu", name: HostCPU.modelName, type: .host, driverName: "kiln-cpu",
      driverVersion: "1", apiVersion: "abi \(KILN_CPU_ABI_VERSION)", uuid: Self.deviceUUID, limits: limits,
      features: DeviceFeatures(
        float16: true, float64: true, int8: true, int16: true, int64: true, storage8Bit: true, storage16Bit: true,
        subgroupSize: 1, subgroupArithmetic: false, cooperativeMatrix: false, pushDescriptors: false,
        timelineSemaphores: true, concurrency: threads))
  }

  /// The fixed UUID of the CPU device ("kiln cpu device1" in ASCII).
  public static let deviceUUID = "6b696c6e206370752064657669636531"

  /// Limits that describe this host honestly: one allocation or binding may span all of physical
  /// memory, workgroup counts are bounded by the ABI's 32-bit linear index, push constants by its
  /// 32 words, and per-workgroup scratch by the 8 MiB kernel threads' stacks.
  public static func hostLimits() -> DeviceLimits {
    let physical = ProcessInfo.processInfo.physicalMemory
    let memory = physical > 0 ? Int(clamping: physical) : 1 << 34
    return DeviceLimits(
      maxWorkgroupSize: [1024, 1024, 64], maxWorkgroupInvocations: 1024,
      maxWorkgroupCount: [Int(Int32.max), 65535, 65535], maxSharedMemoryBytes: 65536, maxPushConstantBytes: 128,
      maxStorageBufferRange: memory, maxMemoryAllocationSize: memory, minStorageBufferOffsetAlignment: 16,
      maxStorageBuffersPerDispatch: 1024, deviceMemoryBytes: memory)
  }

  public func enumerate() throws -> [DeviceInfo] { [deviceInfo] }

  /// Opens the CPU device; `info` must be the one `enumerate()` returns (matched by URI).
  public func open(_ info: DeviceInfo, options: DeviceOptions) throws -> any Device {
    guard info.driver == name, info.uri == deviceInfo.uri else {
      throw HALError(.unavailable, "the CPU driver has no device '\(info.uri)' (driver '\(info.driver)')")
    }
    return try openDevice(options: options)
  }

  /// Opens the CPU device with this driver's configuration; `options` nil reads `KILN_FAULTS`.
  public func openDevice(options: DeviceOptions? = nil) throws -> CPUDevice {
    try CPUDevice(
      info: deviceInfo, threadCount: threadCount, submissionWaitTimeout: submissionWaitTimeout,
      options: options ?? .fromEnvironment())
  }
}

/// Facts about the host processor, read once.
enum HostCPU {
  /// The "model name" line of /proc/cpuinfo, else a generic name with the architecture.
  static let modelName: String = {
    if let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) {
      for line in text.split(separator: "\n") where line.hasPrefix("model name") {
        if let colon = line.firstIndex(of: ":") {
          let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
          if !value.isEmpty { return value }
        }
      }
    }
    #if arch(x86_64)
      return "x86-64 host CPU"
    #elseif arch(arm64)
      return "arm64 host CPU"
    #else
      return "host CPU"
    #endif
  }()
}

extension Duration {
  /// Whole nanoseconds, clamped to 0...Int64.max (for C waits).
  var clampedNanoseconds: Int64 {
    let (seconds, attoseconds) = components
    if seconds < 0 || (seconds == 0 && attoseconds <= 0) { return 0 }
    if seconds >= Int64.max / 1_000_000_000 - 1 { return Int64.max }
    return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
  }
}
