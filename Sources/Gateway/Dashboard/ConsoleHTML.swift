import Core
import Foundation

/// Building the console's pages: escaping, tables, figures and SVG charts, with no script or
/// style from outside the binary (the pages' CSS and JS are `ConsoleAssets`).
package enum ConsoleHTML {
    /// `text` safe inside an element or a quoted attribute.
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }

    /// `text` as a URL query value.
    static func query(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
    }

    /// A count with thousands separators (`12,345`).
    package static func number(_ value: Int64) -> String {
        let digits = String(value.magnitude)
        var grouped = ""
        for (index, digit) in digits.enumerated() {
            if index > 0, (digits.count - index) % 3 == 0 { grouped.append(",") }
            grouped.append(digit)
        }
        return (value < 0 ? "-" : "") + grouped
    }

    /// Minor units as an amount of `currency` (`CNY 1,800.00`).
    static func money(_ minor: Int64, _ currency: Currency) -> String {
        let per = currency.minorPerMajor
        let major = number(minor / per)
        guard currency.minorUnitDigits > 0 else { return "\(currency.code) \(major)" }
        let fraction = String(minor.magnitude % UInt64(per))
        let padded = String(repeating: "0", count: currency.minorUnitDigits - fraction.count) + fraction
        return "\(currency.code) \(minor < 0 && minor / per == 0 ? "-" : "")\(major).\(padded)"
    }

    /// An instant in the program's time zone to the second (`2026-11-24 12:00:00`), or "never"
    /// for 0.
    static func time(_ milliseconds: Int64, _ zone: ProgramTimeZone?) -> String {
        guard milliseconds > 0 else { return "never" }
        guard let zone else { return String(milliseconds) }
        let text = zone.localText(Timestamp(milliseconds: milliseconds))
        return String(text.prefix(19)).replacingOccurrences(of: "T", with: " ")
    }

    /// A duration in words (`40 min`, `3 h 5 min`, `12 s`).
    static func duration(milliseconds: Int64) -> String {
        let seconds = max(0, milliseconds) / 1_000
        if seconds < 60 { return "\(seconds) s" }
        let minutes = seconds / 60
        if minutes < 60 { return "\(minutes) min" }
        return minutes % 60 == 0 ? "\(minutes / 60) h" : "\(minutes / 60) h \(minutes % 60) min"
    }

    /// A table with a header row; cells are HTML already. `rowClass` marks rows (for example
    /// `alert`).
    static func table(
        id: String, headers: [String], rows: [[String]], rowClasses: [String?] = [], empty: String = "Nothing yet."
    ) -> String {
        guard !rows.isEmpty else { return "<p class=\"empty\" id=\"\(id)-empty\">\(escape(empty))</p>" }
        var html = "<table id=\"\(id)\"><thead><tr>"
        html += headers.map { "<th>\(escape($0))</th>" }.joined()
        html += "</tr></thead><tbody>"
        for (index, row) in rows.enumerated() {
            let rowClass = index < rowClasses.count ? rowClasses[index] : nil
            html += rowClass.map { "<tr class=\"\(escape($0))\">" } ?? "<tr>"
            html += row.map { "<td>\($0)</td>" }.joined()
            html += "</tr>"
        }
        return html + "</tbody></table>"
    }

    /// Labelled figures (`dl`), each with an id for tests and scripts.
    static func figures(_ items: [(id: String, label: String, value: String)]) -> String {
        "<dl class=\"figures\">"
            + items.map {
                "<div><dt>\(escape($0.label))</dt><dd id=\"\(escape($0.id))\">\(escape($0.value))</dd></div>"
            }.joined() + "</dl>"
    }

    /// A line chart of `series` over `labels` (one point per label in each series), as SVG with a
    /// legend; the y axis starts at zero and is scaled to the largest value.
    static func lineChart(
        id: String, title: String, labels: [String], series: [(name: String, cssClass: String, values: [Int64])]
    ) -> String {
        let (width, height, left, bottom, top) = (720.0, 240.0, 56.0, 24.0, 12.0)
        let maximum = max(1, series.flatMap(\.values).max() ?? 1)
        let step = labels.count > 1 ? (width - left - 8) / Double(labels.count - 1) : 0
        func y(_ value: Int64) -> Double { top + (height - top - bottom) * (1 - Double(value) / Double(maximum)) }
        var svg =
            "<figure class=\"chart\"><figcaption>\(escape(title))</figcaption>"
            + "<svg id=\"\(id)\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\" aria-label=\"\(escape(title))\">"
        svg +=
            "<line class=\"axis\" x1=\"\(left)\" y1=\"\(height - bottom)\" x2=\"\(width - 8)\" y2=\"\(height - bottom)\"/>"
        svg += "<line class=\"axis\" x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(height - bottom)\"/>"
        svg += "<text class=\"tick\" x=\"\(left - 6)\" y=\"\(top + 4)\" text-anchor=\"end\">\(number(maximum))</text>"
        svg += "<text class=\"tick\" x=\"\(left - 6)\" y=\"\(height - bottom)\" text-anchor=\"end\">0</text>"
        for (index, label) in labels.enumerated() where index % 3 == 0 {
            svg +=
                "<text class=\"tick\" x=\"\(left + step * Double(index))\" y=\"\(height - 6)\" text-anchor=\"middle\">\(escape(label))</text>"
        }
        for line in series {
            let points = line.values.enumerated().map { index, value in
                String(format: "%.1f,%.1f", left + step * Double(index), y(value))
            }
            svg +=
                "<polyline class=\"series \(escape(line.cssClass))\" data-series=\"\(escape(line.name))\" points=\"\(points.joined(separator: " "))\"/>"
        }
        svg += "</svg><p class=\"legend\">"
        svg += series.map { "<span class=\"key \(escape($0.cssClass))\">\(escape($0.name))</span>" }.joined(
            separator: " ")
        return svg + "</p></figure>"
    }

    /// A horizontal bar for a share (`part` of `whole`), red past `alertAt` (a fraction).
    static func bar(part: Int64, whole: Int64, alertAt: Double = 0.8) -> String {
        let share = whole > 0 ? min(1, Double(max(0, part)) / Double(whole)) : 0
        let width = Int((share * 100).rounded())
        return
            "<svg class=\"bar\(share >= alertAt ? " alert" : "")\" viewBox=\"0 0 100 8\" preserveAspectRatio=\"none\">"
            + "<rect class=\"track\" x=\"0\" y=\"0\" width=\"100\" height=\"8\"/>"
            + "<rect class=\"fill\" x=\"0\" y=\"0\" width=\"\(width)\" height=\"8\"/></svg> \(width) %"
    }
}
