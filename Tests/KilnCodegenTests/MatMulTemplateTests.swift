import Foundation
@testable import KilnCodegen
import KilnCompiler
import KilnHAL
import KilnIR
import KilnTestSupport
import Testing

/// The hand-written tiled matmul template (shaders/matmul_tiled.comp): recognition and results.
@Suite(.serialized)
struct MatMulTemplateTests {
  /// C[b, m, n] = relu(sum_k A[b, m, k] * B^T[n, k] + bias[n]); B is shared across the batch and
  /// stored transposed, so both operand maps have non-trivial strides.
  func kernel(batch: Int, m: Int, n: Int, k: Int) -> Kernel {
    let (b, i, j, v) = (Expr.coordinate(0), Expr.coordinate(1), Expr.coordinate(2), Expr.variable(0))
    let a = Expr.load(input: 0, dtype: .float32, index: b * (m * k) + i * k + v)
    let bt = Expr.load(input: 1, dtype: .float32, index: j * k + v)
    let (sum, stated) = Contraction.sum(over: [.init(variable: 0, extent: k)], factors: [a, bt], type: .float32)
    let biased = Expr.binary(.add, sum, .load(input: 2, dtype: .float32, index: j))
    let body = Expr.select(.binary(.greater, biased, .literal(.of(0, .float32))), biased, .literal(.of(0, .float32)))
    return Kernel(
      name: "mm", inputs: [.init(dtype: .float32, elementCount: batch * m * k), .init(dtype: .float32, elementCount: n * k), .init(dtype: .float32, elementCount: n)],
      output: .init(dtype: .float32, elementCount: batch * m * n), shape: [batch, m, n], body: body, sourceOps: ["mm"],
      region: .contraction(stated))
  }

  /// `kernel`'s result: relu(A[b] x B + bias) with B given transposed ([n, k]).
  static func reference(batch: Int, m: Int, n: Int, k: Int, a: [Float], bt: [Float], bias: [Float]) -> [Float] {
    var expected: [Float] = []
    for b in 0..<batch {
      for i in 0..<m {
        for j in 0..<n {
          var sum: Float = 0
          for v in 0..<k { sum += a[(b * m + i) * k + v] * bt[j * k + v] }
          expected.append(max(sum + bias[j], 0))
        }
      }
    }
    return expected
  }

  @Test func recognisesContractionsAndNothingElse() {
    let match = MatMulTemplate.match(kernel(batch: 2, m: 5, n: 7, k: 9))
    #expect(match?.m == 5 && match?.n == 7 && match?.k == 9 && match?.batchShape == [2])
    // An elementwise kernel and a max-reduction are left to the generic emitter.
    let elementwise = Kernel(
      name: "e", inputs: [.init(dtype: .float32, elementCount: 4)], output: .init(dtype: .float32, elementCount: 4), shape: [2, 2],
      body: .load(input: 0, dtype: .float32, index: .coordinate(0) * 2 + .coordinate(1)), sourceOps: [])
    #expect(MatMulTemplate.match(elementwise) == nil)
    let maximum = Kernel(
      name: "r", inputs: [.init(dtype: .float32, elementCount: 64)], output: .init(dtype: .float32, elementCount: 16), shape: [4, 4],
      body: .reduce(.maximum, variable: 0, extent: 4, body: .load(input: 0, dtype: .float32, index: .coordinate(0) * 16 + .coordinate(1) * 4 + .variable(0))),
      sourceOps: [])
    #expect(MatMulTemplate.match(maximum) == nil)
  }

