import CKilnAPI
import Foundation
import KilnBundle
import KilnRuntime

/// `kiln_session *`: a bundle loaded on a device, with the C strings describing its tensors.
/// Thread-safety: immutable after init except inside `Session`, whose runs are serialised.
final class CSession {
  let session: Session
  let device: CDevice
  let modelName: CString
  let program: CString
  let inputs: [CTensorDescription]
  let outputs: [CTensorDescription]

  init(_ session: Session, device: CDevice) {
    self.session = session
    self.device = device
    modelName = CString(session.bundle.manifest.modelName)
    program = CString(session.program.label)
    inputs = session.function.inputs.map { CTensorDescription($0) }
    outputs = session.outputs.map { CTensorDescription($0) }
  }

  func descriptions(_ io: kiln_io) -> [CTensorDescription] {
    io == KILN_OUTPUT ? outputs : inputs
  }
}

/// What C sees of one input or output.
final class CTensorDescription {
  let signature: Manifest.TensorSignature
  let name: CString
  let dtypeName: CString
  let dtype: kiln_dtype
  /// Names of the axes whose extent is not a number (the data decides it).
  let dimNames: [Int: CString]
  let maxBytes: Int

  init(_ signature: Manifest.TensorSignature) {
    self.signature = signature
    name = CString(signature.name)
    dtypeName = CString(signature.dtype)
    dtype = CTensorDescription.codes[signature.dtype] ?? KILN_DTYPE_UNDEFINED
    dimNames = signature.dynamicAxis.map { [$0: CString("\(signature.name)_dim\($0)")] } ?? [:]
    maxBytes = Session.byteCount(signature)
  }

  /// ONNX TensorProto codes of Kiln's dtype names.
  static let codes: [String: kiln_dtype] = [
    "float32": KILN_DTYPE_FLOAT32, "uint8": KILN_DTYPE_UINT8, "int8": KILN_DTYPE_INT8, "uint16": KILN_DTYPE_UINT16,
    "int16": KILN_DTYPE_INT16, "int32": KILN_DTYPE_INT32, "int64": KILN_DTYPE_INT64, "bool": KILN_DTYPE_BOOL,
    "float16": KILN_DTYPE_FLOAT16, "float64": KILN_DTYPE_FLOAT64, "uint32": KILN_DTYPE_UINT32,
    "uint64": KILN_DTYPE_UINT64, "bfloat16": KILN_DTYPE_BFLOAT16,
  ]
}

/// Loads `reader` on the device behind `handle`.
private func makeSession(
  _ handle: OpaquePointer?, _ reader: () throws -> BundleReader, _ out: UnsafeMutablePointer<OpaquePointer?>?
)
  -> OpaquePointer?
{
  status {
    let device: CDevice = try object(handle, "device")
    guard let out else { throw CAPIError(.invalidArgument, "out_session is NULL") }
    let session = try Session(bundle: try reader(), device: device.device)
    out.pointee = retained(CSession(session, device: device))
  }
}

@_cdecl("kiln_session_create_from_file")
public func kiln_session_create_from_file(
  _ device: OpaquePointer?, _ path: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?
) -> OpaquePointer? {
  makeSession(
    device,
    {
      let url = URL(fileURLWithPath: try string(path, "path"))
      guard FileManager.default.fileExists(atPath: url.path) else {
        throw CAPIError(.notFound, "'\(url.path)': no such file")
      }
      return try BundleReader(contentsOf: url)
    }, out)
}

@_cdecl("kiln_session_create_from_bytes")
public func kiln_session_create_from_bytes(
  _ device: OpaquePointer?, _ bytes: UnsafeRawPointer?, _ size: Int, _ out: UnsafeMutablePointer<OpaquePointer?>?
) -> OpaquePointer? {
  makeSession(
    device,
    {
      guard let bytes, size > 0 else { throw CAPIError(.invalidArgument, "bundle is NULL or empty") }
      return try BundleReader(bytes: Array(UnsafeRawBufferPointer(start: bytes, count: size)))
    }, out)
}

@_cdecl("kiln_session_release")
public func kiln_session_release(_ session: OpaquePointer?) {
  release(session, as: CSession.self)
}

