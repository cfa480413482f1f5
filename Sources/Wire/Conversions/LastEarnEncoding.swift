import Core

/// The stored text form of a member's last earn per format, `mall=1795000000000;hotel=1795000001000`
/// (formats sorted), used by the edge replica and the gateway alike.
package enum LastEarnEncoding {
    package static func encode(_ values: [Format: Timestamp]) -> String {
        values.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.milliseconds)" }.joined(separator: ";")
    }

    /// Pairs that do not parse are skipped.
    package static func decode(_ text: String) -> [Format: Timestamp] {
        var result: [Format: Timestamp] = [:]
        for pair in text.split(separator: ";") {
            let parts = pair.split(separator: "=")
            guard parts.count == 2, let format = Format(String(parts[0])), let ms = Int64(parts[1]) else { continue }
            result[format] = Timestamp(milliseconds: ms)
        }
        return result
    }
}
