import Foundation

/// The SVG chart of `kiln bench --chart`: latency per device (median bar, min–p90 whisker), then
/// per device a stacked strip of every dispatch's share and the top dispatches as bars.
enum BenchChart {
  static let width = 1000.0
  static let labelRight = 236.0
  static let plotLeft = 248.0
  static let plotRight = 640.0
  static let valueLeft = 654.0
  static let palette = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#86bcb6",
    "#8cd17d", "#f1ce63", "#d37295", "#a0cbe8",
  ]
  static let otherColor = "#cfcac6"
  static let font = "DejaVu Sans, Helvetica, Arial, sans-serif"

  static func svg(_ report: BenchReport) -> String {
    var body = ""
    var y = 34.0
    body += text(24, y, "kiln bench: \(report.model)", size: 18, weight: "bold")
    y += 20
    body += text(
      24, y, "\(report.bundle) · \(report.date) · inputs \(report.inputs) · warmup \(report.warmup)", size: 12,
      fill: "#666")

    // Panel 1: latency per device.
    y += 34
    body += text(24, y, "Latency of Session.run per device", size: 15, weight: "bold")
    body += text(
      valueLeft, y, "bar: median · whisker: min to p90", size: 11, fill: "#666")
    y += 14
    let devices = report.devices
    let high = max(devices.map(\.p90Milliseconds).max() ?? 1, 1e-6)
    let low = max(devices.map(\.minMilliseconds).min() ?? 1, 1e-6)
    let scale = Scale(low: low, high: high, logarithmic: high / low > 30)
    let rowHeight = 54.0
    let panelTop = y
    let panelBottom = y + rowHeight * Double(devices.count)
    for tick in scale.ticks {
      let x = scale.x(tick)
      body += line(x, panelTop, x, panelBottom, stroke: "#e6e6e6")
      body += text(x, panelBottom + 14, String(format: "%g", tick), size: 10, fill: "#666", anchor: "middle")
    }
    body += text(
      (plotLeft + plotRight) / 2, panelBottom + 30, scale.logarithmic ? "ms (log scale)" : "ms", size: 11, fill: "#666",
      anchor: "middle")
    for (row, result) in devices.enumerated() {
      let top = panelTop + rowHeight * Double(row)
      let middle = top + rowHeight / 2
      let color = palette[row % palette.count]
      body += text(labelRight, middle - 3, result.device, size: 13, weight: "bold", anchor: "end")
      body += text(labelRight, middle + 12, clip(result.name, 34), size: 10, fill: "#666", anchor: "end")
      let barEnd = scale.x(result.medianMilliseconds)
      body += rect(
        plotLeft, middle - 11, max(barEnd - plotLeft, 1), 22, fill: color,
        title: "\(result.device): median \(formatMilliseconds(result.medianMilliseconds)) ms")
      let (whiskerLow, whiskerHigh) = (scale.x(result.minMilliseconds), scale.x(result.p90Milliseconds))
      body += line(whiskerLow, middle, whiskerHigh, middle, stroke: "#222", width: 1.5)
      body += line(whiskerLow, middle - 6, whiskerLow, middle + 6, stroke: "#222", width: 1.5)
      body += line(whiskerHigh, middle - 6, whiskerHigh, middle + 6, stroke: "#222", width: 1.5)
      body += text(
        valueLeft, middle - 3,
        "\(formatMilliseconds(result.medianMilliseconds)) ms median", size: 12, weight: "bold")
      body += text(
        valueLeft, middle + 11,
        "min \(formatMilliseconds(result.minMilliseconds)) · p90 \(formatMilliseconds(result.p90Milliseconds)) · "
          + "\(result.iterations) runs",
        size: 10, fill: "#555")
      body += text(
        valueLeft, middle + 23,
        "first run \(formatMilliseconds(result.firstRunMilliseconds)) ms · load \(formatMilliseconds(result.loadMilliseconds)) ms",
        size: 10, fill: "#555")
    }
    body += line(plotLeft, panelTop, plotLeft, panelBottom, stroke: "#999")
    y = panelBottom + 40

    // Panel 2: where the time goes, per device.
    let profiled = devices.filter { !$0.dispatches.isEmpty }
    if !profiled.isEmpty {
      y += 20
      body += text(
        24, y, "Where the time goes: top \(BenchReport.topCount) dispatches per device", size: 15, weight: "bold")
      body += text(valueLeft, y, "each dispatch timed alone (serialised)", size: 11, fill: "#666")
      y += 10
    }
    // One colour per kernel (named by its source ops) across devices, so the same work matches.
    var kernelColors: [String: String] = [:]
    for result in profiled {
      for dispatch in result.ranked.prefix(BenchReport.topCount) where kernelColors[dispatch.opsLabel] == nil {
        kernelColors[dispatch.opsLabel] = palette[kernelColors.count % palette.count]
      }
    }
    for result in profiled {
      let total = result.dispatchTotal
      let ranked = result.ranked
      let top = Array(ranked.prefix(BenchReport.topCount))
      y += 26
      let source = result.timingSource == "gpu-timestamps" ? "GPU timestamps" : "wall clock"
      body += text(24, y, "\(result.device)", size: 13, weight: "bold")
      body += text(
        24 + Double(result.device.count) * 8.5 + 8, y,
        "\(clip(result.name, 40)) · \(result.dispatches.count) dispatches · \(formatMilliseconds(total)) ms in all (\(source))",
        size: 11, fill: "#555")
      // The stacked strip: every dispatch in program order, the top ones coloured.
      y += 10
      let stripWidth = width - 24 - plotLeft
      body += text(labelRight, y + 12, "all dispatches, in order", size: 10, fill: "#666", anchor: "end")
      var x = plotLeft
      let topIndices = Set(top.map(\.index))
      for dispatch in result.dispatches {
        let share = total > 0 ? dispatch.milliseconds / total : 0
        let segment = share * stripWidth
        guard segment > 0 else { continue }
        body += rect(
          x, y, segment, 16,
          fill: topIndices.contains(dispatch.index) ? kernelColors[dispatch.opsLabel] ?? otherColor : otherColor,
          stroke: "#fff",
          title:
            "#\(dispatch.index) \(dispatch.opsLabel): \(formatMilliseconds(dispatch.milliseconds)) ms (\(percent(share)))"
        )
        x += segment
      }
      y += 24
      let largest = max(top.first?.milliseconds ?? 1, 1e-9)
      for dispatch in top {
        let middle = y + 10
        let color = kernelColors[dispatch.opsLabel] ?? otherColor
        body += text(
          labelRight, middle + 4, clip("#\(dispatch.index) \(dispatch.opsLabel)", 36), size: 11, anchor: "end")
        let barWidth = max(dispatch.milliseconds / largest * (plotRight - plotLeft), 1)
        body += rect(
          plotLeft, middle - 8, barWidth, 16, fill: color,
          title: "#\(dispatch.index) \(dispatch.entryPoint): \(dispatch.sourceOps.joined(separator: ", "))")
        let share = total > 0 ? dispatch.milliseconds / total : 0
        body += text(
          valueLeft, middle + 4,
          "\(formatMilliseconds(dispatch.milliseconds)) ms · \(percent(share)) · \(clip(dispatch.kernelLabel, 30))",
          size: 11, fill: "#333")
        y += 22
      }
      if ranked.count > top.count {
        let rest = ranked.dropFirst(top.count).reduce(0) { $0 + $1.milliseconds }
        body += rect(plotLeft, y + 2, 12, 12, fill: otherColor)
        body += text(
          plotLeft + 18, y + 12,
          "\(ranked.count - top.count) more dispatches: \(formatMilliseconds(rest)) ms (\(percent(total > 0 ? rest / total : 0)))",
          size: 11, fill: "#555")
        y += 22
      }
    }
    let height = (y + 24).rounded()
    return """
      <?xml version="1.0" encoding="UTF-8"?>
      <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="\(font)">
      <rect x="0" y="0" width="\(Int(width))" height="\(Int(height))" fill="#ffffff"/>
      \(body)</svg>

      """
  }

  /// Maps milliseconds to x, linearly from 0 or logarithmically when the values span decades.
  struct Scale {
    var minimum: Double
    var maximum: Double
    var logarithmic: Bool

    init(low: Double, high: Double, logarithmic: Bool) {
      self.logarithmic = logarithmic
      if logarithmic {
        minimum = pow(10, (log10(low)).rounded(.down))
        maximum = pow(10, (log10(high * 1.05)).rounded(.up))
      } else {
        minimum = 0
        let step = Scale.niceStep(high * 1.1 / 5)
        maximum = (high * 1.1 / step).rounded(.up) * step
      }
    }

    func x(_ value: Double) -> Double {
      let fraction: Double
      if logarithmic {
        fraction = (log10(max(value, minimum)) - log10(minimum)) / (log10(maximum) - log10(minimum))
      } else {
        fraction = maximum > 0 ? value / maximum : 0
      }
      return BenchChart.plotLeft + min(max(fraction, 0), 1) * (BenchChart.plotRight - BenchChart.plotLeft)
    }

    var ticks: [Double] {
      if logarithmic {
        var ticks: [Double] = []
        var tick = minimum
        while tick <= maximum * 1.0001 {
          ticks.append(tick)
          tick *= 10
        }
        return ticks
      }
      let step = Scale.niceStep(maximum / 5)
      return stride(from: 0, through: maximum * 1.0001, by: step).map { $0 }
    }

    /// 1, 2 or 5 times a power of ten, at least `raw`.
    static func niceStep(_ raw: Double) -> Double {
      guard raw > 0 else { return 1 }
      let power = pow(10, log10(raw).rounded(.down))
      for factor in [1.0, 2, 5, 10] where factor * power >= raw { return factor * power }
      return 10 * power
    }
  }

  // MARK: SVG elements

  private static func number(_ value: Double) -> String { String(format: "%.1f", value) }

  private static func text(
    _ x: Double, _ y: Double, _ content: String, size: Double, weight: String = "normal", fill: String = "#111",
    anchor: String = "start"
  ) -> String {
    "<text x=\"\(number(x))\" y=\"\(number(y))\" font-size=\"\(number(size))\" font-weight=\"\(weight)\" fill=\"\(fill)\" text-anchor=\"\(anchor)\">\(escape(content))</text>\n"
  }

  private static func rect(
    _ x: Double, _ y: Double, _ width: Double, _ height: Double, fill: String, stroke: String? = nil,
    title: String? = nil
  ) -> String {
    let strokeAttribute = stroke.map { " stroke=\"\($0)\" stroke-width=\"0.5\"" } ?? ""
    let open =
      "<rect x=\"\(number(x))\" y=\"\(number(y))\" width=\"\(number(width))\" height=\"\(number(height))\" fill=\"\(fill)\"\(strokeAttribute)"
    guard let title else { return open + "/>\n" }
    return open + "><title>\(escape(title))</title></rect>\n"
  }

  private static func line(_ x1: Double, _ y1: Double, _ x2: Double, _ y2: Double, stroke: String, width: Double = 1)
    -> String
  {
    "<line x1=\"\(number(x1))\" y1=\"\(number(y1))\" x2=\"\(number(x2))\" y2=\"\(number(y2))\" stroke=\"\(stroke)\" stroke-width=\"\(number(width))\"/>\n"
  }

  static func escape(_ text: String) -> String {
    var out = ""
    for character in text {
      switch character {
      case "&": out += "&amp;"
      case "<": out += "&lt;"
      case ">": out += "&gt;"
      case "\"": out += "&quot;"
      case "'": out += "&apos;"
      default: out.append(character)
      }
    }
    return out
  }

  private static func clip(_ text: String, _ limit: Int) -> String {
    text.count <= limit ? text : String(text.prefix(limit - 1)) + "…"
  }

  private static func percent(_ fraction: Double) -> String { String(format: "%.1f%%", fraction * 100) }
}
