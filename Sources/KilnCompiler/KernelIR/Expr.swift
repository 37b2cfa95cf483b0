import KilnIR

/// A value of the kernel IR: a node of a directed acyclic graph of scalar operations.
///
/// A kernel computes one output element as an `Expr` over the output coordinates
/// (`.coordinate(d)`), reduction variables, literals and loads from its inputs (materialised
/// tensors, by linear element index). Elementwise and movement ops fuse into loads' index
/// expressions; reductions and contractions are `.reduce` nodes.
///
/// Values are shared, not copied: an operand used twice (Relu is `select(x < 0, 0, x)`) is one
/// node referenced twice, so a chain of n fused ops is O(n) nodes, and every traversal in
/// `Expr+Traversal.swift` visits each distinct node once. Each node carries its hash, its type and
/// a few derived facts, computed once at construction. Equality is structural (two separately
/// built equal graphs compare equal) and costs O(distinct nodes) at worst; identical nodes compare
/// in O(1).
///
/// Thread-safety: immutable; values may be shared across threads.
public struct Expr: Hashable, Sendable, CustomStringConvertible {
  /// The operation at the root of a value and its operands.
  public enum Kind: Hashable, Sendable {
    /// A literal; its type is the literal's.
    case literal(Literal)
    /// The output coordinate along axis `d` (type `.index`).
    case coordinate(Int)
    /// The variable of the enclosing `.reduce` with this id (type `.index`).
    case variable(Int)
    /// Element `index` (type `.index`, a linear element offset) of kernel input `input`, stored as
    /// `dtype`; the value has type `ValueType.compute(dtype)`.
    case load(input: Int, dtype: DType, index: Expr)
    case unary(UnaryOp, Expr)
    case binary(BinaryOp, Expr, Expr)
    /// `condition ? a : b`; `condition` is `.bool`, `a` and `b` have the same type. Only the
    /// chosen operand is evaluated (an operand may load out of bounds where it is not chosen).
    case select(Expr, Expr, Expr)
    /// Converts to `type` with C semantics (float -> int truncates; -> bool is `!= 0`).
    case cast(Expr, ValueType)
    /// Reinterprets the bits of a value stored as `from` as a `to` value of the same width: the
    /// value is first rounded to its storage format (float16/bfloat16 compute as float32), and
    /// the result computes as `ValueType.compute(to)`.
    case bitcast(Expr, from: DType, to: DType)
    /// Folds `body` over `variable` in `0..<extent`. For argmax/argmin the result is the (index)
    /// value of `variable` at the best `body`.
    case reduce(ReduceOp, variable: Int, extent: Int, body: Expr)
    /// The current value of a custom program's local variable (`KernelProgram` only).
    case local(Int, ValueType)
    /// Output element `index` as the program stored it, read back as its compute type
    /// (`KernelProgram` only: a custom kernel may use its output as working memory).
    case loadOutput(dtype: DType, index: Expr)
    /// Element `index` of the invocation's int64 scratch array (`KernelProgram` only).
    case loadScratch(index: Expr)
  }

  let node: ExprNode

  init(_ kind: Kind) { node = ExprNode(kind) }

  /// This node's identity: equal for the same node, valid while the value is alive (memo keys of
  /// graph traversals; two equal values built apart have different identities).
  public var identity: ObjectIdentifier { ObjectIdentifier(node) }
  /// The operation at the root of this value.
  public var kind: Kind { node.kind }
  /// The type this value computes in.
  public var type: ValueType { node.type }
  /// The largest reduction extent inside (0 if none).
  public var maximumExtent: Int { node.maximumExtent }
  /// Whether a `.reduce` occurs anywhere in this value.
  public var containsReduction: Bool { node.containsReduction }
  /// Whether this value loads from memory anywhere.
  public var readsMemory: Bool { node.readsMemory }

  public func hash(into hasher: inout Hasher) { hasher.combine(node.hash) }

  /// The value in the kernel printer's SSA form, on one line.
  public var description: String { KernelPrinter().print(self) }

  public static func == (a: Expr, b: Expr) -> Bool {
    if a.node === b.node { return true }
    if a.node.hash != b.node.hash || a.node.type != b.node.type { return false }
    var proven = Set<NodePair>()
    return deepEqual(a, b, &proven)
  }

  // MARK: Constructors (spelled like the kinds)

