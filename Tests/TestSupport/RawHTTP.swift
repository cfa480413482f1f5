import Foundation
import NIOCore
import NIOPosix

/// HTTP/1.1 spoken by hand over a TCP connection (one request, `Connection: close`): for the
/// cases a browser or URLSession would not send (forged cookies, missing tokens, huge heads) and
/// to see redirects and cookies exactly as the server wrote them.
package enum RawHTTP {
    package struct Answer: Sendable {
        package var status: Int
        /// Header names in lower case; a repeated header keeps its last value.
        package var headers: [String: String]
        package var body: String
    }

    /// Sends `method path` with `headers` and `body` to 127.0.0.1:`port` and reads the answer
    /// until the server closes the connection (at most `bytesMax`).
    package static func send(
        _ method: String, _ path: String, port: Int, headers: [String: String] = [:], body: String = "",
        bytesMax: Int = 8_000_000
    ) async throws -> Answer {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if !body.isEmpty || method == "POST" { head += "Content-Length: \(body.utf8.count)\r\n" }
        let request = head + "\r\n" + body
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        var received = ByteBuffer()
        try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: request))
            for try await var chunk in inbound {
                received.writeBuffer(&chunk)
                if received.readableBytes > bytesMax { break }
            }
        }
        return try parse(String(buffer: received))
    }

    static func parse(_ text: String) throws -> Answer {
        guard let split = text.range(of: "\r\n\r\n") else { throw ScrapeError("no HTTP head in: \(text.prefix(200))") }
        let lines = text[..<split.lowerBound].components(separatedBy: "\r\n")
        let statusParts = lines.first?.split(separator: " ") ?? []
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else {
            throw ScrapeError("no status line in: \(text.prefix(200))")
        }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(
                in: .whitespaces)
        }
        return Answer(status: status, headers: headers, body: String(text[split.upperBound...]))
    }
}
