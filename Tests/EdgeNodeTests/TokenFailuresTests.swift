// Goal (issue #12, item 9): wrong terminal tokens are counted per peer address; a peer that keeps
// failing gets its failing calls answered later and later (up to a cap), and is logged at a bounded
// rate; the right token and other peers are not slowed. The arithmetic here, with explicit
// instants; the real process in `ProcessTests`.
import EdgeNode
import Testing

@Suite("Wrong terminal tokens")
struct TokenFailuresTests {
    @Test("delays double after the allowed failures, up to the cap; other peers are not slowed")
    func delays() {
        var settings = TokenFailures.Settings()
        settings.failuresBeforeDelay = 3
        settings.delayMaxMilliseconds = 1_000
        var failures = TokenFailures(settings: settings)
        let delays = (0..<9).map { failures.failed(peer: "ipv4:10.0.0.7", now: 1_000 + Int64($0)).delayMilliseconds }
        #expect(delays == [0, 0, 0, 100, 200, 400, 800, 1_000, 1_000])
        #expect(failures.failed(peer: "ipv4:10.0.0.8", now: 1_010).delayMilliseconds == 0)
        // A very long run never overflows the doubling.
        for index in 0..<200 { _ = failures.failed(peer: "ipv4:10.0.0.7", now: 1_100 + Int64(index)) }
        #expect(failures.failed(peer: "ipv4:10.0.0.7", now: 1_400).delayMilliseconds == 1_000)
        // Past the window the count starts again.
        #expect(failures.failed(peer: "ipv4:10.0.0.7", now: 1_400 + 60_001).delayMilliseconds == 0)
    }

    @Test("a peer is warned about at most once per 10 s, with its count")
    func logRate() {
        var failures = TokenFailures(settings: TokenFailures.Settings())
        let logged = (0..<30).compactMap { failures.failed(peer: "ipv4:10.0.0.7", now: Int64($0) * 1_000).logFailures }
        #expect(logged == [1, 11, 21])
        #expect(failures.failed(peer: "ipv6:[::1]", now: 5_000).logFailures == 1)
    }

    @Test("the address of a peer, without its port")
    func addresses() {
        #expect(TokenFailures.address(ofPeer: "ipv4:10.0.0.7:51234") == "ipv4:10.0.0.7")
        #expect(TokenFailures.address(ofPeer: "ipv6:[::1]:51234") == "ipv6:[::1]")
        #expect(TokenFailures.address(ofPeer: "unix:/tmp/socket") == "unix:/tmp/socket")
        #expect(TokenFailures.address(ofPeer: "ipv4:") == "ipv4:")
    }
}