@_cdecl("kiln_session_get_model_name")
public func kiln_session_get_model_name(_ session: OpaquePointer?) -> UnsafePointer<CChar>? {
  (peek(session) as CSession?).map { UnsafePointer($0.modelName.pointer) }
}

@_cdecl("kiln_session_get_program")
public func kiln_session_get_program(_ session: OpaquePointer?) -> UnsafePointer<CChar>? {
  (peek(session) as CSession?).map { UnsafePointer($0.program.pointer) }
}

/// Input or output `index` of the session behind `handle`, or nil.
private func description(_ handle: OpaquePointer?, _ io: kiln_io, _ index: Int) -> CTensorDescription? {
  guard let session = peek(handle) as CSession? else { return nil }
  let list = session.descriptions(io)
  return list.indices.contains(index) ? list[index] : nil
}

@_cdecl("kiln_session_get_count")
public func kiln_session_get_count(_ session: OpaquePointer?, _ io: kiln_io) -> Int {
  (peek(session) as CSession?)?.descriptions(io).count ?? 0
}

@_cdecl("kiln_session_get_name")
public func kiln_session_get_name(_ session: OpaquePointer?, _ io: kiln_io, _ index: Int) -> UnsafePointer<CChar>? {
  description(session, io, index).map { UnsafePointer($0.name.pointer) }
}

@_cdecl("kiln_session_get_dtype")
public func kiln_session_get_dtype(_ session: OpaquePointer?, _ io: kiln_io, _ index: Int) -> kiln_dtype {
  description(session, io, index)?.dtype ?? KILN_DTYPE_UNDEFINED
}

@_cdecl("kiln_session_get_dtype_name")
public func kiln_session_get_dtype_name(_ session: OpaquePointer?, _ io: kiln_io, _ index: Int) -> UnsafePointer<CChar>?
{
  description(session, io, index).map { UnsafePointer($0.dtypeName.pointer) }
}

@_cdecl("kiln_session_get_rank")
public func kiln_session_get_rank(_ session: OpaquePointer?, _ io: kiln_io, _ index: Int) -> Int {
  description(session, io, index)?.signature.shape.count ?? 0
}

@_cdecl("kiln_session_get_dim")
public func kiln_session_get_dim(_ session: OpaquePointer?, _ io: kiln_io, _ index: Int, _ axis: Int) -> Int64 {
  guard let tensor = description(session, io, index), tensor.signature.shape.indices.contains(axis) else { return -2 }
  return tensor.dimNames[axis] == nil ? Int64(tensor.signature.shape[axis]) : -1
}

@_cdecl("kiln_session_get_dim_name")
public func kiln_session_get_dim_name(_ session: OpaquePointer?, _ io: kiln_io, _ index: Int, _ axis: Int)
  -> UnsafePointer<CChar>?
{
  description(session, io, index)?.dimNames[axis].map { UnsafePointer($0.pointer) }
}

@_cdecl("kiln_session_get_max_bytes")
public func kiln_session_get_max_bytes(_ session: OpaquePointer?, _ io: kiln_io, _ index: Int) -> Int {
  description(session, io, index)?.maxBytes ?? 0
}

@_cdecl("kiln_session_run")
public func kiln_session_run(
  _ handle: OpaquePointer?, _ inputs: UnsafePointer<kiln_tensor>?, _ inputCount: Int,
  _ outputs: UnsafeMutablePointer<kiln_tensor>?, _ outputCount: Int
) -> OpaquePointer? {
  status {
    let session: CSession = try object(handle, "session")
    guard inputCount == session.inputs.count else {
      throw CAPIError(
        .invalidArgument, "expected \(session.inputs.count) inputs (\(names(session.inputs))), got \(inputCount)")
    }
    guard outputCount == session.outputs.count else {
      throw CAPIError(
        .invalidArgument, "expected \(session.outputs.count) outputs (\(names(session.outputs))), got \(outputCount)")
    }
    guard inputCount == 0 || inputs != nil else { throw CAPIError(.invalidArgument, "inputs is NULL") }
    guard outputCount == 0 || outputs != nil else { throw CAPIError(.invalidArgument, "outputs is NULL") }
    var borrowed: [BorrowedTensor] = []
    for index in 0..<inputCount {
      borrowed.append(try borrow(inputs![index], session.inputs[index], index: index))
    }
    var destinations: [UnsafeMutableRawBufferPointer] = []
    for index in 0..<outputCount {
      destinations.append(try destination(outputs![index], session.outputs[index], index: index))
    }
    let shapes = try session.session.run(inputs: borrowed, into: destinations)
    for (index, shape) in shapes.enumerated() {
      for (axis, extent) in shape.enumerated() { outputs![index].dims[axis] = Int64(extent) }
    }
  }
}

