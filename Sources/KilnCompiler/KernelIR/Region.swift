import KilnIR

/// What a dispatch region computes, as `form-dispatch-regions` states it from the lowerings it
/// fused (never recovered from the kernel's expression afterwards).
public enum RegionKind: String, Hashable, Sendable, CaseIterable {
  /// No reduction: elementwise ops, with movement ops fused into load indices.
  case elementwise
  /// A reduction the other kinds do not describe (ReduceX, ArgMax, CumSum, LRN, signal ops).
  case reduction
  /// One or more sums of products (`Contraction`): MatMul, Gemm, Conv, ConvTranspose, Einsum.
  case contraction
  /// A window over the trailing spatial axes: pools (a `Contraction` of one factor for the
  /// averaging ones, a `WindowMaximum` for the maximum ones).
  case window
  /// Outputs placed by index data (ScatterElements, ScatterND, MaxUnpool, n-gram counts).
  case gatherScatter
  /// An algorithm of its own (`KernelProgram`): selection, prefix sums, data-dependent outputs.
  case custom
}

/// A sum of products a lowering states: over `loops` (outermost first), the product of
/// `factors`, masked to zero where any of `conditions` is false. `reduction` is the outermost
/// `.reduce` of the nest, as the kernel body holds it (the epilogue is the body around it).
public struct Contraction: Hashable, Sendable {
  public var reduction: Expr
  public var loops: [Loop]
  public var factors: [Expr]
  public var conditions: [Expr]

  public init(reduction: Expr, loops: [Loop], factors: [Expr], conditions: [Expr]) {
    self.reduction = reduction
    self.loops = loops
    self.factors = factors
    self.conditions = conditions
  }

  public struct Loop: Hashable, Sendable {
    public var variable: Int
    public var extent: Int
    public init(variable: Int, extent: Int) {
      self.variable = variable
      self.extent = extent
    }
  }

  /// The nest `reduce(sum over loops, select(all(conditions), prod(factors), 0))` of `type`, and
  /// its statement. Without loops the value is the masked product itself and no contraction is
  /// stated (nil).
  public static func sum(
    over loops: [Loop], factors: [Expr], conditions: [Expr] = [], type: ValueType
  ) -> (value: Expr, contraction: Contraction?) {
    precondition(!factors.isEmpty, "a contraction needs a factor")
    let product = factors.dropFirst().reduce(factors[0]) { .binary(.multiply, $0, $1) }
    let live = conditions.filter { $0.boolConstant != true }
    let masked = live.isEmpty ? product : Expr.choose(Expr.all(live), product, .constant(0, type))
    guard !loops.isEmpty else { return (masked, nil) }
    let value = Expr.reduce(.sum, over: loops.map { (variable: $0.variable, extent: $0.extent) }, body: masked)
    return (value, Contraction(reduction: value, loops: loops, factors: factors, conditions: live))
  }
}

/// A maximum over a window a pooling lowering states: over `loops`, `element` where all
/// `conditions` hold (padding never wins: it reads as the lowest value).
public struct WindowMaximum: Hashable, Sendable {
  public var reduction: Expr
  public var loops: [Contraction.Loop]
  public var element: Expr
  public var conditions: [Expr]

  public init(reduction: Expr, loops: [Contraction.Loop], element: Expr, conditions: [Expr]) {
    self.reduction = reduction
    self.loops = loops
    self.element = element
    self.conditions = conditions
  }
}

/// A kernel's region: its kind and the structure its lowerings stated.
public struct Region: Hashable, Sendable {
  public var kind: RegionKind
  public var contractions: [Contraction]
  public var maxima: [WindowMaximum]
  /// A custom region's program (which computes the output; the kernel's body is unused).
  public var program: KernelProgram?

  public init(kind: RegionKind, contractions: [Contraction] = [], maxima: [WindowMaximum] = [], program: KernelProgram? = nil) {
    self.kind = kind
    self.contractions = contractions
    self.maxima = maxima
    self.program = program
  }

  /// A contraction region stating `contractions` (the nil ones, sums without loops, state nothing).
  public static func contraction(_ contractions: Contraction?...) -> Region {
    Region(kind: .contraction, contractions: contractions.compactMap { $0 })
  }

  /// Every value the region names, in a fixed order (for rewriting them with the body).
  var values: [Expr] {
    contractions.flatMap { [$0.reduction] + $0.factors + $0.conditions } + maxima.flatMap { [$0.reduction, $0.element] + $0.conditions }
  }

  /// The region with its values replaced, in `values`' order.
  func replacingValues(_ new: [Expr]) -> Region {
    var next = new.makeIterator()
    var result = self
    for i in result.contractions.indices {
      result.contractions[i].reduction = next.next()!
      result.contractions[i].factors = result.contractions[i].factors.map { _ in next.next()! }
      result.contractions[i].conditions = result.contractions[i].conditions.map { _ in next.next()! }
    }
    for i in result.maxima.indices {
      result.maxima[i].reduction = next.next()!
      result.maxima[i].element = next.next()!
      result.maxima[i].conditions = result.maxima[i].conditions.map { _ in next.next()! }
    }
    return result
  }
}
