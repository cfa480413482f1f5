import Core

/// The stored text form of a member's last earn per format, `mall=1795000000000;hotel=1795000001000`
/// (formats sorted), used by the edge replica and the gateway alike.
package enum LastEarnEncoding {
    package static func encode(_ values: [Format: Timestamp]) -> String {
        values.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.milliseconds)" }.joined(separator: ";")
    }

    /// Pairs that do not parse are skipped.
    package static func decode(_ text: String) -> [Format: Timestamp] {
        guard !text.isEmpty else { return [:] }
        var result: [Format: Timestamp] = [:]
        for pair in text.utf8.split(separator: UInt8(ascii: ";")) {
            guard let equals = pair.firstIndex(of: UInt8(ascii: "=")),
                let format = Format(String(decoding: pair[pair.startIndex..<equals], as: UTF8.self)),
                let ms = Int64(String(decoding: pair[pair.index(after: equals)...], as: UTF8.self))
            else { continue }
            result[format] = Timestamp(milliseconds: ms)
        }
        return result
    }
}
