import Foundation
import KilnCompiler
import KilnIR
import Testing

@Suite("Indexing lowering")
struct IndexingLoweringTests {
  static let reductions = ["none", "add", "mul", "max", "min"]

  /// `old` combined with `new` the way a scatter with `reduction` does.
  static func combine(_ old: Double, _ new: Double, _ reduction: String) -> Double {
    switch reduction {
    case "add": old + new
    case "mul": old * new
    case "max": Swift.max(old, new)
    case "min": Swift.min(old, new)
    default: new
    }
  }

  @Test(arguments: reductions)
  func scatterElementsWithDuplicateAndNegativeIndices(_ reduction: String) throws {
    // Updates cover only the first 3 of data's 4 columns; rows -1 and 2 are the same row.
    let data = random([3, 4], seed: 5)
    let indices: [Int64] = [0, -1, 1, 2, 2, 0]
    let updates = random([2, 3], seed: 9)
    var expected = data.doubles()
    let values = updates.doubles()
    forEachIndex([2, 3]) { u in
      let row = Int((indices[offset(u, [2, 3])] + 3) % 3)
      let target = offset([row, u[1]], [3, 4])
      expected[target] = Self.combine(expected[target], values[offset(u, [2, 3])], reduction)
    }
    let result = try LoweringHarness.run1(
      "ScatterElements", inputs: [data, TensorData(indices, shape: [2, 3]), updates], output: data.type,
      attributes: ["axis": .int(0), "reduction": .string(reduction)])
    expectClose(result, expected)
  }

  @Test func legacyScatterIsScatterElements() throws {
    let data = TensorData([Float](repeating: 0, count: 5), shape: [1, 5])
    let result = try LoweringHarness.run1(
      "Scatter", version: 10,
      inputs: [data, TensorData([Int64(1), 3], shape: [1, 2]), TensorData([Float(1.5), 2.5], shape: [1, 2])],
      output: data.type, attributes: ["axis": .int(1)])
    #expect(result == [0, 1.5, 0, 2.5, 0])
  }

  @Test(arguments: reductions)
  func scatterNDSlicesWithRepeats(_ reduction: String) throws {
    let data = random([4, 3], seed: 2)
    let indices: [Int64] = [1, -1, 1]
    let updates = random([3, 3], seed: 7)
    var expected = data.doubles()
    let values = updates.doubles()
    for (p, index) in indices.enumerated() {
      let row = Int((index + 4) % 4)
      for column in 0..<3 {
        expected[row * 3 + column] = Self.combine(expected[row * 3 + column], values[p * 3 + column], reduction)
      }
    }
    let result = try LoweringHarness.run1(
      "ScatterND", inputs: [data, TensorData(indices, shape: [3, 1]), updates], output: data.type,
      attributes: ["reduction": .string(reduction)])
    expectClose(result, expected)
  }

  @Test func scatterNDElementIndices() throws {
    let data = TensorData([Float(1), 2, 3, 4], shape: [2, 2])
    let result = try LoweringHarness.run1(
      "ScatterND", inputs: [data, TensorData([Int64(0), 1, 1, 0], shape: [2, 2]), TensorData([Float(9), 8])],
      output: data.type)
    #expect(result == [1, 9, 8, 4])
  }

  @Test(arguments: [true, false])
  func topKOrdersTiesByIndex(_ largest: Bool) throws {
    let x = TensorData([Float(3), 1, 3, 5, 1, 2, 2, 2, 0, 7], shape: [2, 5])
    let k = 3
    var values: [Double] = []
    var indices: [Double] = []
    for row in 0..<2 {
      let items = (0..<5).map { (value: x.doubles()[row * 5 + $0], index: $0) }
      let sorted = items.sorted { a, b in
        a.value == b.value ? a.index < b.index : (largest ? a.value > b.value : a.value < b.value)
      }
      values += sorted.prefix(k).map(\.value)
      indices += sorted.prefix(k).map { Double($0.index) }
    }
    let result = try LoweringHarness.run(
      "TopK", version: 11, inputs: [x, TensorData([Int64(k)])],
      outputs: [TensorType(.float32, [2, k]), TensorType(.int64, [2, k])],
      attributes: ["axis": .int(-1), "largest": .int(largest ? 1 : 0)])
    #expect(result[0] == values)
    #expect(result[1] == indices)
  }

