import ArgumentParser
import Core
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import NodeSupport
import SwiftProtobuf
import Wire

/// The admin config file.
struct AdminSettings {
    var host: String
    var port: Int
    var ca: String
    var certificate: String
    var privateKey: String

    static func load(_ path: String) throws -> AdminSettings {
        let url = URL(fileURLWithPath: path)
        let document: DocumentNode
        do {
            document = try ProgramDocumentParser.parse(Array(try ReadableFile.contents(of: path)))
        } catch let failure as ReadableFile.Failure {
            throw CommandFailure("\(failure)")
        } catch {
            throw CommandFailure("cannot read \(path): \(error)")
        }
        let base = url.deletingLastPathComponent()
        func resolve(_ value: String) -> String {
            value.hasPrefix("/") ? value : base.appendingPathComponent(value).path
        }
        let diagnostics = DocumentDiagnostics()
        guard let root = MapReader(document, at: .root, diagnostics: diagnostics) else {
            throw CommandFailure("\(path): expected a mapping")
        }
        let gateway = root.string("gateway", required: false, lengthMax: 300)
        let portFile = root.string("gateway_port_file", required: false, lengthMax: 4096)
        let ca = root.string("ca_certificate", lengthMax: 4096)
        let certificate = root.string("certificate", lengthMax: 4096)
        let key = root.string("private_key", lengthMax: 4096)
        root.finish()
        guard diagnostics.errors.isEmpty, let ca, let certificate, let key else {
            throw CommandFailure("\(path): " + diagnostics.errors.map(\.description).joined(separator: "; "))
        }
        var host = "127.0.0.1"
        var port = 0
        if let gateway {
            do { (host, port) = try Address.parse(gateway, key: "gateway") } catch {
                throw CommandFailure("\(path): \(error)")
            }
        } else if let portFile {
            guard let text = try? String(contentsOfFile: resolve(portFile), encoding: .utf8),
                let value = Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
            else {
                throw CommandFailure("\(path): cannot read a port from \(resolve(portFile)) (is the gateway running?)")
            }
            port = value
        } else {
            throw CommandFailure("\(path): set gateway (host:port) or gateway_port_file")
        }
        return AdminSettings(
            host: host, port: port, ca: resolve(ca), certificate: resolve(certificate), privateKey: resolve(key))
    }
}

/// Plain text tables for readable output.
enum Table {
    static func render(_ header: [String], _ rows: [[String]]) -> String {
        let all = [header] + rows
        let widths = header.indices.map { column in
            all.map { $0.indices.contains(column) ? $0[column].count : 0 }.max() ?? 0
        }
        return all.map { row in
            row.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }
                .joined(separator: "  ")
                .trimmingCharacters(in: .whitespaces)
        }.joined(separator: "\n")
    }
}
