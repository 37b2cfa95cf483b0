import KilnIR
import Testing

@testable import KilnONNX

@Suite struct ConvShapeTests {
  let x = f32([1, 3, 10, 10])
  let w = f32([8, 3, 3, 3])

  @Test func explicitPadsStridesDilations() throws {
    #expect(try infer("Conv", [x, w]) == [TensorType(.float32, [1, 8, 8, 8])])
    #expect(try infer("Conv", [x, w], ["pads": .ints([1, 1, 1, 1])]) == [TensorType(.float32, [1, 8, 10, 10])])
    #expect(try infer("Conv", [x, w], ["strides": .ints([2, 2])])[0].shape == [1, 8, 4, 4])
    #expect(
      try infer("Conv", [x, w], ["strides": .ints([2, 3]), "pads": .ints([1, 0, 1, 2])])[0].shape == [1, 8, 5, 4])
    #expect(try infer("Conv", [x, w], ["dilations": .ints([2, 2])])[0].shape == [1, 8, 6, 6])
  }

  @Test func autoPadModes() throws {
    let strided: [String: AttributeValue] = ["strides": .ints([2, 2])]
    for mode in ["SAME_UPPER", "SAME_LOWER"] {
      var attributes = strided
      attributes["auto_pad"] = .string(mode)
      #expect(try infer("Conv", [x, w], attributes)[0].shape == [1, 8, 5, 5])
      #expect(try infer("Conv", [f32([1, 3, 11, 7]), w], attributes)[0].shape == [1, 8, 6, 4])
    }
    #expect(
      try infer("Conv", [f32([1, 3, 11, 7]), w], ["auto_pad": .string("VALID"), "strides": .ints([2, 2])])[0].shape == [
        1, 8, 5, 3,
      ])
    let error = inferError("Conv", [x, w], ["auto_pad": .string("SAME")])
    #expect(error?.code == .unsupportedAttribute)
  }

  @Test func groupsAndBias() throws {
    let depthwise = try infer("Conv", [f32([2, 6, 5, 5]), f32([6, 1, 3, 3]), f32([6])], ["group": .int(6)])
    #expect(depthwise[0].shape == [2, 6, 3, 3])
    #expect(inferError("Conv", [f32([2, 6, 5, 5]), f32([6, 2, 3, 3])], ["group": .int(6)])?.code == .shapeMismatch)
    #expect(inferError("Conv", [x, w, f32([4])])?.message.contains("bias shape [4]") == true)
    #expect(inferError("Conv", [x, w], ["kernel_shape": .ints([5, 5])])?.code == .shapeMismatch)
  }

  @Test func oneAndThreeDimensional() throws {
    #expect(try infer("Conv", [f32([1, 2, 9]), f32([4, 2, 3])], ["pads": .ints([1, 1])])[0].shape == [1, 4, 9])
    #expect(try infer("Conv", [f32([1, 2, 4, 5, 6]), f32([4, 2, 3, 3, 3])])[0].shape == [1, 4, 2, 3, 4])
  }

  @Test func kernelLargerThanInputIsAnError() {
    let error = inferError("Conv", [f32([1, 3, 2, 2]), w])
    #expect(error?.code == .shapeMismatch)
    #expect(error?.description.hasPrefix("test.onnx: node 'n' (Conv, opset 17): window 3") == true)
  }

  @Test func convTranspose() throws {
    let x = f32([1, 4, 5, 5])
    let w = f32([4, 2, 3, 3])
    #expect(try infer("ConvTranspose", [x, w])[0].shape == [1, 2, 7, 7])
    #expect(try infer("ConvTranspose", [x, w], ["strides": .ints([2, 2])])[0].shape == [1, 2, 11, 11])
    #expect(
      try infer(
        "ConvTranspose", [x, w],
        ["strides": .ints([2, 2]), "output_padding": .ints([1, 1]), "pads": .ints([1, 1, 1, 1])])[0]
        .shape == [1, 2, 10, 10])
    #expect(
      try infer("ConvTranspose", [x, w], ["strides": .ints([2, 2]), "output_shape": .ints([10, 9])])[0].shape == [
        1, 2, 10, 9,
      ])
    #expect(
      try infer("ConvTranspose", [x, w], ["strides": .ints([2, 2]), "auto_pad": .string("SAME_UPPER")])[0].shape == [
        1, 2, 10, 10,
      ])
    #expect(try infer("ConvTranspose", [x, w], ["group": .int(2)])[0].shape == [1, 4, 7, 7])
    #expect(try infer("ConvTranspose", [x, w], ["dilations": .ints([2, 2])])[0].shape == [1, 2, 9, 9])
  }
}