  @Test(arguments: TestDevices.vulkanURIs)
  func tiledResultsMatchAReferenceIncludingTails(uri: String) throws {
    let device = try TestDevices.device(uri)
    // Odd sizes exercise every tail of the 4x4 tiles.
    let (batch, m, n, k) = (3, 13, 11, 17)
    let spec = kernel(batch: batch, m: m, n: n, k: k)
    let template = try #require(MatMulTemplate.match(spec))
    let code = try GLSLCompiler(optimization: .performance).compileToBytes(template.source(), name: "mm")
    let executable = try device.makeExecutable(
      ExecutableSpec(format: .spirv, code: code, entryPoints: [EntryPoint(name: "main", bindingCount: 4)]))
    var generator = SystemRandomNumberGenerator()
    let a = (0..<(batch * m * k)).map { _ in Float.random(in: -1...1, using: &generator) }
    let bt = (0..<(n * k)).map { _ in Float.random(in: -1...1, using: &generator) }
    let bias = (0..<n).map { _ in Float.random(in: -0.5...0.5, using: &generator) }
    var buffers: [BufferRange] = []
    for values in [a, bt, bias] {
      let buffer = try device.allocator.allocate(byteCount: values.count * 4, access: .deviceLocal)
      try device.write(values.bytes, to: BufferRange(buffer))
      buffers.append(BufferRange(buffer))
    }
    let output = try device.allocator.allocate(byteCount: batch * m * n * 4, access: .deviceLocal)
    buffers.append(BufferRange(output))
    let commands = try device.makeCommandBuffer()
    let groups = template.workgroups
    try commands.dispatch(executable, entryPoint: 0, bindings: buffers, pushConstants: [], workgroups: WorkgroupCount(groups[0], groups[1], groups[2]))
    try commands.end()
    try device.submitAndWait(commands)
    let got = try device.read(BufferRange(output)).asFloats()
    let expected = Self.reference(batch: batch, m: m, n: n, k: k, a: a, bt: bt, bias: bias)
    let worst = zip(got, expected).map { abs($0 - $1) }.max() ?? .infinity
    #expect(worst < 1e-4, "largest difference \(worst)")
    #expect(TestDevices.drainValidationMessages().isEmpty)
  }
}

/// Convolutions as implicit GEMMs, and other operand layouts, run through the template.
@Suite(.serialized)
struct MatMulTemplateConvTests {
  struct Conv: CustomStringConvertible {
    var batch = 1, channels = 3, height = 9, width = 7, filters = 5, kernelH = 3, kernelW = 3
    var stride = 1, pad = 0, dilation = 1, groups = 1
    var outH: Int { (height + 2 * pad - dilation * (kernelH - 1) - 1) / stride + 1 }
    var outW: Int { (width + 2 * pad - dilation * (kernelW - 1) - 1) / stride + 1 }
    var description: String { "conv \(kernelH)x\(kernelW) s\(stride) p\(pad) d\(dilation) g\(groups)" }

    /// relu(bias[f] + sum_{c, kh, kw} select(inside, X[n, g*Cg + c, ih, iw] * W[f, c, kh, kw], 0)),
    /// written the way the Conv lowering writes it (clamped positions, masked taps).
    var kernel: Kernel {
      let perGroup = channels / groups
      let (n, f, oh, ow) = (Expr.coordinate(0), Expr.coordinate(1), Expr.coordinate(2), Expr.coordinate(3))
      let (c, kh, kw) = (Expr.variable(0), Expr.variable(1), Expr.variable(2))
      let ih = oh * stride + kh * dilation - pad
      let iw = ow * stride + kw * dilation - pad
      func clamp(_ e: Expr, _ upper: Int) -> Expr { .binary(.minimum, .binary(.maximum, e, .index(0)), .index(upper)) }
      let inside = Expr.binary(
        .logicalAnd, .binary(.logicalAnd, .binary(.greaterEqual, ih, .index(0)), .binary(.less, ih, .index(height))),
        .binary(.logicalAnd, .binary(.greaterEqual, iw, .index(0)), .binary(.less, iw, .index(width))))
      let group = groups == 1 ? Expr.index(0) : f.floorDivided(by: filters / groups)
      // Without padding every tap is inside: no clamp and no mask, as the Conv lowering writes it.
      let x =
        pad == 0
        ? Expr.load(input: 0, dtype: .float32, index: ((n * channels + group * perGroup + c) * height + ih) * width + iw)
        : Expr.load(input: 0, dtype: .float32, index: ((n * channels + group * perGroup + c) * height + clamp(ih, height - 1)) * width + clamp(iw, width - 1))
      let w = Expr.load(input: 1, dtype: .float32, index: ((f * perGroup + c) * kernelH + kh) * kernelW + kw)
      let zero = Expr.literal(.of(0, .float32))
      let (sum, stated) = Contraction.sum(
        over: [.init(variable: 0, extent: perGroup), .init(variable: 1, extent: kernelH), .init(variable: 2, extent: kernelW)],
        factors: [x, w], conditions: pad == 0 ? [] : [inside], type: .float32)
      let biased = Expr.binary(.add, sum, .load(input: 2, dtype: .float32, index: f))
      return Kernel(
        name: "conv",
        inputs: [
          .init(dtype: .float32, elementCount: batch * channels * height * width),
          .init(dtype: .float32, elementCount: filters * perGroup * kernelH * kernelW), .init(dtype: .float32, elementCount: filters),
        ],
        output: .init(dtype: .float32, elementCount: batch * filters * outH * outW), shape: [batch, filters, outH, outW],
        body: .select(.binary(.greater, biased, zero), biased, zero), sourceOps: ["conv"], region: .contraction(stated))
    }