  public static func literal(_ literal: Literal) -> Expr { Expr(.literal(literal)) }
  public static func coordinate(_ axis: Int) -> Expr { Expr(.coordinate(axis)) }
  public static func variable(_ id: Int) -> Expr { Expr(.variable(id)) }
  public static func load(input: Int, dtype: DType, index: Expr) -> Expr { Expr(.load(input: input, dtype: dtype, index: index)) }
  public static func unary(_ op: UnaryOp, _ a: Expr) -> Expr { Expr(.unary(op, a)) }
  public static func binary(_ op: BinaryOp, _ a: Expr, _ b: Expr) -> Expr { Expr(.binary(op, a, b)) }
  public static func select(_ condition: Expr, _ a: Expr, _ b: Expr) -> Expr { Expr(.select(condition, a, b)) }
  public static func cast(_ a: Expr, _ type: ValueType) -> Expr { Expr(.cast(a, type)) }
  public static func bitcast(_ a: Expr, from: DType, to: DType) -> Expr { Expr(.bitcast(a, from: from, to: to)) }
  public static func reduce(_ op: ReduceOp, variable: Int, extent: Int, body: Expr) -> Expr {
    Expr(.reduce(op, variable: variable, extent: extent, body: body))
  }
  public static func local(_ id: Int, _ type: ValueType) -> Expr { Expr(.local(id, type)) }
  public static func loadOutput(dtype: DType, index: Expr) -> Expr { Expr(.loadOutput(dtype: dtype, index: index)) }
  public static func loadScratch(_ index: Expr) -> Expr { Expr(.loadScratch(index: index)) }
}

/// The storage of one `Expr` value: immutable, with the facts derived from its operands.
final class ExprNode: Sendable {
  let kind: Expr.Kind
  let hash: Int
  let type: ValueType
  let maximumExtent: Int
  let containsReduction: Bool
  let readsMemory: Bool

  init(_ kind: Expr.Kind) {
    self.kind = kind
    // Children hash by their cached hash, so this is O(1).
    hash = kind.hashValue
    let children = kind.children
    var extent = children.reduce(0) { max($0, $1.maximumExtent) }
    var reduction = children.contains { $0.containsReduction }
    var reads = children.contains { $0.readsMemory }
    switch kind {
    case .literal(let literal): type = literal.type
    case .coordinate, .variable: type = .index
    case .local(_, let localType): type = localType
    case .loadOutput(let dtype, _):
      type = .compute(dtype)
      reads = true
    case .loadScratch:
      type = .int64
      reads = true
    case .load(_, let dtype, _):
      type = .compute(dtype)
      reads = true
    case .unary(let op, let a):
      switch op {
      case .isNaN, .isPositiveInfinity, .isNegativeInfinity, .logicalNot: type = .bool
      default: type = a.type
      }
    case .binary(let op, let a, _): type = op.isComparison || op.isLogical ? .bool : a.type
    case .select(_, let a, _): type = a.type
    case .cast(_, let target): type = target
    case .bitcast(_, _, let to): type = .compute(to)
    case .reduce(let op, _, let e, let body):
      type = op.returnsIndex ? .index : body.type
      extent = max(extent, e)
      reduction = true
    }
    maximumExtent = extent
    containsReduction = reduction
    readsMemory = reads
  }
}

/// Two nodes already shown equal during one comparison.
struct NodePair: Hashable {
  let a: ObjectIdentifier
  let b: ObjectIdentifier
}

extension Expr {
  /// Structural equality that compares each pair of distinct nodes once.
  fileprivate static func deepEqual(_ x: Expr, _ y: Expr, _ proven: inout Set<NodePair>) -> Bool {
    if x.node === y.node { return true }
    if x.node.hash != y.node.hash || x.node.type != y.node.type { return false }
    let pair = NodePair(a: ObjectIdentifier(x.node), b: ObjectIdentifier(y.node))
    if proven.contains(pair) { return true }
    guard x.kind.sameOperation(as: y.kind) else { return false }
    for (a, b) in zip(x.kind.children, y.kind.children) where !deepEqual(a, b, &proven) { return false }
    proven.insert(pair)
    return true
  }
}

extension Expr.Kind {
  /// The operands, in a fixed order per kind.
  public var children: [Expr] {
    switch self {
    case .literal, .coordinate, .variable, .local: []
    case .load(_, _, let index), .loadOutput(_, let index), .loadScratch(let index): [index]
    case .unary(_, let a), .cast(let a, _), .bitcast(let a, _, _): [a]
    case .binary(_, let a, let b): [a, b]
    case .select(let c, let a, let b): [c, a, b]
    case .reduce(_, _, _, let body): [body]
    }
  }

  /// Whether both are the same operation with the same attributes (operands aside).
  func sameOperation(as other: Expr.Kind) -> Bool {
    switch (self, other) {
    case (.literal(let a), .literal(let b)): a == b
    case (.coordinate(let a), .coordinate(let b)): a == b
    case (.variable(let a), .variable(let b)): a == b
    case (.load(let i, let d, _), .load(let j, let e, _)): i == j && d == e
    case (.unary(let p, _), .unary(let q, _)): p == q
    case (.binary(let p, _, _), .binary(let q, _, _)): p == q
    case (.select, .select): true
    case (.cast(_, let s), .cast(_, let t)): s == t
    case (.bitcast(_, let f, let t), .bitcast(_, let g, let u)): f == g && t == u
    case (.reduce(let p, let v, let e, _), .reduce(let q, let w, let f, _)): p == q && v == w && e == f
    case (.local(let i, let s), .local(let j, let t)): i == j && s == t
    case (.loadOutput(let d, _), .loadOutput(let e, _)): d == e
    case (.loadScratch, .loadScratch): true
    default: false
    }
  }
}