@Suite struct PoolShapeTests {
  @Test func ceilMode() throws {
    let x = f32([1, 1, 4, 4])
    let base: [String: AttributeValue] = ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2])]
    #expect(try infer("MaxPool", [x], base)[0].shape == [1, 1, 1, 1])
    var ceil = base
    ceil["ceil_mode"] = .int(1)
    #expect(try infer("MaxPool", [x], ceil)[0].shape == [1, 1, 2, 2])
    #expect(try infer("AveragePool", [x], ceil)[0].shape == [1, 1, 2, 2])
    // The last window would start in the end padding only, so it is dropped.
    let reduce: [String: AttributeValue] = [
      "kernel_shape": .ints([1, 1]), "strides": .ints([2, 2]), "ceil_mode": .int(1), "pads": .ints([0, 0, 1, 1]),
    ]
    #expect(try infer("MaxPool", [x], reduce)[0].shape == [1, 1, 2, 2])
  }

  @Test func paddingModesAndDilations() throws {
    let x = f32([1, 2, 5, 5])
    #expect(
      try infer("MaxPool", [x], ["kernel_shape": .ints([2, 2]), "auto_pad": .string("SAME_UPPER")])[0].shape == [
        1, 2, 5, 5,
      ])
    #expect(
      try infer(
        "AveragePool", [x],
        ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2]), "auto_pad": .string("SAME_LOWER")])[0].shape == [
          1, 2, 3, 3,
        ])
    #expect(
      try infer(
        "AveragePool", [x],
        ["kernel_shape": .ints([3, 3]), "pads": .ints([1, 1, 1, 1]), "count_include_pad": .int(1)])[0].shape == [
          1, 2, 5, 5,
        ])
    #expect(
      try infer("MaxPool", [x], ["kernel_shape": .ints([2, 2]), "dilations": .ints([2, 2])], opset: 12)[0].shape == [
        1, 2, 3, 3,
      ])
    #expect(try infer("GlobalAveragePool", [x])[0].shape == [1, 2, 1, 1])
    #expect(try infer("GlobalMaxPool", [f32([1, 2, 3])])[0].shape == [1, 2, 1])
  }

  @Test func maxPoolIndicesOutput() throws {
    let types = try infer("MaxPool", [f32([1, 1, 4, 4])], ["kernel_shape": .ints([2, 2])], outputs: 2)
    #expect(types == [TensorType(.float32, [1, 1, 3, 3]), TensorType(.int64, [1, 1, 3, 3])])
    #expect(inferError("MaxPool", [f32([1, 1, 4, 4])])?.message.contains("kernel_shape") == true)
  }
}

@Suite struct MatrixShapeTests {
  @Test func matMulBroadcastAndVectors() throws {
    #expect(try infer("MatMul", [f32([2, 3]), f32([3, 4])])[0].shape == [2, 4])
    #expect(try infer("MatMul", [f32([5, 1, 2, 3]), f32([4, 3, 6])])[0].shape == [5, 4, 2, 6])
    #expect(try infer("MatMul", [f32([3]), f32([3, 4])])[0].shape == [4])
    #expect(try infer("MatMul", [f32([2, 2, 3]), f32([3])])[0].shape == [2, 2])
    #expect(try infer("MatMul", [f32([3]), f32([3])])[0].shape == [])
    #expect(inferError("MatMul", [f32([2, 3]), f32([4, 5])])?.code == .shapeMismatch)
    #expect(inferError("MatMul", [f32([2, 2, 3]), f32([3, 3, 4])])?.code == .shapeMismatch)
  }

