import Foundation
import Synchronization

/// Failures to inject into one device, so that tests (and users reproducing a report) can run the
/// real error paths of a failing device on a healthy one.
///
/// Each site names a call the drivers count; the plan makes exactly the N-th call (1-based) of that
/// site fail, at the place where the driver checks the real `VkResult` or `malloc` result:
///
/// | site | the N-th ... | fails as |
/// |---|---|---|
/// | `alloc` | buffer allocation | `VK_ERROR_OUT_OF_DEVICE_MEMORY` / the host refusing memory: `.outOfMemory` |
/// | `pipeline` | executable creation | a shader compile failure / an unloadable shared object: `.compilationFailed` |
/// | `submit` | queue submission | `vkQueueSubmit` returning `VK_ERROR_DEVICE_LOST`: `.deviceLost` from `submit` |
/// | `device-lost` | queue submission | the device lost while it runs: the next wait reports `.deviceLost` |
/// | `hang` | queue submission | its semaphores are never signalled: waits end with `.timeout` |
///
/// After `submit` or `device-lost` the device stays lost and refuses all further work.
///
/// Written `alloc:3,pipeline:1,submit:2` (the `KILN_FAULTS` environment variable, which every
/// device opened without explicit options reads).
public struct FaultInjection: Sendable, Hashable, CustomStringConvertible {
  public enum Site: String, Sendable, Hashable, CaseIterable {
    case alloc
    case pipeline
    case submit
    case deviceLost = "device-lost"
    case hang
  }

  /// For each site, the 1-based index of the call that fails.
  public var triggers: [Site: Int]

  public init(_ triggers: [Site: Int] = [:]) {
    self.triggers = triggers
  }

  public static let none = FaultInjection()

  public var isEmpty: Bool { triggers.isEmpty }

  /// Parses `site:N[,site:N...]`; an empty string is no faults.
  ///
  /// - Throws: `.invalidArgument` naming the bad entry and the known sites.
  public init(parsing text: String) throws {
    var triggers: [Site: Int] = [:]
    let known = Site.allCases.map(\.rawValue).joined(separator: ", ")
    for entry in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !entry.isEmpty {
      let parts = entry.split(separator: ":", omittingEmptySubsequences: false)
      guard parts.count == 2, let site = Site(rawValue: String(parts[0]).lowercased()) else {
        throw HALError(.invalidArgument, "fault '\(entry)': expected SITE:N with SITE one of \(known)")
      }
      guard let count = Int(parts[1]), count >= 1 else {
        throw HALError(.invalidArgument, "fault '\(entry)': N must be a positive call number")
      }
      guard triggers[site] == nil else {
        throw HALError(.invalidArgument, "fault '\(entry)': \(site.rawValue) is given twice")
      }
      triggers[site] = count
    }
    self.triggers = triggers
  }

  public var description: String {
    Site.allCases.compactMap { site in triggers[site].map { "\(site.rawValue):\($0)" } }.joined(separator: ",")
  }

  /// The environment variable devices read their faults from.
  public static let environmentVariable = "KILN_FAULTS"

  private static let parsedEnvironment: Result<FaultInjection, HALError> = {
    guard let text = ProcessInfo.processInfo.environment[environmentVariable] else { return .success(.none) }
    do {
      return .success(try FaultInjection(parsing: text))
    } catch let error as HALError {
      return .failure(HALError(.invalidArgument, "\(environmentVariable)=\(text): \(error.message)"))
    } catch {
      return .failure(HALError(.invalidArgument, "\(environmentVariable)=\(text): \(error)"))
    }
  }()

  /// `KILN_FAULTS`, parsed once per process.
  ///
  /// - Throws: `.invalidArgument` when the variable is set but malformed.
  public static func fromEnvironment() throws -> FaultInjection {
    try parsedEnvironment.get()
  }
}

/// Counts a device's calls at each fault site and says which call fails.
///
/// Thread-safety: `fires` may be called from any thread (the counts are behind a Mutex).
public final class FaultInjector: Sendable {
  public let plan: FaultInjection
  private let counts = Locked<[FaultInjection.Site: Int]>([:])

  public init(_ plan: FaultInjection) {
    self.plan = plan
  }

  /// Counts one call at `site`; true when it is the call the plan makes fail.
  public func fires(_ site: FaultInjection.Site) -> Bool {
    guard let trigger = plan.triggers[site] else { return false }
    return counts.withLock { counts in
      let count = counts[site, default: 0] + 1
      counts[site] = count
      return count == trigger
    }
  }

  /// `" (injected fault SITE:N)"`, appended to the messages of injected failures.
  public func note(_ site: FaultInjection.Site) -> String {
    " (injected fault \(site.rawValue):\(plan.triggers[site] ?? 0))"
  }
}

/// How a driver opens one device.
public struct DeviceOptions: Sendable, Hashable {
  /// Failures to inject (tests, reproduction); `.none` in normal use.
  public var faults: FaultInjection
  /// The longest any wait inside the driver may take: for a previous submission of a replayed
  /// command buffer, for staging transfers, and at teardown. A wait that runs out reports
  /// `.timeout` (or, at teardown, leaves the objects to the process) instead of hanging.
  public var waitTimeout: Duration

  public init(faults: FaultInjection = .none, waitTimeout: Duration = .seconds(60)) {
    self.faults = faults
    self.waitTimeout = waitTimeout
  }

  /// Default options with faults from `KILN_FAULTS`.
  ///
  /// - Throws: `.invalidArgument` when `KILN_FAULTS` is malformed.
  public static func fromEnvironment() throws -> DeviceOptions {
    DeviceOptions(faults: try FaultInjection.fromEnvironment())
  }
}

/// Live objects of one device, for leak checks: every object a failed call created must be gone
/// again once the caller drops what it holds.
public struct LiveResources: Sendable, Hashable, CustomStringConvertible {
  public var buffers: Int
  public var executables: Int
  public var commandBuffers: Int
  public var semaphores: Int

  public init(buffers: Int = 0, executables: Int = 0, commandBuffers: Int = 0, semaphores: Int = 0) {
    self.buffers = buffers
    self.executables = executables
    self.commandBuffers = commandBuffers
    self.semaphores = semaphores
  }

  public var description: String {
    "\(buffers) buffers, \(executables) executables, \(commandBuffers) command buffers, \(semaphores) semaphores"
  }
}

/// Counts a device's live executables, command buffers and semaphores (drivers count buffers in
/// their allocators). Objects add themselves when fully created and remove themselves in `deinit`.
///
/// Thread-safety: every method may be called from any thread.
public final class ResourceCounter: @unchecked Sendable {
  public enum Kind: Sendable { case executable, commandBuffer, semaphore }

  private let counts = Locked(LiveResources())

  public init() {}

  public func add(_ kind: Kind) { update(kind, by: 1) }
  public func remove(_ kind: Kind) { update(kind, by: -1) }

  /// The counts, with `buffers` filled in from `allocator`.
  public func snapshot(buffers: Int) -> LiveResources {
    var live = counts.withLock { $0 }
    live.buffers = buffers
    return live
  }

  private func update(_ kind: Kind, by delta: Int) {
    counts.withLock { counts in
      switch kind {
      case .executable: counts.executables += delta
      case .commandBuffer: counts.commandBuffers += delta
      case .semaphore: counts.semaphores += delta
      }
    }
  }
}
