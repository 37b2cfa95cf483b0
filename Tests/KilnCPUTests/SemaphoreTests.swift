import Foundation
import KilnCPU
import KilnHAL
import Testing

@Suite struct SemaphoreTests {
  @Test func signalRaisesTheValue() throws {
    let semaphore = try device().makeSemaphore(initialValue: 5)
    #expect(try semaphore.currentValue() == 5)
    try semaphore.wait(for: 3, timeout: .zero)
    try semaphore.signal(9)
    try semaphore.signal(9)
    #expect(try semaphore.currentValue() == 9)
    try semaphore.wait(for: 9, timeout: .milliseconds(1))
    expectHALError(.invalidArgument) { try semaphore.signal(8) }
    #expect(try semaphore.currentValue() == 9)
  }

  @Test func waitTimesOut() throws {
    let semaphore = try device().makeSemaphore(initialValue: 0)
    let start = ContinuousClock.now
    expectHALError(.timeout) { try semaphore.wait(for: 1, timeout: .milliseconds(50)) }
    let elapsed = ContinuousClock.now - start
    #expect(elapsed >= .milliseconds(45))
    #expect(elapsed < .seconds(5))
    expectHALError(.timeout) { try semaphore.wait(for: 1, timeout: .zero) }
    expectHALError(.timeout) { try semaphore.wait(for: 1, timeout: .seconds(-1)) }
  }

  @Test func waitIsWokenByAnotherThread() throws {
    let semaphore = try device().makeSemaphore(initialValue: 0)
    let thread = Thread {
      Thread.sleep(forTimeInterval: 0.02)
      try? semaphore.signal(1)
      Thread.sleep(forTimeInterval: 0.02)
      try? semaphore.signal(3)
    }
    thread.start()
    try semaphore.wait(for: 2, timeout: .seconds(30))
    #expect(try semaphore.currentValue() == 3)
  }
}