  @Test func gemm() throws {
    #expect(try infer("Gemm", [f32([3, 5]), f32([5, 4]), f32([4])])[0].shape == [3, 4])
    #expect(
      try infer("Gemm", [f32([5, 3]), f32([4, 5])], ["transA": .int(1), "transB": .int(1)])[0].shape == [3, 4])
    #expect(inferError("Gemm", [f32([3, 5]), f32([5, 4]), f32([3])])?.code == .shapeMismatch)
    // Opset 6 spells bias broadcasting with an attribute; it is accepted and removed.
    let graph = try singleNodeModel("Gemm", [f32([3, 5]), f32([5, 4]), f32([4])], ["broadcast": .int(1)], opset: 6)
      .importGraph()
    #expect(graph.nodes[0].attributes["broadcast"] == nil)
  }
}

@Suite struct ElementwiseShapeTests {
  @Test func broadcastingOps() throws {
    #expect(try infer("Add", [f32([2, 1, 4]), f32([3, 1])])[0] == TensorType(.float32, [2, 3, 4]))
    #expect(try infer("Equal", [.input(.int64, [3]), .input(.int64, [2, 1])])[0] == TensorType(.bool, [2, 3]))
    #expect(try infer("Pow", [f32([2]), .input(.int32, [])])[0] == TensorType(.float32, [2]))
    #expect(try infer("Sum", [f32([3]), f32([2, 1]), f32([])])[0].shape == [2, 3])
    #expect(try infer("Where", [.input(.bool, [2, 1]), f32([3]), f32([1])])[0] == TensorType(.float32, [2, 3]))
    #expect(try infer("And", [.input(.bool, [2]), .input(.bool, [2])])[0].dtype == .bool)
    #expect(inferError("Add", [f32([2, 3]), f32([4])])?.code == .shapeMismatch)
    #expect(inferError("Add", [f32([2]), .input(.int32, [2])])?.code == .shapeMismatch)
    #expect(inferError("Sqrt", [.input(.int32, [2])])?.code == .unsupportedType)
  }

  @Test func legacyBroadcastAttribute() throws {
    let ok = try singleNodeModel("Add", [f32([2, 3, 4]), f32([4])], ["broadcast": .int(1)], opset: 6).importGraph()
    #expect(ok.nodes[0].attributes.isEmpty)
    #expect(
      try infer("Mul", [f32([2, 3, 4]), f32([3, 4])], ["broadcast": .int(1), "axis": .int(1)], opset: 6)[0].shape == [
        2, 3, 4,
      ])
    #expect(
      inferError("Add", [f32([2, 3, 4]), f32([3])], ["broadcast": .int(1), "axis": .int(1)], opset: 6)?.code
        == .unsupportedAttribute)
    #expect(
      inferError("Add", [f32([2, 3]), f32([3])], ["broadcast": .int(1)], opset: 13)?.code == .unsupportedAttribute)
  }

  @Test func clipAcrossOpsets() throws {
    #expect(try infer("Clip", [f32([3])], ["min": .float(0), "max": .float(6)], opset: 6)[0].shape == [3])
    #expect(try infer("Clip", [f32([3]), .constant(.scalar(Float(0))), .omitted], opset: 13)[0].shape == [3])
    #expect(inferError("Clip", [f32([3])], ["min": .float(0)], opset: 13)?.code == .unsupportedAttribute)
  }

  @Test func castDropoutAndActivations() throws {
    #expect(try infer("Cast", [f32([2])], ["to": .int(7)])[0] == TensorType(.int64, [2]))
    #expect(inferError("Cast", [f32([2])], ["to": .int(8)])?.code == .unsupportedType)
    #expect(try infer("Dropout", [f32([2, 2])], outputs: 2)[1] == TensorType(.bool, [2, 2]))
    #expect(try infer("Gelu", [f32([2])], ["approximate": .string("tanh")], opset: 20)[0].shape == [2])
    #expect(try infer("LeakyRelu", [f32([2])], ["alpha": .float(0.1)])[0].shape == [2])
    #expect(try infer("HardSwish", [.input(.float16, [2])])[0].dtype == .float16)
  }
}

@Suite struct NormalizationShapeTests {
  @Test func softmaxAxisDefaultsChangeAtOpset13() throws {
    #expect(try infer("Softmax", [f32([2, 3, 4])], opset: 11)[0].shape == [2, 3, 4])
    #expect(inferError("Softmax", [f32([4])], opset: 11)?.code == .invalidAttribute)  // default axis 1 needs rank 2
    #expect(try infer("Softmax", [f32([4])], opset: 13)[0].shape == [4])
    #expect(inferError("LogSoftmax", [f32([2, 3])], ["axis": .int(2)])?.code == .invalidAttribute)
  }

