import NIOCore
import NIOPosix

/// Clients that open connections and never speak, or speak only the start of a handshake: what
/// a node must survive with a small open-file limit.
package final class Flood: Sendable {
    private let channels: [any Channel]

    private init(_ channels: [any Channel]) {
        self.channels = channels
    }

    /// Opens `count` connections to 127.0.0.1:`port`, from the `sources` addresses in turn (any
    /// of 127.0.0.0/8 on Linux), each sending `greeting` (perhaps nothing) and then nothing more.
    /// A connection the server refuses at once is still counted as opened.
    package static func open(count: Int, port: Int, sources: [String], greeting: [UInt8]) async throws -> Flood {
        var channels: [any Channel] = []
        channels.reserveCapacity(count)
        for index in 0..<count {
            let source = sources[index % sources.count]
            guard
                let channel = try? await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .connectTimeout(.seconds(10))
                    .bind(to: try SocketAddress(ipAddress: source, port: 0))
                    .connect(host: "127.0.0.1", port: port).get()
            else { continue }
            if !greeting.isEmpty { try? await channel.writeAndFlush(ByteBuffer(bytes: greeting)) }
            channels.append(channel)
        }
        return Flood(channels)
    }

    /// How many connections were opened.
    package var count: Int { channels.count }

    /// How many of them the server has not closed.
    package var stillOpen: Int { channels.filter(\.isActive).count }

    package func close() async {
        for channel in channels { try? await channel.close() }
    }

    /// The start of a TLS 1.2 ClientHello record (header and a few bytes of the hello, far short
    /// of its stated length): a handshake that never finishes.
    package static let halfClientHello: [UInt8] = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x03, 0x03]

    /// The first half of the HTTP/2 client preface.
    package static let halfPreface: [UInt8] = Array("PRI * HTTP/2.0\r\n".utf8)
}
