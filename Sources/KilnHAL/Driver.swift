/// A device driver: enumerates the devices it can open.
public protocol Driver: Sendable {
  /// `vulkan` or `cpu`.
  var name: String { get }
  /// Every device of this driver, in preference order (best first).
  func enumerate() throws -> [DeviceInfo]
  /// Opens the device described by `info` (as returned by `enumerate`).
  func open(_ info: DeviceInfo) throws -> any Device
}
