import Foundation
import KilnHAL
import KilnRuntime

/// One registry for the process: Vulkan's instance is created once, on first use.
/// Thread-safety: `DeviceRegistry` is immutable after init; the lazy global is initialised once.
let sharedRegistry = DeviceRegistry()

/// `kiln_device_list *`: a snapshot of the devices, with C strings it owns. Immutable.
final class CDeviceList {
  let entries: [(uri: CString, name: CString, driver: CString)]
  init(_ devices: [DeviceInfo]) {
    entries = devices.map { (CString($0.shortURI), CString($0.name), CString($0.driver)) }
  }
}

/// `kiln_device *`: an open device. Immutable; sessions retain it.
final class CDevice {
  let device: any Device
  let uri: CString
  let name: CString
  let driver: CString
  init(_ device: any Device) {
    self.device = device
    uri = CString(device.info.shortURI)
    name = CString(device.info.name)
    driver = CString(device.info.driver)
  }
}

@_cdecl("kiln_device_list_create")
public func kiln_device_list_create(_ out: UnsafeMutablePointer<OpaquePointer?>?) -> OpaquePointer? {
  status {
    guard let out else { throw CAPIError(.invalidArgument, "out_list is NULL") }
    out.pointee = retained(CDeviceList(sharedRegistry.allDevices))
  }
}

@_cdecl("kiln_device_list_get_count")
public func kiln_device_list_get_count(_ list: OpaquePointer?) -> Int {
  (peek(list) as CDeviceList?)?.entries.count ?? 0
}

/// Entry `index` of `list`, or nil.
private func entry(_ list: OpaquePointer?, _ index: Int) -> (uri: CString, name: CString, driver: CString)? {
  guard let entries = (peek(list) as CDeviceList?)?.entries, entries.indices.contains(index) else { return nil }
  return entries[index]
}

@_cdecl("kiln_device_list_get_uri")
public func kiln_device_list_get_uri(_ list: OpaquePointer?, _ index: Int) -> UnsafePointer<CChar>? {
  entry(list, index).map { UnsafePointer($0.uri.pointer) }
}

@_cdecl("kiln_device_list_get_name")
public func kiln_device_list_get_name(_ list: OpaquePointer?, _ index: Int) -> UnsafePointer<CChar>? {
  entry(list, index).map { UnsafePointer($0.name.pointer) }
}

@_cdecl("kiln_device_list_get_driver")
public func kiln_device_list_get_driver(_ list: OpaquePointer?, _ index: Int) -> UnsafePointer<CChar>? {
  entry(list, index).map { UnsafePointer($0.driver.pointer) }
}

@_cdecl("kiln_device_list_release")
public func kiln_device_list_release(_ list: OpaquePointer?) {
  release(list, as: CDeviceList.self)
}

@_cdecl("kiln_device_open")
public func kiln_device_open(_ uri: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?)
  -> OpaquePointer?
{
  status {
    let text = try string(uri, "uri")
    guard let out else { throw CAPIError(.invalidArgument, "out_device is NULL") }
    out.pointee = retained(CDevice(try sharedRegistry.open(text)))
  }
}

@_cdecl("kiln_device_get_uri")
public func kiln_device_get_uri(_ device: OpaquePointer?) -> UnsafePointer<CChar>? {
  (peek(device) as CDevice?).map { UnsafePointer($0.uri.pointer) }
}

@_cdecl("kiln_device_get_name")
public func kiln_device_get_name(_ device: OpaquePointer?) -> UnsafePointer<CChar>? {
  (peek(device) as CDevice?).map { UnsafePointer($0.name.pointer) }
}

@_cdecl("kiln_device_get_driver")
public func kiln_device_get_driver(_ device: OpaquePointer?) -> UnsafePointer<CChar>? {
  (peek(device) as CDevice?).map { UnsafePointer($0.driver.pointer) }
}

@_cdecl("kiln_device_release")
public func kiln_device_release(_ device: OpaquePointer?) {
  release(device, as: CDevice.self)
}