  @Test func topKOneIsTheFirstExtreme() throws {
    let x = TensorData([Float(2), 7, 7, 1, 1, 0], shape: [3, 2])
    let result = try LoweringHarness.run(
      "TopK", version: 1, inputs: [x], outputs: [TensorType(.float32, [1, 2]), TensorType(.int64, [1, 2])],
      attributes: ["axis": .int(0), "k": .int(1)])
    #expect(result[0] == [7, 7])
    #expect(result[1] == [1, 0])
  }

  /// Counts of each pool n-gram in `row` per the ONNX definition (unigrams once; longer
  /// n-grams at every skip distance up to `maxSkip + 1`).
  static func nGramCounts(_ row: [Int64], pool: [[Int64]], maxSkip: Int) -> [Double] {
    pool.map { gram in
      let distances = gram.count == 1 ? [1] : Array(1...(maxSkip + 1))
      var count = 0
      for distance in distances {
        for start in row.indices where start + (gram.count - 1) * distance < row.count {
          if gram.indices.allSatisfy({ row[start + $0 * distance] == gram[$0] }) { count += 1 }
        }
      }
      return Double(count)
    }
  }

  @Test(arguments: ["TF", "IDF", "TFIDF"])
  func tfIdfVectorizerCountsSkipGrams(_ mode: String) throws {
    let tokens: [Int32] = [1, 2, 1, 3, 2, 1, 4, 4, 2, 1, 2, 3]
    // Unigrams 1, 4 and bigrams (1, 2), (2, 1), (4, 4); output indexes reorder them.
    let pool: [[Int64]] = [[1], [4], [1, 2], [2, 1], [4, 4]]
    let outputIndex = [3, 0, 4, 1, 2]
    let weights: [Float] = [0.5, 2, 1.5, 3, 0.25]
    var expected: [Double] = []
    for row in 0..<2 {
      let counts = Self.nGramCounts(tokens[(row * 6)..<(row * 6 + 6)].map(Int64.init), pool: pool, maxSkip: 2)
      var line = [Double](repeating: 0, count: 5)
      for (gram, index) in outputIndex.enumerated() {
        let weight = Double(weights[index])
        switch mode {
        case "TF": line[index] = counts[gram]
        case "IDF": line[index] = counts[gram] > 0 ? weight : 0
        default: line[index] = weight * counts[gram]
        }
      }
      expected += line
    }
    let result = try LoweringHarness.run1(
      "TfIdfVectorizer", version: 9, inputs: [TensorData(tokens, shape: [2, 6])], output: TensorType(.float32, [2, 5]),
      attributes: [
        "mode": .string(mode), "min_gram_length": .int(1), "max_gram_length": .int(2), "max_skip_count": .int(2),
        "ngram_counts": .ints([0, 2]), "ngram_indexes": .ints(outputIndex.map(Int64.init)),
        "pool_int64s": .ints([1, 4, 1, 2, 2, 1, 4, 4]), "weights": .floats(weights),
      ])
    expectClose(result, expected)
  }

  @Test func bitCastKeepsBits() throws {
    let floats = try LoweringHarness.run1(
      "BitCast", version: 26, inputs: [TensorData([Float(1), -2])], output: TensorType(.int32, [2]),
      attributes: ["to": .int(6)])
    #expect(
      floats == [Double(Int32(bitPattern: Float(1).bitPattern)), Double(Int32(bitPattern: Float(-2).bitPattern))])
    let halfBits: [UInt16] = [0x3C00, 0xC000, 0x0001]
    let halves = try TensorData(
      type: TensorType(.float16, [3]), bytes: halfBits.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] })
    let fromHalf = try LoweringHarness.run1(
      "BitCast", version: 26, inputs: [halves], output: TensorType(.int16, [3]), attributes: ["to": .int(5)])
    #expect(fromHalf == [0x3C00, Double(Int16(bitPattern: 0xC000)), 1])
    let bytes = try TensorData(type: TensorType(.uint8, [2]), bytes: [200, 7])
    let signed = try LoweringHarness.run1(
      "BitCast", version: 26, inputs: [bytes], output: TensorType(.int8, [2]), attributes: ["to": .int(3)])
    #expect(signed == [-56, 7])
  }
}