  @Test func normalizations() throws {
    let c = f32([3])
    #expect(try infer("BatchNormalization", [f32([2, 3, 4, 4]), c, c, c, c])[0].shape == [2, 3, 4, 4])
    #expect(inferError("BatchNormalization", [f32([2, 3, 4, 4]), f32([4]), c, c, c])?.code == .shapeMismatch)
    #expect(
      inferError("BatchNormalization", [f32([2, 3]), c, c, c, c], ["training_mode": .int(1)], opset: 15)?.code
        == .unsupportedAttribute)
    #expect(try infer("InstanceNormalization", [f32([2, 3, 5]), c, c])[0].shape == [2, 3, 5])
    #expect(try infer("LRN", [f32([1, 3, 4, 4])], ["size": .int(3)])[0].shape == [1, 3, 4, 4])
    let layer = try infer("LayerNormalization", [f32([2, 5, 8]), f32([8]), f32([8])], ["axis": .int(-1)], outputs: 3)
    #expect(
      layer == [TensorType(.float32, [2, 5, 8]), TensorType(.float32, [2, 5, 1]), TensorType(.float32, [2, 5, 1])])
    let axis1 = try infer(
      "LayerNormalization", [.input(.float16, [2, 5, 8]), .input(.float16, [5, 8])], ["axis": .int(1)], outputs: 2)
    #expect(axis1[1] == TensorType(.float32, [2, 1, 1]))
  }
}

