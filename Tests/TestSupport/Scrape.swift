import Foundation

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// A plain HTTP GET with Foundation's URL loading system (a real HTTP client, as a Prometheus
/// server or a browser would be), answered with its status, headers and body.
package struct HTTPResult: Sendable {
    package var status: Int
    package var headers: [String: String]
    package var body: String

    /// GETs `url`; throws only when no answer came (a refused connection, a timeout).
    package static func get(_ url: String, headers: [String: String] = [:]) async throws -> HTTPResult {
        var request = URLRequest(url: URL(string: url)!)
        request.timeoutInterval = 30
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpShouldSetCookies = false
        let session = URLSession(configuration: configuration)
        defer { session.finishTasksAndInvalidate() }
        let (data, response) = try await session.data(for: request)
        let http = response as? HTTPURLResponse
        var fields: [String: String] = [:]
        for (name, value) in http?.allHeaderFields ?? [:] {
            fields["\(name)".lowercased()] = "\(value)"
        }
        return HTTPResult(
            status: http?.statusCode ?? 0, headers: fields, body: String(decoding: data, as: UTF8.self))
    }
}

/// Prometheus' text exposition format, read back: each sample by name and labels.
package struct PrometheusSamples: Sendable {
    private var samples: [String: Double] = [:]
    /// The `# TYPE` of each metric family.
    package private(set) var types: [String: String] = [:]

    /// Parses `text`; a malformed sample line is a failure of the exporter, thrown as such.
    package init(_ text: String) throws {
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                if parts.count == 4 { types[String(parts[2])] = String(parts[3]) }
                continue
            }
            if line.hasPrefix("#") { continue }
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
                throw ScrapeError("not a sample: \(line)")
            }
            let series = line[..<space]
            var name = String(series)
            var labels: [String: String] = [:]
            if let brace = series.firstIndex(of: "{") {
                name = String(series[..<brace])
                let inner = series[series.index(after: brace)..<series.index(before: series.endIndex)]
                for pair in inner.split(separator: ",") {
                    let kv = pair.split(separator: "=", maxSplits: 1)
                    guard kv.count == 2 else { throw ScrapeError("bad label in: \(line)") }
                    labels[String(kv[0])] = String(kv[1]).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
                }
            }
            samples[Self.key(name, labels)] = value
        }
    }

    /// The sample `name` with exactly `labels`, or nil.
    package func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        samples[Self.key(name, labels)]
    }

    /// Every sample of `name`, with its labels.
    package func all(_ name: String) -> [(labels: [String: String], value: Double)] {
        samples.compactMap { key, value in
            guard key.hasPrefix(name + "{") || key == name else { return nil }
            return (Self.labels(of: key), value)
        }
    }

    private static func key(_ name: String, _ labels: [String: String]) -> String {
        labels.isEmpty
            ? name
            : name + "{" + labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
                + "}"
    }

    private static func labels(of key: String) -> [String: String] {
        guard let brace = key.firstIndex(of: "{") else { return [:] }
        var labels: [String: String] = [:]
        for pair in key[key.index(after: brace)..<key.index(before: key.endIndex)].split(separator: ",") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            if kv.count == 2 { labels[String(kv[0])] = String(kv[1]) }
        }
        return labels
    }
}

package struct ScrapeError: Error, CustomStringConvertible {
    package var description: String
    init(_ description: String) { self.description = description }
}