    func reference(_ x: [Float], _ w: [Float], _ bias: [Float]) -> [Float] {
      let perGroup = channels / groups
      var out: [Float] = []
      for n in 0..<batch {
        for f in 0..<filters {
          let g = f / (filters / groups)
          for oh in 0..<outH {
            for ow in 0..<outW {
              var sum: Float = 0
              for c in 0..<perGroup {
                for kh in 0..<kernelH {
                  for kw in 0..<kernelW {
                    let ih = oh * stride + kh * dilation - pad
                    let iw = ow * stride + kw * dilation - pad
                    guard ih >= 0, ih < height, iw >= 0, iw < width else { continue }
                    sum += x[((n * channels + g * perGroup + c) * height + ih) * width + iw] * w[((f * perGroup + c) * kernelH + kh) * kernelW + kw]
                  }
                }
              }
              out.append(max(sum + bias[f], 0))
            }
          }
        }
      }
      return out
    }
  }

  static let convs: [Conv] = [
    Conv(stride: 2, pad: 1),
    // Channels a multiple of 4: the weights are vec4 loads along (c, kh, kw), the window scalar.
    Conv(channels: 4, height: 6, width: 5, filters: 19, pad: 1),
    // 1x1 over a 4x3 image: both operands are vec4 loads; the 12 columns span rows of 3.
    Conv(batch: 2, channels: 8, height: 4, width: 3, filters: 13, kernelH: 1, kernelW: 1),
    Conv(channels: 4, filters: 6, dilation: 2, groups: 2),
    Conv(batch: 2, channels: 6, height: 5, width: 3, filters: 9, kernelH: 1, kernelW: 1),
    Conv(channels: 4, filters: 4, pad: 1, groups: 4),
    Conv(height: 6, width: 8, filters: 7, kernelH: 2, kernelW: 3, stride: 3, pad: 2, dilation: 2),
  ]

  /// Runs `template` on `inputs` and returns its float output.
  static func run(_ template: MatMulTemplate, inputs: [[Float]], outputCount: Int, uri: String) throws -> [Float] {
    let device = try TestDevices.device(uri)
    let code = try GLSLCompiler().compileToBytes(template.source(), name: "template")
    let executable = try device.makeExecutable(
      ExecutableSpec(format: .spirv, code: code, entryPoints: [EntryPoint(name: "main", bindingCount: inputs.count + 1)]))
    let (buffers, output) = try Self.bind(inputs, outputCount: outputCount, on: device)
    let commands = try device.makeCommandBuffer()
    let groups = template.workgroups
    try commands.dispatch(executable, entryPoint: 0, bindings: buffers, pushConstants: [], workgroups: WorkgroupCount(groups[0], groups[1], groups[2]))
    try commands.end()
    try device.submitAndWait(commands)
    #expect(TestDevices.drainValidationMessages().isEmpty)
    return try device.read(output).asFloats()
  }

  /// Device buffers holding `inputs`, then an output buffer of `outputCount` floats, as bindings.
  static func bind(_ inputs: [[Float]], outputCount: Int, on device: any Device) throws -> (bindings: [BufferRange], output: BufferRange) {
    var buffers: [BufferRange] = []
    for values in inputs {
      let buffer = try device.allocator.allocate(byteCount: values.count * 4, access: .deviceLocal)
      try device.write(values.bytes, to: BufferRange(buffer))
      buffers.append(BufferRange(buffer))
    }
    let output = BufferRange(try device.allocator.allocate(byteCount: outputCount * 4, access: .deviceLocal))
    return (buffers + [output], output)
  }

