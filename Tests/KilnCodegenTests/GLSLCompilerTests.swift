import KilnSPIRV
import Testing

@testable import KilnCodegen

/// What each SPIR-V optimisation level leaves in a module: bundles carry `.size` modules by default.
struct GLSLCompilerTests {
  static let shader = """
    #version 450
    #extension GL_EXT_control_flow_attributes : require
    layout(local_size_x = 64) in;
    layout(std430, set = 0, binding = 0) readonly buffer In { float x[]; } source;
    layout(std430, set = 0, binding = 1) writeonly buffer Out { float y[]; } result;
    float swish(float value) { float gate = 1.0 / (1.0 + exp(-value)); return value * gate; }
    void main() {
      uint index = gl_GlobalInvocationID.x;
      if (index >= 1000u) return;
      float total = 0.0;
      [[unroll]] for (int k = 0; k < 4; ++k) { total += swish(source.x[index] * float(k)); }
      result.y[index] = total;
    }
    """

  @Test func theDefaultStripsNamesAndShrinksTheModule() throws {
    let plain = try GLSLCompiler(optimization: .none).compile(Self.shader)
    let small = try GLSLCompiler().compile(Self.shader)
    let fast = try GLSLCompiler(optimization: .performance).compile(Self.shader)
    #expect(GLSLCompiler().optimization == .size)
    let plainText = try SPIRVTools.disassemble(plain)
    let smallText = try SPIRVTools.disassemble(small)
    let fastText = try SPIRVTools.disassemble(fast)
    #expect(plainText.contains("OpName"))
    #expect(!smallText.contains("OpName") && !smallText.contains("OpSource"))
    #expect(small.count * 4 < plain.count * 3, "\(small.count) words against \(plain.count)")
    // Only the performance list inlines: the helper function survives `.size`.
    #expect(smallText.contains("OpFunctionCall"))
    #expect(!fastText.contains("OpFunctionCall"))
    for module in [plain, small, fast] { try SPIRVTools.validate(module) }
  }

  @Test func theLevelIsPartOfTheCacheIdentity() {
    let identities = Set(
      [GLSLCompiler.Optimization.none, .size, .performance].map { GLSLCompiler(optimization: $0).identity })
    #expect(identities.count == 3)
  }
}
