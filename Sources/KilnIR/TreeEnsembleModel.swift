// The ai.onnx.ml TreeEnsemble operator's trees, decoded from its attributes (shared by the
// importer's shape inference and the lowering).

/// A TreeEnsemble's attributes, checked: every node, child and leaf reference in range, trees
/// acyclic (each node reached at most once from its root).
public struct TreeEnsembleModel: Sendable {
  public enum Mode: Int, Sendable { case lessEqual = 0, less, greaterEqual, greater, equal, notEqual, member }
  public indirect enum Tree: Sendable {
    case leaf(Int)
    case branch(feature: Int, mode: Mode, split: Double, members: [Double], missingGoesTrue: Bool, whenTrue: Tree, whenFalse: Tree)
  }
  public enum Aggregate: Int, Sendable { case average = 0, sum, minimum, maximum }

  public var trees: [Tree]
  public var leafTargets: [Int]
  public var leafWeights: [Double]
  public var targets: Int
  public var aggregate: Aggregate

  public init(_ node: Node, features: Int) throws {
    func ints(_ name: String) throws -> [Int] { try node.ints(name) ?? [] }
    func doubles(_ name: String) throws -> [Double] {
      guard let data = try node.tensor(name) else { return [] }
      return data.doubles()
    }
    targets = try node.int("n_targets") ?? 0
    guard targets > 0 else { throw IRError(.attribute, "n_targets must be positive") }
    guard try node.int("post_transform", default: 0) == 0 else {
      throw IRError(.attribute, "post_transform other than NONE (0) is not supported")
    }
    guard let aggregate = Aggregate(rawValue: try node.int("aggregate_function", default: 1)) else {
      throw IRError(.attribute, "aggregate_function must be 0 to 3")
    }
    self.aggregate = aggregate
    let featureIDs = try ints("nodes_featureids")
    let count = featureIDs.count
    let modes = try doubles("nodes_modes").map { Int($0) }
    let splits = try doubles("nodes_splits")
    let trueIDs = try ints("nodes_truenodeids")
    let falseIDs = try ints("nodes_falsenodeids")
    let trueLeafs = try ints("nodes_trueleafs")
    let falseLeafs = try ints("nodes_falseleafs")
    let missing = try ints("nodes_missing_value_tracks_true")
    guard [modes.count, splits.count, trueIDs.count, falseIDs.count, trueLeafs.count, falseLeafs.count].allSatisfy({ $0 == count }),
      missing.isEmpty || missing.count == count
    else { throw IRError(.attribute, "the nodes_* attributes must all have \(count) entries") }
    leafTargets = try ints("leaf_targetids")
    leafWeights = try doubles("leaf_weights")
    let targetCount = targets
    guard leafTargets.count == leafWeights.count, leafTargets.allSatisfy({ $0 >= 0 && $0 < targetCount }) else {
      throw IRError(.attribute, "leaf_targetids and leaf_weights must pair up, with targets below n_targets")
    }
    // Members of each MEMBER node, in node order, separated by NaN.
    var memberSets: [[Double]] = [[]]
    for value in try doubles("membership_values") {
      if value.isNaN { memberSets.append([]) } else { memberSets[memberSets.count - 1].append(value) }
    }
    var memberIndex = 0
    var nodeMembers = [[Double]](repeating: [], count: count)
    for i in 0..<count where modes[i] == Mode.member.rawValue {
      guard memberIndex < memberSets.count else { throw IRError(.attribute, "membership_values has too few sets") }
      nodeMembers[i] = memberSets[memberIndex]
      memberIndex += 1
    }
    let leafCount = leafTargets.count
    func build(_ index: Int, isLeaf: Bool, depth: Int) throws -> Tree {
      if isLeaf {
        guard index >= 0 && index < leafCount else { throw IRError(.attribute, "leaf \(index) is out of range") }
        return .leaf(index)
      }
      guard index >= 0 && index < count, depth <= count else {
        throw IRError(.attribute, "node \(index) is out of range or the tree has a cycle")
      }
      guard featureIDs[index] >= 0 && featureIDs[index] < features, let mode = Mode(rawValue: modes[index]) else {
        throw IRError(.attribute, "node \(index) has feature \(featureIDs[index]) or mode \(modes[index]) out of range")
      }
      return .branch(
        feature: featureIDs[index], mode: mode, split: splits[index], members: nodeMembers[index],
        missingGoesTrue: !missing.isEmpty && missing[index] != 0,
        whenTrue: try build(trueIDs[index], isLeaf: trueLeafs[index] != 0, depth: depth + 1),
        whenFalse: try build(falseIDs[index], isLeaf: falseLeafs[index] != 0, depth: depth + 1))
    }
    var trees: [Tree] = []
    for root in try ints("tree_roots") { trees.append(try build(root, isLeaf: false, depth: 0)) }
    self.trees = trees
    guard !trees.isEmpty else { throw IRError(.attribute, "tree_roots is empty") }
  }
}