  static func random(_ count: Int) -> [Float] {
    var generator = SystemRandomNumberGenerator()
    return (0..<count).map { _ in Float.random(in: -1...1, using: &generator) }
  }

  @Test func convolutionsMatchAsImplicitGEMMs() throws {
    for conv in Self.convs {
      let template = try #require(MatMulTemplate.match(conv.kernel), "\(conv)")
      #expect(template.k == conv.channels / conv.groups * conv.kernelH * conv.kernelW, "\(conv)")
      #expect(template.n == conv.outH * conv.outW, "\(conv)")
      // Grouped convs read the input by output channel, so only ungrouped ones block over M.
      #expect(template.m == (conv.groups == 1 ? conv.filters : 1), "\(conv)")
    }
  }

  @Test(arguments: TestDevices.vulkanURIs)
  func convolutionResultsMatchAReference(uri: String) throws {
    for conv in Self.convs {
      let template = try #require(MatMulTemplate.match(conv.kernel))
      let x = Self.random(conv.batch * conv.channels * conv.height * conv.width)
      let w = Self.random(conv.filters * conv.channels / conv.groups * conv.kernelH * conv.kernelW)
      let bias = Self.random(conv.filters)
      let expected = conv.reference(x, w, bias)
      let got = try Self.run(template, inputs: [x, w, bias], outputCount: expected.count, uri: uri)
      let worst = zip(got, expected).map { abs($0 - $1) }.max() ?? 0
      #expect(worst < 1e-4, "\(conv): largest difference \(worst)")
    }
  }

  /// Which operands the vec4 path loads four at a time, for these shapes; every one also runs and
  /// matches the reference (`convolutionResultsMatchAReference`, `vectorPathsWithTails`).
  @Test func vectorLoadsAreChosenOnlyWhereAligned() throws {
    func paths(_ conv: Conv) throws -> (Bool, Bool) {
      let template = try #require(MatMulTemplate.match(conv.kernel))
      return (template.vectorA != nil, template.vectorB != nil)
    }
    #expect(try paths(Self.convs[0]) == (false, false))  // 3 channels: K = 27
    #expect(try paths(Self.convs[1]) == (true, false))  // padded window
    #expect(try paths(Self.convs[2]) == (true, true))  // 1x1, N = 12
    #expect(try paths(Conv(channels: 8, height: 5, width: 3, kernelH: 1, kernelW: 1)) == (true, false))  // N = 15
    #expect(try paths(Conv(channels: 8, height: 4, width: 4, kernelH: 1, kernelW: 1, stride: 2)) == (true, false))  // strided
  }

  /// C[b, m, n] = sum_k A[b, m, k] * B[k, n] + 1 through the vec4 path: both operands vec4 (k and n
  /// multiples of 4), only B (k odd), and a batch; m and n leave tails in the blocks and groups.
  @Test(arguments: TestDevices.vulkanURIs)
  func vectorPathsWithTails(uri: String) throws {
    for (batch, m, n, k, vectorA) in [(2, 13, 24, 20, true), (1, 37, 44, 9, false), (1, 3, 4, 8, true), (3, 70, 132, 12, true)] {
      let (bi, i, j, v) = (Expr.coordinate(0), Expr.coordinate(1), Expr.coordinate(2), Expr.variable(0))
      let (sum, stated) = Contraction.sum(
        over: [.init(variable: 0, extent: k)],
        factors: [.load(input: 0, dtype: .float32, index: bi * (m * k) + i * k + v), .load(input: 1, dtype: .float32, index: v * n + j)],
        type: .float32)
      let body = Expr.binary(.add, sum, .literal(.of(1, .float32)))
      let kernel = Kernel(
        name: "mmv", inputs: [.init(dtype: .float32, elementCount: batch * m * k), .init(dtype: .float32, elementCount: k * n)],
        output: .init(dtype: .float32, elementCount: batch * m * n), shape: [batch, m, n], body: body, sourceOps: ["mmv"],
        region: .contraction(stated))
      let template = try #require(MatMulTemplate.match(kernel))
      #expect(template.vectorB != nil && (template.vectorA != nil) == vectorA, "\(batch)x\(m)x\(n)x\(k)")
      let a = Self.random(batch * m * k)
      let b = Self.random(k * n)
      let got = try Self.run(template, inputs: [a, b], outputCount: batch * m * n, uri: uri)
      var worst: Float = 0
      for p in 0..<batch {
        for r in 0..<m {
          for c in 0..<n {
            var sum: Float = 1
            for x in 0..<k { sum += a[(p * m + r) * k + x] * b[x * n + c] }
            worst = max(worst, abs(got[(p * m + r) * n + c] - sum))
          }
        }
      }
      #expect(worst < 1e-4, "\(batch)x\(m)x\(n)x\(k): largest difference \(worst)")
    }
  }

