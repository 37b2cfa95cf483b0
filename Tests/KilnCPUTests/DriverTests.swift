import Foundation
import KilnCPU
import KilnHAL
import Testing

@Suite struct DriverTests {
  @Test func enumeratesOneHostDevice() throws {
    let driver = CPUDriver()
    #expect(driver.name == "cpu")
    let devices = try driver.enumerate()
    #expect(devices.count == 1)
    let info = try #require(devices.first)
    #expect(info.uri == "cpu")
    #expect(info.shortURI == "cpu")
    #expect(info.driver == "cpu")
    #expect(info.type == .host)
    #expect(info.driverName == "kiln-cpu")
    #expect(info.apiVersion == "abi 1")
    #expect(info.uuid == CPUDriver.deviceUUID)
    #expect(info.uuid.count == 32 && info.uuid.allSatisfy(\.isHexDigit))
    #expect(!info.name.isEmpty)
    #expect(info.features.timelineSemaphores)
    #expect(!info.features.pushDescriptors)
    #expect(info.features.subgroupSize == 1)
    #expect(info.features.float16 && info.features.float64 && info.features.int8 && info.features.int16)
    #expect(info.features.int64)
    #expect(info.features.concurrency == ProcessInfo.processInfo.activeProcessorCount)
    #expect(info.limits.maxPushConstantBytes == 128)
    #expect(info.limits.maxMemoryAllocationSize > 0)
    #expect(info.limits.maxStorageBufferRange <= info.limits.maxMemoryAllocationSize)
    // Stable across calls and drivers: `kiln devices` and the tuning tables key on it.
    #expect(try CPUDriver().enumerate() == devices)
  }

  @Test func nameComesFromProcCPUInfo() throws {
    let info = CPUDriver().deviceInfo
    if let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
      let line = text.split(separator: "\n").first(where: { $0.hasPrefix("model name") })
    {
      #expect(line.hasSuffix(info.name))
    }
  }

  @Test func opensTheDeviceItEnumerates() throws {
    let driver = CPUDriver()
    let info = try #require(try driver.enumerate().first)
    let device = try driver.open(info)
    #expect(device.info == info)
    #expect(device is CPUDevice)
  }

  @Test func refusesForeignDeviceInfo() throws {
    var info = CPUDriver().deviceInfo
    info.uri = "vulkan://00000000000000000000000000000000"
    info.driver = "vulkan"
    expectHALError(.unavailable) { _ = try CPUDriver().open(info) }
  }

  @Test func limitsAndThreadsAreConfigurable() throws {
    var limits = CPUDriver.hostLimits()
    limits.maxMemoryAllocationSize = 1 << 20
    limits.maxPushConstantBytes = 4096
    let driver = CPUDriver(limits: limits, threadCount: 3)
    #expect(driver.deviceInfo.limits.maxMemoryAllocationSize == 1 << 20)
    #expect(driver.deviceInfo.limits.maxPushConstantBytes == 128, "the ABI passes at most 32 words")
    #expect(driver.deviceInfo.features.concurrency == 3)
    let device = try driver.openDevice()
    #expect(device.threadCount == 3)
    #expect(CPUDriver(threadCount: 0).threadCount == 1)
  }
}
