import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// Compiles generated C kernels into shared objects for the CPU driver with the host's C compiler.
///
/// The compiler is, in order: the `KILN_CC` environment variable (a path or a name on PATH), the
/// `clang` next to the `swift` found on PATH, `/opt/swift/usr/bin/clang`, then `clang` or `cc` on
/// PATH. It runs as a child process (no shell) in a private temporary directory, with a time-out.
public struct NativeToolchain: Sendable {
  /// The compiler executable.
  public var compilerPath: String
  /// The longest one compilation may take.
  public var timeout: Duration
  /// Where each compilation makes (and removes) its private directory.
  public var temporaryDirectory = URL(fileURLWithPath: NSTemporaryDirectory(), isDirectory: true)

  /// Flags every compilation gets, before the caller's. -O2, not -O3: on ResNet-50's kernels
  /// clang took 1.8 s instead of 2.6 s, and the four benchmark models ran within noise of -O3
  /// (the microkernels are explicit vector code; -O3's extra unrolling bought nothing).
  public static let baseFlags = ["-O2", "-fPIC", "-shared", "-std=c11", "-fvisibility=hidden"]

  /// Finds the compiler (see the type's documentation).
  ///
  /// - Throws: `CodegenError.Code.compilerNotFound` when none is usable, or when `KILN_CC` names
  ///   something that is not an executable.
  public init(
    environment: [String: String] = ProcessInfo.processInfo.environment, timeout: Duration = .seconds(120)
  ) throws {
    self.compilerPath = try Self.locateCompiler(environment: environment)
    self.timeout = timeout
  }

  /// Uses `compilerPath` as is.
  public init(compilerPath: String, timeout: Duration = .seconds(120)) {
    self.compilerPath = compilerPath
    self.timeout = timeout
  }

  /// The compiler `init(environment:)` would use.
  public static func locateCompiler(environment: [String: String]) throws -> String {
    let searchPath = (environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":").map(String.init)
    if let requested = environment["KILN_CC"], !requested.isEmpty {
      if let found = resolve(requested, in: searchPath) { return found }
      throw CodegenError(.compilerNotFound, "KILN_CC='\(requested)' is not an executable C compiler")
    }
    var candidates: [String] = []
    if let swift = resolve("swift", in: searchPath) {
      let real = URL(fileURLWithPath: swift).resolvingSymlinksInPath()
      candidates.append(real.deletingLastPathComponent().appendingPathComponent("clang").path)
    }
    candidates.append("/opt/swift/usr/bin/clang")
    for candidate in candidates where isExecutable(candidate) {
      return candidate
    }
    for name in ["clang", "cc"] {
      if let found = resolve(name, in: searchPath) { return found }
    }
    throw CodegenError(
      .compilerNotFound,
      "no C compiler found: set KILN_CC, or put clang (it ships with the Swift toolchain) or cc on PATH; tried \(candidates + ["clang", "cc"])"
    )
  }

  /// Compiles `source` (C11) into a shared object and returns its bytes.
  ///
  /// - Parameters:
  ///   - source: the complete translation unit; CPU kernels start with `kilnCPUABIHeader`.
  ///   - flags: extra compiler flags after `baseFlags`, such as `-march=x86-64-v3`.
  ///   - name: names the temporary files and error messages (letters, digits, `_`, `-`, `.`).
  /// - Throws: `CodegenError` with code `.nativeCompilation` and the compiler's standard error in
  ///   `details` when it fails, `.timeout` when it runs past `timeout`, `.invalidInput` for a bad
  ///   name, `.io` when the temporary files cannot be made.
  public func compileSharedObject(source: String, flags: [String], name: String) throws -> [UInt8] {
    let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")
    guard !name.isEmpty, name.count <= 128, name.allSatisfy(allowed.contains), !name.hasPrefix("."),
      !name.hasPrefix("-")
    else {
      throw CodegenError(.invalidInput, "native kernel name '\(name)' must be 1-128 letters, digits, '_', '-' or '.'")
    }
    let directory = try makePrivateDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let sourceURL = directory.appendingPathComponent("\(name).c")
    let outputURL = directory.appendingPathComponent("\(name).so")
    let logURL = directory.appendingPathComponent("\(name).log")
    do {
      try Data(source.utf8).write(to: sourceURL)
      try Data().write(to: logURL)
    } catch {
      throw CodegenError(.io, "writing '\(name)' to \(directory.path): \(error)")
    }

    // Relative paths (the compiler runs inside `directory`) and a fixed soname keep the private
    // temporary folder's name out of the shared object, so builds are byte-identical.
    let arguments = Self.baseFlags + flags + ["-Wl,-soname,\(name).so", "-o", "\(name).so", "\(name).c"]
    let (status, log) = try run(arguments, in: directory, log: logURL, name: name)
    guard status == 0 else {
      throw CodegenError(
        .nativeCompilation,
        "\(URL(fileURLWithPath: compilerPath).lastPathComponent) failed on '\(name)' (exit status \(status)) with flags \(flags)",
        details: log)
    }
    guard let bytes = FileManager.default.contents(atPath: outputURL.path) else {
      throw CodegenError(.io, "the compiler reported success on '\(name)' but wrote no shared object", details: log)
    }
    return [UInt8](bytes)
  }

