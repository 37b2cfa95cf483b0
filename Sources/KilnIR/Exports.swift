// The element types (DType, float conversions, sub-byte packing) live in KilnTensor, which the
// runtime shares without the graph IR; every KilnIR client sees them as KilnIR's own.
@_exported import KilnTensor
