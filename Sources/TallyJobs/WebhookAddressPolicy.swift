import Foundation
import NIOCore

/// Which addresses a webhook may be sent to, checked when an endpoint is saved and again at every
/// delivery attempt (a name may resolve elsewhere later): an organisation's endpoint never reaches
/// private, loopback, link-local, shared, multicast or unspecified addresses (IPv4, IPv6 and
/// IPv4-mapped), unless the operator allows private targets.
public enum WebhookAddressPolicy {
    /// The host's addresses, resolved off the event loops (getaddrinfo blocks); an IP literal is
    /// its own single address.
    public static func resolve(_ host: String) async -> [[UInt8]] {
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        return await Task.detached {
            var hints = addrinfo()
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            var result: UnsafeMutablePointer<addrinfo>?
            guard getaddrinfo(bare, nil, &hints, &result) == 0, let first = result else { return [] }
            defer { freeaddrinfo(first) }
            var addresses: [[UInt8]] = []
            var current: UnsafeMutablePointer<addrinfo>? = first
            while let info = current {
                if info.pointee.ai_family == AF_INET, let address = info.pointee.ai_addr {
                    address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                        addresses.append(withUnsafeBytes(of: $0.pointee.sin_addr) { Array($0) })
                    }
                } else if info.pointee.ai_family == AF_INET6, let address = info.pointee.ai_addr {
                    address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                        addresses.append(withUnsafeBytes(of: $0.pointee.sin6_addr) { Array($0) })
                    }
                }
                current = info.pointee.ai_next
            }
            return addresses
        }.value
    }

    public static func isPrivate(_ address: [UInt8]) -> Bool {
        if address.count == 4 {
            let (a, b) = (address[0], address[1])
            return a == 10 || a == 127 || a == 0 || (a == 172 && (16...31).contains(b)) || (a == 192 && b == 168)
                || (a == 169 && b == 254) || (a == 100 && (64...127).contains(b)) || a >= 224
        }
        guard address.count == 16 else { return true }
        if address.prefix(10).allSatisfy({ $0 == 0 }) && address[10] == 0xFF && address[11] == 0xFF {
            return isPrivate(Array(address.suffix(4)))   // IPv4-mapped
        }
        let loopback = address.prefix(15).allSatisfy { $0 == 0 } && address[15] == 1
        let unspecified = address.allSatisfy { $0 == 0 }
        let multicast = address[0] == 0xFF
        return loopback || unspecified || multicast || (address[0] & 0xFE) == 0xFC || (address[0] == 0xFE && (address[1] & 0xC0) == 0x80)
    }

    public static func isIPLiteral(_ host: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        return inet_pton(AF_INET, bare, &v4) == 1 || inet_pton(AF_INET6, bare, &v6) == 1
    }

    /// The address to connect to, exactly the one that was checked.
    static func socketAddress(_ address: [UInt8], port: Int) throws -> SocketAddress {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let family = address.count == 4 ? AF_INET : AF_INET6
        let converted = address.withUnsafeBytes { bytes in inet_ntop(family, bytes.baseAddress, &text, socklen_t(text.count)) }
        guard converted != nil else { throw SocketAddressError.unsupported }
        return try SocketAddress(ipAddress: String(cString: text), port: port)
    }
}