@Suite struct TensorShapeTests {
  @Test func reshapeZeroAndMinusOne() throws {
    let x = f32([2, 3, 4])
    #expect(try infer("Reshape", [x, .constant(ints([0, -1]))])[0].shape == [2, 12])
    #expect(try infer("Reshape", [x, .constant(ints([-1, 0, 2]))])[0].shape == [4, 3, 2])
    #expect(try infer("Reshape", [x, .constant(ints([4, 0, 2]))])[0].shape == [4, 3, 2])
    #expect(
      try infer("Reshape", [f32([0, 3]), .constant(ints([0, 3]))], ["allowzero": .int(1)], opset: 14)[0].shape == [
        0, 3,
      ])
    #expect(inferError("Reshape", [x, .constant(ints([-1, -1]))])?.code == .shapeMismatch)
    #expect(inferError("Reshape", [x, .constant(ints([5, -1]))])?.code == .shapeMismatch)
    #expect(inferError("Reshape", [x, .constant(ints([7, 0]))], opset: 13)?.code == .shapeMismatch)
    #expect(inferError("Reshape", [x, .input(.int64, [2])])?.code == .dynamicShape)
  }

  @Test func flattenTransposeExpandTile() throws {
    let x = f32([2, 3, 4])
    #expect(try infer("Flatten", [x])[0].shape == [2, 12])
    #expect(try infer("Flatten", [x], ["axis": .int(0)])[0].shape == [1, 24])
    #expect(try infer("Flatten", [x], ["axis": .int(-1)])[0].shape == [6, 4])
    #expect(try infer("Transpose", [x])[0].shape == [4, 3, 2])
    #expect(try infer("Transpose", [x], ["perm": .ints([1, 0, 2])])[0].shape == [3, 2, 4])
    #expect(inferError("Transpose", [x], ["perm": .ints([0, 0, 1])])?.code == .invalidAttribute)
    #expect(try infer("Expand", [f32([3, 1]), .constant(ints([2, 1, 6]))])[0].shape == [2, 3, 6])
    #expect(try infer("Tile", [x, .constant(ints([1, 2, 3]))])[0].shape == [2, 6, 12])
  }

  @Test func squeezeUnsqueezeAcrossOpsets() throws {
    let x = f32([1, 3, 1, 2])
    #expect(try infer("Squeeze", [x], opset: 11)[0].shape == [3, 2])
    #expect(try infer("Squeeze", [x], ["axes": .ints([0])], opset: 11)[0].shape == [3, 1, 2])
    #expect(try infer("Squeeze", [x, .constant(ints([-2]))], opset: 13)[0].shape == [1, 3, 2])
    #expect(inferError("Squeeze", [x], ["axes": .ints([1])], opset: 11)?.code == .shapeMismatch)
    #expect(inferError("Squeeze", [x], ["axes": .ints([0])], opset: 13)?.code == .unsupportedAttribute)
    #expect(try infer("Unsqueeze", [f32([3, 2])], ["axes": .ints([0, 3])], opset: 11)[0].shape == [1, 3, 2, 1])
    #expect(try infer("Unsqueeze", [f32([3, 2]), .constant(ints([-1, 0]))], opset: 13)[0].shape == [1, 3, 2, 1])
    #expect(inferError("Unsqueeze", [f32([3]), .constant(ints([0, 0]))], opset: 13)?.code == .invalidAttribute)
  }

  @Test func splitAcrossOpsets() throws {
    let x = f32([6, 4])
    #expect(try infer("Split", [x], outputs: 3).map(\.shape) == [[2, 4], [2, 4], [2, 4]])
    #expect(
      try infer("Split", [x], ["split": .ints([1, 5])], opset: 11, outputs: 2).map(\.shape) == [[1, 4], [5, 4]])
    #expect(
      try infer("Split", [x, .constant(ints([2, 2]))], ["axis": .int(1)], opset: 13, outputs: 2).map(\.shape) == [
        [6, 2], [6, 2],
      ])
    #expect(
      try infer("Split", [f32([7])], ["num_outputs": .int(3)], opset: 18, outputs: 3).map(\.shape) == [[3], [3], [1]])
    #expect(inferError("Split", [f32([7])], opset: 13, outputs: 3)?.code == .shapeMismatch)
    #expect(inferError("Split", [x, .constant(ints([2, 3]))], opset: 13, outputs: 2)?.code == .shapeMismatch)
  }

  @Test func sliceAcrossOpsets() throws {
    let x = f32([10, 8])
    #expect(
      try infer("Slice", [x], ["starts": .ints([1]), "ends": .ints([-1]), "axes": .ints([1])], opset: 9)[0].shape == [
        10, 6,
      ])
    #expect(
      try infer(
        "Slice", [x, .constant(ints([2])), .constant(ints([Int64.max])), .constant(ints([0])), .constant(ints([3]))])[0]
        .shape == [3, 8])
    #expect(
      try infer(
        "Slice", [x, .constant(ints([-1])), .constant(ints([Int64.min])), .constant(ints([1])), .constant(ints([-2]))])[
          0
        ].shape == [10, 4])
    #expect(try infer("Slice", [x, .constant(ints([20, 5])), .constant(ints([30, 1]))])[0].shape == [0, 0])
    #expect(
      inferError("Slice", [x, .constant(ints([0])), .constant(ints([1])), .constant(ints([0])), .constant(ints([0]))])?
        .code == .invalidAttribute)
  }

  @Test func padAcrossOpsets() throws {
    #expect(try infer("Pad", [f32([2, 3])], ["pads": .ints([1, 0, 1, 2])], opset: 10)[0].shape == [4, 5])
    #expect(try infer("Pad", [f32([2, 3]), .constant(ints([0, 1, 0, -1]))], opset: 13)[0].shape == [2, 3])
    #expect(
      try infer("Pad", [f32([2, 3]), .constant(ints([2, 2])), .omitted, .constant(ints([-1]))], opset: 18)[0].shape == [
        2, 7,
      ])
    #expect(inferError("Pad", [f32([2, 3]), .constant(ints([0, 0, -5, 0]))], opset: 13)?.code == .shapeMismatch)
    #expect(
      inferError("Pad", [f32([2, 3]), .constant(ints([0, 0, 0, 0]))], ["mode": .string("wrap")], opset: 13)?.code
        == .unsupportedAttribute)
  }

  @Test func gatherConcatShape() throws {
    #expect(
      try infer("Gather", [f32([5, 4, 3]), .input(.int64, [2, 2])], ["axis": .int(1)])[0].shape == [5, 2, 2, 3])
    #expect(try infer("Gather", [f32([5, 4]), .constant(TensorData.scalar(Int64(-1)))])[0].shape == [4])
    #expect(try infer("Concat", [f32([2, 3]), f32([2, 5])], ["axis": .int(-1)])[0].shape == [2, 8])
    #expect(inferError("Concat", [f32([2, 3]), f32([3, 5])], ["axis": .int(1)])?.code == .shapeMismatch)
    #expect(try infer("Shape", [f32([2, 3, 4])], ["start": .int(1)], opset: 15)[0].shape == [2])
    #expect(try infer("Shape", [f32([2, 3, 4])], ["start": .int(-1), "end": .int(1)], opset: 15)[0].shape == [0])
    #expect(try infer("Size", [f32([2, 3])])[0] == TensorType(.int64, []))
    #expect(
      try infer("ArgMax", [f32([2, 3, 4])], ["axis": .int(1), "keepdims": .int(0)])[0] == TensorType(.int64, [2, 4]))
    #expect(try infer("ArgMin", [f32([2, 3, 4])])[0] == TensorType(.int64, [1, 3, 4]))
  }

  @Test func resizeScalesAndSizes() throws {
    let x = f32([1, 3, 4, 6])
    #expect(
      try infer("Resize", [x, .constant(TensorData([1, 1, 2, 0.5] as [Float]))], opset: 10)[0].shape == [1, 3, 8, 3])
    #expect(
      try infer("Resize", [x, .omitted, .constant(TensorData([1, 1, 1.5, 1.5] as [Float]))], opset: 13)[0].shape == [
        1, 3, 6, 9,
      ])
    #expect(
      try infer(
        "Resize",
        [
          x, .constant(TensorData([] as [Float])), .constant(TensorData([] as [Float])), .constant(ints([1, 3, 5, 7])),
        ], opset: 11)[0].shape == [1, 3, 5, 7])
    #expect(
      try infer(
        "Resize", [x, .omitted, .omitted, .constant(ints([8, 8]))],
        ["axes": .ints([2, 3]), "keep_aspect_ratio_policy": .string("not_larger")], opset: 18)[0]
        .shape == [1, 3, 5, 8])
    #expect(
      inferError(
        "Resize", [x, .omitted, .constant(TensorData([1, 1, 2, 2] as [Float]))], ["mode": .string("area")], opset: 13)?
        .code == .unsupportedAttribute)
    #expect(inferError("Resize", [x, .omitted, .omitted, .input(.int64, [4])], opset: 13)?.code == .dynamicShape)
  }

  @Test func reductionsAcrossOpsets() throws {
    let x = f32([2, 3, 4])
    #expect(try infer("ReduceSum", [x], ["axes": .ints([1])], opset: 11)[0].shape == [2, 1, 4])
    #expect(try infer("ReduceSum", [x, .constant(ints([1]))], ["keepdims": .int(0)], opset: 13)[0].shape == [2, 4])
    #expect(try infer("ReduceSum", [x], opset: 13)[0].shape == [1, 1, 1])
    #expect(
      try infer("ReduceSum", [x, .constant(ints([]))], ["noop_with_empty_axes": .int(1)], opset: 13)[0].shape == [
        2, 3, 4,
      ])
    #expect(try infer("ReduceMean", [x], ["axes": .ints([-1]), "keepdims": .int(0)], opset: 13)[0].shape == [2, 3])
    #expect(try infer("ReduceMax", [x, .constant(ints([0, 2]))], opset: 18)[0].shape == [1, 3, 1])
    #expect(inferError("ReduceMean", [x], ["axes": .ints([0])], opset: 18)?.code == .unsupportedAttribute)
    #expect(inferError("ReduceProd", [x], ["axes": .ints([0, 0])], opset: 13)?.code == .invalidAttribute)
  }

  @Test func rangeAndConstantOfShape() throws {
    #expect(
      try infer("Range", [.constant(.scalar(Int64(1))), .constant(.scalar(Int64(10))), .constant(.scalar(Int64(3)))])[0]
        == TensorType(.int64, [3]))
    #expect(
      try infer("Range", [.constant(.scalar(Float(0))), .constant(.scalar(Float(1))), .constant(.scalar(Float(0.3)))])[
        0
      ].shape == [4])
    #expect(
      try infer("Range", [.constant(.scalar(Int64(5))), .constant(.scalar(Int64(1))), .constant(.scalar(Int64(1)))])[0]
        .shape == [0])
    #expect(try infer("ConstantOfShape", [.constant(ints([2, 3]))])[0] == TensorType(.float32, [2, 3]))
    #expect(
      try infer("ConstantOfShape", [.constant(ints([4]))], ["value": .tensor(TensorData([7] as [Int64]))])[0]
        == TensorType(.int64, [4]))
  }
}
