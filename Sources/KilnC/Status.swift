import Foundation
import KilnBundle
import KilnCodegen
import KilnCompiler
import KilnHAL
import KilnIR
import KilnONNX
import KilnRuntime

/// The status a failed C call returns (`kiln_status *`); success is NULL.
///
/// Ownership: the caller owns what a call returns and releases it with `kiln_status_release`.
/// Immutable after creation, so any thread may read it.
final class CStatus {
  let code: Int32
  let message: CString

  init(_ code: CStatusCode, _ message: String) {
    self.code = code.rawValue
    self.message = CString(oneLine(message))
  }

  /// A retained pointer for C.
  var retained: OpaquePointer { OpaquePointer(Unmanaged.passRetained(self).toOpaque()) }
}

/// `kiln_status_code` of include/kiln.h.
enum CStatusCode: Int32 {
  case ok = 0, invalidArgument, notFound, invalidModel, device, version, io, `internal`
}

/// A C string owned by a Swift object: valid until the object is released.
final class CString: @unchecked Sendable {  // @unchecked: the bytes are never written after init
  let pointer: UnsafeMutablePointer<CChar>
  init(_ text: String) { pointer = strdup(text) }
  deinit { free(pointer) }
}

/// Runs `body`, returning nil on success and a retained status for any error it throws: the
/// one place Kiln's errors become C statuses.
func status(_ body: () throws -> Void) -> OpaquePointer? {
  do {
    try body()
    return nil
  } catch {
    let (code, message) = classify(error)
    return CStatus(code, message).retained
  }
}

/// The C code and message of a Kiln error.
func classify(_ error: Error) -> (CStatusCode, String) {
  switch error {
  case let error as CAPIError: return (error.code, error.message)
  case let error as RuntimeError:
    switch error.code {
    case .invalidInput: return (.invalidArgument, error.message)
    case .noProgram, .unsupported: return (.invalidModel, error.message)
    case .failed, .limitExceeded, .overBudget: return (.device, error.message)
    }
  case let error as HALError:
    switch error.code {
    case .unavailable: return (.notFound, error.description)
    case .invalidArgument: return (.invalidArgument, error.description)
    case .internal: return (.internal, error.description)
    default: return (.device, error.description)
    }
  case let error as BundleError:
    switch error.code {
    case .io, .protectedPath: return (.io, error.description)
    case .unsupportedVersion: return (.version, error.description)
    default: return (.invalidModel, error.description)
    }
  case let error as ONNXImportError:
    switch error.code {
    case .io: return (.io, error.description)
    case .internalError: return (.internal, error.description)
    default: return (.invalidModel, error.description)
    }
  case let error as CodegenError:
    switch error.code {
    case .io: return (.io, error.description)
    case .internal: return (.internal, error.description)
    default: return (.invalidModel, error.description)
    }
  case let error as LoweringError: return (.invalidModel, error.description)
  case let error as IRError: return (.invalidModel, error.description)
  case let error as CocoaError:
    return (
      error.code == .fileReadNoSuchFile || error.code == .fileNoSuchFile ? .notFound : .io, error.localizedDescription
    )
  default:
    return (.internal, String(describing: error))
  }
}

/// An error the C layer itself raises (a NULL argument, an unknown option).
struct CAPIError: Error {
  var code: CStatusCode
  var message: String
  init(_ code: CStatusCode, _ message: String) {
    self.code = code
    self.message = message
  }
}

/// Collapses a multi-line message into one line.
func oneLine(_ text: String) -> String {
  text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    .joined(separator: " | ")
}

/// The Swift object behind a handle, unretained; throws for NULL.
func object<T: AnyObject>(_ handle: OpaquePointer?, _ what: String) throws -> T {
  guard let handle else { throw CAPIError(.invalidArgument, "\(what) is NULL") }
  return Unmanaged<T>.fromOpaque(UnsafeRawPointer(handle)).takeUnretainedValue()
}

/// The Swift object behind a handle for an accessor that cannot fail; nil for NULL.
func peek<T: AnyObject>(_ handle: OpaquePointer?) -> T? {
  handle.map { Unmanaged<T>.fromOpaque(UnsafeRawPointer($0)).takeUnretainedValue() }
}

/// Releases the reference a handle holds.
func release<T: AnyObject>(_ handle: OpaquePointer?, as type: T.Type) {
  guard let handle else { return }
  Unmanaged<T>.fromOpaque(UnsafeRawPointer(handle)).release()
}

/// A retained handle for C.
func retained(_ object: AnyObject) -> OpaquePointer {
  OpaquePointer(Unmanaged.passRetained(object).toOpaque())
}

/// A C string argument as a Swift string; throws for NULL or invalid UTF-8.
func string(_ pointer: UnsafePointer<CChar>?, _ what: String) throws -> String {
  guard let pointer else { throw CAPIError(.invalidArgument, "\(what) is NULL") }
  guard let text = String(validatingCString: pointer) else { throw CAPIError(.invalidArgument, "\(what) is not UTF-8") }
  return text
}

// MARK: - Status and version entry points

@_cdecl("kiln_status_get_code")
public func kiln_status_get_code(_ status: OpaquePointer?) -> Int32 {
  (peek(status) as CStatus?)?.code ?? CStatusCode.ok.rawValue
}

private let emptyString = CString("")

@_cdecl("kiln_status_get_message")
public func kiln_status_get_message(_ status: OpaquePointer?) -> UnsafePointer<CChar>? {
  UnsafePointer((peek(status) as CStatus?)?.message.pointer ?? emptyString.pointer)
}

@_cdecl("kiln_status_release")
public func kiln_status_release(_ status: OpaquePointer?) {
  release(status, as: CStatus.self)
}

/// The API version this library implements: major 1, minor 0 (include/kiln.h).
let apiVersion: UInt32 = 1 << 16 | 0
private let versionString = CString(KilnCodegenVersion.string)

@_cdecl("kiln_get_api_version")
public func kiln_get_api_version() -> UInt32 { apiVersion }

@_cdecl("kiln_get_version")
public func kiln_get_version() -> UnsafePointer<CChar>? { UnsafePointer(versionString.pointer) }

@_cdecl("kiln_check_version")
public func kiln_check_version(_ header: UInt32) -> OpaquePointer? {
  status {
    let (major, minor) = (header >> 16, header & 0xffff)
    guard major == apiVersion >> 16, minor <= apiVersion & 0xffff else {
      throw CAPIError(
        .version,
        "this libkiln implements C API \(apiVersion >> 16).\(apiVersion & 0xffff); the caller was built for \(major).\(minor)"
      )
    }
  }
}
