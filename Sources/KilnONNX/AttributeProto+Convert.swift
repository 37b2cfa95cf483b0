import Foundation
import KilnIR

extension TensorDecoder {
  /// Converts an ONNX attribute. Graph, sparse-tensor and type-proto attributes, tensor lists and
  /// function attribute references are rejected as unsupported.
  mutating func attribute(_ proto: Onnx_AttributeProto) throws -> AttributeValue {
    let name = proto.name
    guard proto.refAttrName.isEmpty else {
      throw ONNXImportError.unsupported("attribute '\(name)' refers to a function attribute, which is not supported")
    }
    var kind = proto.type
    if kind == .undefined {
      // IR version < 3 models leave the type out; take it from the field that is set.
      if proto.hasF {
        kind = .float
      } else if proto.hasI {
        kind = .int
      } else if proto.hasS {
        kind = .string
      } else if proto.hasT {
        kind = .tensor
      } else if proto.hasG {
        kind = .graph
      } else if !proto.floats.isEmpty {
        kind = .floats
      } else if !proto.ints.isEmpty {
        kind = .ints
      } else if !proto.strings.isEmpty {
        kind = .strings
      } else {
        throw ONNXImportError.attribute("attribute '\(name)' has no type and no value")
      }
    }
    switch kind {
    case .float: return .float(proto.f)
    case .int: return .int(proto.i)
    case .string: return .string(String(decoding: proto.s, as: UTF8.self))
    case .floats: return .floats(proto.floats)
    case .ints: return .ints(proto.ints)
    case .strings: return .strings(proto.strings.map { String(decoding: $0, as: UTF8.self) })
    case .tensor: return .tensor(try decode(proto.t, what: "attribute '\(name)'"))
    case .graph, .graphs:
      throw ONNXImportError.unsupported("attribute '\(name)' holds a subgraph, which is not supported")
    default:
      throw ONNXImportError.unsupported("attribute '\(name)' has kind \(kind), which is not supported")
    }
  }
}
