import CKilnCPU
import Foundation
import KilnHAL

/// The device's submission queue: a dedicated thread that runs submissions one at a time, in the
/// order they were queued, and the thread pool that its dispatches fan out to.
///
/// The thread holds the queue until `shutdown()` and the queue is drained, so queued work always
/// finishes even when the device goes away first.
final class CPUQueue: @unchecked Sendable {
  // @unchecked: `condition` guards `pending`, `stopping`, `failure` and `submitted`; `pool` is
  // touched only by the queue thread; `completed` synchronises itself.

  /// One `submit` call with everything resolved.
  struct Submission: @unchecked Sendable {
    // @unchecked: the members are immutable once queued and handed to the queue thread.
    var commands: [[Command]]
    /// Keeps the command buffers (and so their buffers and executables) alive while queued.
    var owners: [CPUCommandBuffer]
    var waits: [(CPUSemaphore, UInt64)]
    var signals: [(CPUSemaphore, UInt64)]
    var sequence: UInt64 = 0
  }

  /// Stack size of the queue thread and the pool's workers, which run kernels (the ABI promises 8 MiB).
  static let kernelStackSize = 16 << 20

  private let condition = NSCondition()
  private var pending: [Submission] = []
  private var stopping = false
  private var failure: HALError?
  private var submitted: UInt64 = 0
  /// The sequence number of the last finished submission.
  private let completed: OpaquePointer
  /// The sequence number of the last submission the queue thread no longer holds any part of
  /// (its command buffers, buffers, executables and semaphores): it trails `completed` by the
  /// moment between signalling and letting go.
  private let released: OpaquePointer
  private let threadCount: Int
  private let waitTimeout: Duration
  private var pool: OpaquePointer?
  private var poolStarted = false

  init(threadCount: Int, waitTimeout: Duration) throws {
    guard let completed = kiln_cpu_timeline_create(0) else {
      throw HALError(.outOfMemory, "opening the CPU device: out of host memory")
    }
    guard let released = kiln_cpu_timeline_create(0) else {
      kiln_cpu_timeline_destroy(completed)
      throw HALError(.outOfMemory, "opening the CPU device: out of host memory")
    }
    self.completed = completed
    self.released = released
    self.threadCount = threadCount
    self.waitTimeout = waitTimeout
    let thread = Thread { [self] in run() }
    thread.name = "kiln-cpu-queue"
    thread.stackSize = Self.kernelStackSize
    thread.start()
  }

  deinit {
    if let pool { kiln_cpu_pool_destroy(pool) }
    kiln_cpu_timeline_destroy(completed)
    kiln_cpu_timeline_destroy(released)
  }

  /// Queues `submission`, first throwing (and clearing) the error of a failed earlier one.
  func enqueue(_ submission: Submission) throws {
    try condition.withLock {
      if let failure {
        self.failure = nil
        throw failure
      }
      guard !stopping else { throw HALError(.invalidArgument, "submit: the CPU device has been released") }
      submitted += 1
      var submission = submission
      submission.sequence = submitted
      pending.append(submission)
      condition.signal()
    }
  }

  /// Waits until everything queued so far has finished, then throws (and clears) a recorded error.
  func waitIdle(timeout: Duration) throws {
    let target = condition.withLock { submitted }
    guard kiln_cpu_timeline_wait(completed, target, timeout.clampedNanoseconds) else {
      throw HALError(
        .timeout,
        "waitIdle: submission \(target) had not finished after \(timeout) (\(kiln_cpu_timeline_value(completed)) done)")
    }
    try condition.withLock {
      if let failure {
        self.failure = nil
        throw failure
      }
    }
  }

  /// Waits (at most `timeout`) until the queue thread holds nothing of any submission made so far;
  /// false when it still does. Leak checks call it so that they count only what callers hold.
  func waitReleased(timeout: Duration) -> Bool {
    let target = condition.withLock { submitted }
    return kiln_cpu_timeline_wait(released, target, timeout.clampedNanoseconds)
  }

  /// Lets the thread exit once the queue is empty.
  func shutdown() {
    condition.withLock {
      stopping = true
      condition.signal()
    }
  }

  private func run() {
    while true {
      condition.lock()
      while pending.isEmpty && !stopping {
        condition.wait()
      }
      if pending.isEmpty {
        condition.unlock()
        return
      }
      var batch = pending
      pending.removeAll(keepingCapacity: true)
      condition.unlock()
      for index in batch.indices {
        let sequence = batch[index].sequence
        execute(batch[index])
        _ = kiln_cpu_timeline_signal(completed, sequence)
        // Let go of the command buffers and semaphores before saying so.
        batch[index] = Submission(commands: [], owners: [], waits: [], signals: [])
        _ = kiln_cpu_timeline_signal(released, sequence)
      }
    }
  }

  private func execute(_ submission: Submission) {
    let deadline = ContinuousClock.now + waitTimeout
    for (semaphore, value) in submission.waits {
      guard semaphore.reach(value, within: deadline - ContinuousClock.now) else {
        record(
          HALError(
            .timeout,
            "submission \(submission.sequence): its wait for semaphore value \(value) timed out after \(waitTimeout); it ran nothing and signalled nothing"
          ))
        return
      }
    }
    let pool = workerPool()
    for commands in submission.commands {
      for command in commands {
        command.execute(pool: pool)
      }
    }
    for (semaphore, value) in submission.signals {
      semaphore.raise(to: value)
    }
  }

  /// Keeps the first error until `submit` or `waitIdle` reports it.
  private func record(_ error: HALError) {
    condition.withLock {
      if failure == nil { failure = error }
    }
  }

  /// The pool, started on first use; nil with one thread (or if threads cannot be started, in
  /// which case the queue thread runs every workgroup itself).
  private func workerPool() -> OpaquePointer? {
    if !poolStarted {
      poolStarted = true
      if threadCount > 1 {
        pool = kiln_cpu_pool_create(UInt32(clamping: threadCount - 1), Self.kernelStackSize, nil, 0)
      }
    }
    return pool
  }
}