  /// Runs the compiler with a time-out; returns its exit status and combined output.
  private func run(_ arguments: [String], in directory: URL, log: URL, name: String) throws -> (Int32, String) {
    // Output goes to a file, not a pipe, so a chatty compiler can never block on a full pipe.
    let logDescriptor = open(log.path, O_WRONLY | O_TRUNC | O_CLOEXEC)
    guard logDescriptor >= 0 else {
      throw CodegenError(.io, "opening the compiler log for '\(name)': \(String(cString: strerror(errno)))")
    }
    defer { close(logDescriptor) }
    let child: ChildProcess
    do {
      child = try ChildProcess(executable: compilerPath, arguments: arguments, directory: directory.path, output: logDescriptor)
    } catch {
      throw CodegenError(.compilerNotFound, "cannot run the C compiler '\(compilerPath)': \(error)")
    }
    guard let status = child.wait(timeout: timeout) else {
      child.terminate()
      throw CodegenError(.timeout, "the C compiler ran longer than \(timeout) on '\(name)'")
    }
    // An empty log is not read: Foundation leaks its read buffer for empty files (LeakSanitizer).
    let logSize = (try? FileManager.default.attributesOfItem(atPath: log.path)[.size] as? Int) ?? 0
    let data = logSize > 0 ? FileManager.default.contents(atPath: log.path) ?? Data() : Data()
    var text = String(decoding: data, as: UTF8.self)
    if text.utf8.count > 65536 {
      text = String(decoding: data.prefix(65536), as: UTF8.self) + "\n[... compiler output truncated]"
    }
    return (status, text)
  }

  /// A new directory only this user can read (mkdtemp creates it with mode 0700).
  private func makePrivateDirectory() throws -> URL {
    let template = temporaryDirectory.appendingPathComponent("kiln-cc-XXXXXX").path
    var buffer = Array(template.utf8CString)
    guard let made = mkdtemp(&buffer) else {
      throw CodegenError(.io, "cannot create a temporary directory from \(template): errno \(errno)")
    }
    return URL(fileURLWithPath: String(cString: made), isDirectory: true)
  }

  /// `name` itself when it is a path, else its first executable match on `searchPath`.
  private static func resolve(_ name: String, in searchPath: [String]) -> String? {
    if name.contains("/") { return isExecutable(name) ? name : nil }
    for directory in searchPath where !directory.isEmpty {
      let candidate = URL(fileURLWithPath: directory).appendingPathComponent(name).path
      if isExecutable(candidate) { return candidate }
    }
    return nil
  }

  private static func isExecutable(_ path: String) -> Bool {
    var isDirectory: ObjCBool = false
    return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && !isDirectory.boolValue
      && FileManager.default.isExecutableFile(atPath: path)
  }

  /// The declarations of `Sources/CKilnCPU/include/kiln_cpu_abi.h` between its BEGIN/END markers,
  /// verbatim: generated CPU kernels start with this text (they are compiled outside the package,
  /// so they cannot include the header). A KilnCPU test checks that the two stay identical.
  public static var kilnCPUABIHeader: String {
    #"""
    #include <stddef.h>
    #include <stdint.h>

    #define KILN_CPU_ABI_VERSION 1

    /* Marks a symbol the driver looks up (shared objects are built with -fvisibility=hidden). */
    #define KILN_CPU_EXPORT __attribute__((visibility("default")))

    /* Defines the ABI version symbol every Kiln CPU shared object exports. */
    #define KILN_CPU_DEFINE_ABI_VERSION() KILN_CPU_EXPORT const uint32_t kiln_cpu_abi_version = KILN_CPU_ABI_VERSION

    typedef struct kiln_cpu_dispatch {
      void *const *bindings;          /* base address of each bound range (offset already applied) */
      const uint64_t *binding_sizes;  /* bytes in each bound range */
      const uint32_t *push_constants; /* push-constant words */
      uint32_t workgroup_count[3];
      uint32_t workgroup_begin;       /* linear workgroup index range [begin, end) this call must run, */
      uint32_t workgroup_end;         /*   linear = x + count_x * (y + count_y * z) */
    } kiln_cpu_dispatch;

    typedef void (*kiln_cpu_kernel)(const kiln_cpu_dispatch *);

    """#
  }
}