  /// A contraction of at least 2^30 multiply-adds takes the 16x16 block (smaller ones 8x16 at
  /// most); with tails in both directions, sampled outputs (every tail row and column among them)
  /// match a reference.
  @Test(arguments: TestDevices.vulkanURIs)
  func largeContractionsTakeTheLargeBlock(uri: String) throws {
    #expect(MatMulTemplate.vectorTile(m: 1024, n: 1024, k: 1024, batch: 1, vectorB: true) == (16, 16))
    #expect(MatMulTemplate.vectorTile(m: 1024, n: 1024, k: 512, batch: 1, vectorB: true) == (8, 16))
    let (m, n, k) = (1030, 1036, 1024)
    let (i, j, v) = (Expr.coordinate(0), Expr.coordinate(1), Expr.variable(0))
    let (sum, stated) = Contraction.sum(
      over: [.init(variable: 0, extent: k)],
      factors: [.load(input: 0, dtype: .float32, index: i * k + v), .load(input: 1, dtype: .float32, index: v * n + j)], type: .float32)
    let kernel = Kernel(
      name: "big", inputs: [.init(dtype: .float32, elementCount: m * k), .init(dtype: .float32, elementCount: k * n)],
      output: .init(dtype: .float32, elementCount: m * n), shape: [m, n], body: sum, sourceOps: ["big"], region: .contraction(stated))
    let template = try #require(MatMulTemplate.match(kernel))
    #expect(template.tileM == 16 && template.tileN == 16)
    let a = Self.random(m * k)
    let b = Self.random(k * n)
    let got = try Self.run(template, inputs: [a, b], outputCount: m * n, uri: uri)
    var worst: Float = 0
    for r in Array(stride(from: 0, to: m, by: 97)) + [m - 7, m - 1] {
      for c in Array(stride(from: 0, to: n, by: 89)) + [n - 13, n - 1] {
        var sum: Float = 0
        for x in 0..<k { sum += a[r * k + x] * b[x * n + c] }
        worst = max(worst, abs(got[r * n + c] - sum))
      }
    }
    #expect(worst < 1e-3, "largest difference \(worst)")
  }

  /// C[m, n] = sum_k A^T[k, m] * B[k, n] with sizes that leave tails in both block directions.
  @Test(arguments: TestDevices.vulkanURIs)
  func transposedOperandWithTails(uri: String) throws {
    let (m, n, k) = (10, 19, 7)
    let (i, j, v) = (Expr.coordinate(0), Expr.coordinate(1), Expr.variable(0))
    let (body, stated) = Contraction.sum(
      over: [.init(variable: 0, extent: k)],
      factors: [.load(input: 0, dtype: .float32, index: v * m + i), .load(input: 1, dtype: .float32, index: v * n + j)], type: .float32)
    let kernel = Kernel(
      name: "mmt", inputs: [.init(dtype: .float32, elementCount: k * m), .init(dtype: .float32, elementCount: k * n)],
      output: .init(dtype: .float32, elementCount: m * n), shape: [m, n], body: body, sourceOps: ["mmt"], region: .contraction(stated))
    let template = try #require(MatMulTemplate.match(kernel))
    #expect(template.m == m && template.n == n && template.k == k && template.batchShape.isEmpty)
    let a = Self.random(k * m)
    let b = Self.random(k * n)
    let got = try Self.run(template, inputs: [a, b], outputCount: m * n, uri: uri)
    var worst: Float = 0
    for r in 0..<m {
      for c in 0..<n {
        var sum: Float = 0
        for x in 0..<k { sum += a[x * m + r] * b[x * n + c] }
        worst = max(worst, abs(got[r * n + c] - sum))
      }
    }
    #expect(worst < 1e-4, "largest difference \(worst)")
  }
}
