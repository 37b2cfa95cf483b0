/// A device driver: enumerates the devices it can open.
public protocol Driver: Sendable {
  /// `vulkan` or `cpu`.
  var name: String { get }
  /// Every device of this driver, in preference order (best first).
  func enumerate() throws -> [DeviceInfo]
  /// Opens the device described by `info` (as returned by `enumerate`) with `options`.
  func open(_ info: DeviceInfo, options: DeviceOptions) throws -> any Device
}

extension Driver {
  /// Opens the device with default options and the faults `KILN_FAULTS` asks for.
  public func open(_ info: DeviceInfo) throws -> any Device {
    try open(info, options: try .fromEnvironment())
  }
}