private func names(_ tensors: [CTensorDescription]) -> String {
  tensors.map(\.signature.name).joined(separator: ", ")
}

/// Input `index` as a `BorrowedTensor`, after checking what C can get wrong (NULLs, a rank or
/// dtype that disagrees, a capacity short of the shape); the session checks it against the model.
private func borrow(_ tensor: kiln_tensor, _ expected: CTensorDescription, index: Int) throws -> BorrowedTensor {
  let label = "input \(index) '\(expected.signature.name)'"
  let dtype = try dtypeName(tensor.dtype, label: label, expected: expected)
  guard tensor.rank <= 64 else { throw CAPIError(.invalidArgument, "\(label): rank \(tensor.rank) is not plausible") }
  guard tensor.rank == 0 || tensor.dims != nil else { throw CAPIError(.invalidArgument, "\(label): dims is NULL") }
  var shape: [Int] = []
  for axis in 0..<tensor.rank {
    let extent = tensor.dims[axis]
    guard extent >= 0, extent <= Int64(Int32.max) else {
      throw CAPIError(.invalidArgument, "\(label): dimension \(axis) is \(extent)")
    }
    shape.append(Int(extent))
  }
  guard shape == expected.signature.shape else {
    throw CAPIError(.invalidArgument, "\(label): expected shape \(expected.signature.shape), got \(shape)")
  }
  guard tensor.capacity >= expected.maxBytes else {
    throw CAPIError(
      .invalidArgument,
      "\(label): capacity \(tensor.capacity) bytes is less than the \(expected.maxBytes) its shape needs")
  }
  guard expected.maxBytes == 0 || tensor.data != nil else {
    throw CAPIError(.invalidArgument, "\(label): data is NULL")
  }
  let bytes = UnsafeRawBufferPointer(start: tensor.data, count: tensor.data == nil ? 0 : expected.maxBytes)
  return BorrowedTensor(dtype: dtype, shape: shape, bytes: bytes)
}

/// Output `index`'s destination, after checking its dtype, rank, dims and capacity.
private func destination(_ tensor: kiln_tensor, _ expected: CTensorDescription, index: Int) throws
  -> UnsafeMutableRawBufferPointer
{
  let label = "output \(index) '\(expected.signature.name)'"
  _ = try dtypeName(tensor.dtype, label: label, expected: expected)
  guard tensor.rank == expected.signature.shape.count else {
    throw CAPIError(.invalidArgument, "\(label): expected rank \(expected.signature.shape.count), got \(tensor.rank)")
  }
  guard tensor.rank == 0 || tensor.dims != nil else { throw CAPIError(.invalidArgument, "\(label): dims is NULL") }
  guard tensor.capacity >= expected.maxBytes else {
    throw CAPIError(
      .invalidArgument, "\(label): capacity \(tensor.capacity) bytes is less than the \(expected.maxBytes) it may need")
  }
  guard expected.maxBytes == 0 || tensor.data != nil else {
    throw CAPIError(.invalidArgument, "\(label): data is NULL")
  }
  return UnsafeMutableRawBufferPointer(start: tensor.data, count: tensor.data == nil ? 0 : tensor.capacity)
}

/// The Kiln name of the dtype C gave, which must be the tensor's.
private func dtypeName(_ dtype: kiln_dtype, label: String, expected: CTensorDescription) throws -> String {
  guard dtype == expected.dtype || expected.dtype == KILN_DTYPE_UNDEFINED else {
    let given = CTensorDescription.codes.first { $0.value == dtype }?.key ?? "dtype code \(dtype.rawValue)"
    throw CAPIError(.invalidArgument, "\(label): expected \(expected.signature.dtype), got \(given)")
  }
  return expected.signature.dtype
}
