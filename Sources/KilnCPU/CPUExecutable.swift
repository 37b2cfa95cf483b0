import CKilnCPU
import KilnHAL

/// A loaded Kiln CPU shared object and its resolved entry points.
///
/// The object is unloaded when the executable goes away; command buffers that dispatch from it
/// keep it alive.
public final class CPUExecutable: Executable, @unchecked Sendable {
  // @unchecked: every stored property is immutable after `init`; the loaded code is read-only.
  public let entryPoints: [EntryPoint]
  /// One resolved kernel per entry point, in the same order.
  let kernels: [kiln_cpu_kernel]
  /// Per entry point, the ranges per thread it asks for (`name_chunks_per_thread`; 0: the pool's
  /// default).
  let chunksPerThread: [UInt32]
  private let library: OpaquePointer
  private let resources: ResourceCounter

  /// Loads `spec.code` and resolves `kiln_cpu_abi_version` and every entry point.
  ///
  /// - Throws: `.unsupported` for a format other than `.sharedObject`; `.invalidArgument` or
  ///   `.limitExceeded` for an entry point the device cannot run; `.compilationFailed` when the
  ///   bytes are not a loadable shared object, lack the ABI version symbol or another ABI version,
  ///   or do not define an entry point.
  ///
  /// `injectFailure` (fault `pipeline`) makes the load fail as an unloadable object would.
  init(_ spec: ExecutableSpec, limits: DeviceLimits, resources: ResourceCounter, injectFailure: Bool = false) throws {
    guard spec.format == .sharedObject else {
      throw HALError(
        .unsupported, "makeExecutable: the CPU driver loads shared objects, not '\(spec.format.rawValue)' code")
    }
    for entryPoint in spec.entryPoints {
      try Self.check(entryPoint, limits: limits)
    }

    var message = [CChar](repeating: 0, count: 1024)
    let loaded = spec.code.withUnsafeBytes { bytes -> OpaquePointer? in
      if injectFailure { return nil }
      return kiln_cpu_library_load(bytes.baseAddress, bytes.count, &message, message.count)
    }
    guard let library = loaded else {
      let reason = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
      throw HALError(
        .compilationFailed, "makeExecutable: cannot load the shared object (\(spec.code.count) bytes): \(reason)")
    }
    // From here on `library` must be unloaded on every failure.
    var kernels: [kiln_cpu_kernel] = []
    var chunksPerThread: [UInt32] = []
    do {
      guard let version = kiln_cpu_library_symbol(library, "kiln_cpu_abi_version") else {
        throw HALError(
          .compilationFailed,
          "makeExecutable: the shared object does not export kiln_cpu_abi_version (not a Kiln CPU executable)")
      }
      let abiVersion = version.loadUnaligned(as: UInt32.self)
      guard abiVersion == UInt32(KILN_CPU_ABI_VERSION) else {
        throw HALError(
          .compilationFailed,
          "makeExecutable: the shared object uses Kiln CPU ABI version \(abiVersion); this driver runs version \(KILN_CPU_ABI_VERSION)"
        )
      }
      for entryPoint in spec.entryPoints {
        guard let symbol = kiln_cpu_library_symbol(library, entryPoint.name) else {
          throw HALError(
            .compilationFailed, "makeExecutable: the shared object does not export entry point '\(entryPoint.name)'")
        }
        kernels.append(unsafeBitCast(symbol, to: kiln_cpu_kernel.self))
        // At most 64: a hint, not a way for a bundle to make the pool split a dispatch absurdly.
        let hint = kiln_cpu_library_symbol(library, entryPoint.name + "_chunks_per_thread")?.loadUnaligned(as: UInt32.self)
        chunksPerThread.append(min(hint ?? 0, 64))
      }
    } catch {
      kiln_cpu_library_unload(library)
      throw error
    }
    self.library = library
    self.kernels = kernels
    self.chunksPerThread = chunksPerThread
    self.entryPoints = spec.entryPoints
    self.resources = resources
    resources.add(.executable)
  }

  deinit {
    kiln_cpu_library_unload(library)
    resources.remove(.executable)
  }

  private static func check(_ entryPoint: EntryPoint, limits: DeviceLimits) throws {
    let name = entryPoint.name
    guard !name.isEmpty, !name.utf8.contains(0) else {
      throw HALError(.invalidArgument, "makeExecutable: entry point name '\(name)' is not a symbol name")
    }
    guard entryPoint.bindingCount >= 0, entryPoint.pushConstantWords >= 0 else {
      throw HALError(
        .invalidArgument,
        "makeExecutable: entry point '\(name)' declares \(entryPoint.bindingCount) bindings and \(entryPoint.pushConstantWords) push-constant words"
      )
    }
    guard entryPoint.bindingCount <= limits.maxStorageBuffersPerDispatch else {
      throw HALError(
        .limitExceeded,
        "makeExecutable: entry point '\(name)' binds \(entryPoint.bindingCount) buffers; the CPU device allows \(limits.maxStorageBuffersPerDispatch)"
      )
    }
    guard entryPoint.pushConstantWords <= limits.maxPushConstantBytes / 4 else {
      throw HALError(
        .limitExceeded,
        "makeExecutable: entry point '\(name)' reads \(entryPoint.pushConstantWords) push-constant words; the CPU device allows \(limits.maxPushConstantBytes / 4)"
      )
    }
  }
}
