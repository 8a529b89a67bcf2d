import CCrewShims
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

extension Crew {
    /// A listening socket bound once by a parent and inherited by its children, as gunicorn's arbiter binds its
    /// port and its workers accept on it: workers come and go (a crash, a reload) while the port stays open, and
    /// connections wait in the socket's backlog meanwhile.
    ///
    /// Hand it to children in their arguments, as a queue or a pipe (a ``Crew/Supervisor``'s arguments reach
    /// every worker it starts).
    public final class ListeningSocket: Codable, Sendable {
        /// Where a socket listens.
        public struct Address: Sendable, Hashable, CustomStringConvertible {
            enum Kind: Hashable {
                case inet(host: String, port: Int)
                case unix(path: String)
            }
            let kind: Kind

            /// TCP on `host` (a name, an IPv4 or an IPv6 address) and `port` (0: any free port).
            public static func tcp(host: String, port: Int) -> Address { Address(kind: .inet(host: host, port: port)) }
            /// A Unix domain socket at `path`.
            public static func unix(_ path: String) -> Address { Address(kind: .unix(path: path)) }

            /// Reads gunicorn's `--bind` forms: `HOST:PORT`, `[IPV6]:PORT`, `:PORT` (every address) and
            /// `unix:PATH`.
            ///
            /// - Throws: ``CrewError/Code/invalidArgument`` for anything else, saying what was expected.
            public static func parse(_ text: String) throws -> Address {
                if text.hasPrefix("unix:") {
                    let path = String(text.dropFirst(5))
                    guard !path.isEmpty else {
                        throw CrewError(.invalidArgument, "\"\(text)\": a unix: address needs a path")
                    }
                    return .unix(path)
                }
                guard let colon = text.lastIndex(of: ":") else {
                    throw CrewError(
                        .invalidArgument, "\"\(text)\" is not an address: expected HOST:PORT, [IPV6]:PORT or unix:PATH")
                }
                var host = String(text[..<colon])
                let portText = text[text.index(after: colon)...]
                guard let port = Int(portText), (0...65_535).contains(port) else {
                    throw CrewError(.invalidArgument, "\"\(text)\": the port must be a number from 0 to 65535")
                }
                if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
                if host.isEmpty { host = "0.0.0.0" }
                return .tcp(host: host, port: port)
            }

            /// Whether only this machine can reach it (a loopback address or a Unix socket).
            public var isLocal: Bool {
                switch kind {
                case .unix: true
                case .inet(let host, _): host == "localhost" || host == "::1" || Self.isLoopbackIPv4(host)
                }
            }

            /// An IPv4 address in 127.0.0.0/8, written as one (a name that starts with "127." is not).
            private static func isLoopbackIPv4(_ host: String) -> Bool {
                var address = in_addr()
                guard inet_pton(AF_INET, host, &address) == 1 else { return false }
                return UInt32(bigEndian: address.s_addr) >> 24 == 127
            }

            /// As ``parse(_:)`` reads it.
            public var description: String {
                switch kind {
                case .unix(let path): "unix:\(path)"
                case .inet(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
                }
            }
        }

        private let fdState: Atomic<Int32>
        /// Where the socket listens (for TCP with port 0, the port the system chose).
        public let address: Address

        /// Binds and listens on `address`.
        ///
        /// - Parameters:
        ///   - address: Where to listen.
        ///   - backlog: How many connections wait to be accepted before the system refuses more (gunicorn's
        ///     `--backlog`, 2048; the system caps it at `net.core.somaxconn`).
        ///   - reusePort: Sets `SO_REUSEPORT`, so that other processes can bind the same address (gunicorn's
        ///     `--reuse-port`).
        ///   - unixMode: The permissions of a Unix socket's file: owner-only (0o600) unless given.
        /// - Throws: ``CrewError/Code/systemCallFailed`` if the address cannot be resolved, bound or listened on
        ///   (in use, not permitted), naming the call and the reason.
        public init(_ address: Address, backlog: Int = 2048, reusePort: Bool = false, unixMode: UInt32 = 0o600) throws {
            let fd: Int32
            switch address.kind {
            case .unix(let path):
                fd = try Self.bindUnix(path: path, backlog: backlog, mode: unixMode)
                self.address = address
            case .inet(let host, let port):
                let (bound, actualPort) = try Self.bindInet(
                    host: host, port: port, backlog: backlog, reusePort: reusePort)
                fd = bound
                self.address = .tcp(host: host, port: actualPort)
            }
            fdState = Atomic(fd)
        }

        private init(adopting fd: Int32, address: Address) {
            fdState = Atomic(fd)
            self.address = address
        }

        deinit {
            let fd = fdState.load(ordering: .acquiring)
            if fd >= 0 { Glibc.close(fd) }
        }

        /// The socket's descriptor, for an event loop to accept on (NIO's `ServerBootstrap.bind(_:)`, which then
        /// owns it: call ``release()`` first).
        ///
        /// - Throws: ``CrewError/Code/closed`` once closed or released.
        public func fileDescriptor() throws -> Int32 {
            let fd = fdState.load(ordering: .acquiring)
            guard fd >= 0 else { throw CrewError(.closed, "this listening socket is closed") }
            return fd
        }

        /// Hands the descriptor over to its new owner (which closes it): this object no longer closes it.
        ///
        /// - Throws: ``CrewError/Code/closed`` once closed or released.
        public func release() throws -> Int32 {
            let fd = fdState.exchange(-1, ordering: .acquiringAndReleasing)
            guard fd >= 0 else { throw CrewError(.closed, "this listening socket is closed") }
            return fd
        }

        /// Stops listening (in this process: children that inherited the socket keep their copies).
        public func close() {
            let fd = fdState.exchange(-1, ordering: .acquiringAndReleasing)
            if fd >= 0 { Glibc.close(fd) }
        }

        /// Writes a handle that a child started with these arguments turns back into this socket.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.unkeyedContainer()
            try container.encode(address.description)
            let fd = try fileDescriptor()
            try container.encode(Handle(kind: "ListeningSocket", fd: fd, owner: self))
        }

        /// Takes the listening socket handed to this child by its parent.
        public convenience init(from decoder: any Decoder) throws {
            var container = try decoder.unkeyedContainer()
            let address = try Address.parse(try container.decode(String.self))
            let handle = try container.decode(Handle.self)
            // A copy of its own, closed on exec like every descriptor Crew opens.
            let fd = fcntl(handle.fd, F_DUPFD_CLOEXEC, 0)
            guard fd >= 0 else {
                throw CrewError(
                    .systemCallFailed,
                    "the handed listening socket could not be copied: \(String(cString: strerror(errno)))")
            }
            self.init(adopting: fd, address: address)
        }

        /// The descriptor's place among those handed to a child.
        private struct Handle: Codable {
            let kind: String
            let fd: Int32
            let owner: ListeningSocket?

            init(kind: String, fd: Int32, owner: ListeningSocket) {
                self.kind = kind
                self.fd = fd
                self.owner = owner
            }

            func encode(to encoder: any Encoder) throws {
                guard let owner else { throw CrewError(.closed, "this listening socket is closed") }
                try HandedDescriptors.encode(kind, fd: fd, owner: owner, to: encoder)
            }

            init(from decoder: any Decoder) throws {
                let holder = try HandedDescriptors.decode("ListeningSocket", as: FDHolder.self, from: decoder) {
                    FDHolder(fd: $0)
                }
                kind = "ListeningSocket"
                fd = holder.fd
                owner = nil
            }
        }

        /// The handed descriptor itself, kept open for the life of the child (every decode duplicates it).
        private final class FDHolder {
            let fd: Int32
            init(fd: Int32) { self.fd = fd }
        }

        // MARK: Binding

        private static func bindUnix(path: String, backlog: Int, mode: UInt32) throws -> Int32 {
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8)
            guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
                throw CrewError(.invalidArgument, "the socket path \"\(path)\" is too long (\(bytes.count) bytes)")
            }
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                raw.copyBytes(from: bytes)
                raw[bytes.count] = 0
            }
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw systemCallError("socket") }
            // A socket file left by an earlier run is replaced (as gunicorn does); any other file is not.
            var status = stat()
            if lstat(path, &status) == 0 {
                guard (status.st_mode & S_IFMT) == S_IFSOCK else {
                    Glibc.close(fd)
                    throw CrewError(.invalidArgument, "\"\(path)\" exists and is not a socket")
                }
                unlink(path)
            }
            // Owner-only from the start: the file is made under a umask that lets nobody else in, then given its mode.
            let previous = umask(0o177)
            let rc = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            umask(previous)
            guard rc == 0 else {
                let error = systemCallError("bind \(path)")
                Glibc.close(fd)
                throw error
            }
            chmod(path, mode_t(mode))
            guard listen(fd, Int32(clamping: backlog)) == 0 else {
                let error = systemCallError("listen")
                Glibc.close(fd)
                throw error
            }
            return fd
        }

        private static func bindInet(host: String, port: Int, backlog: Int, reusePort: Bool) throws -> (Int32, Int) {
            var hints = addrinfo()
            hints.ai_family = AF_UNSPEC
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
            var list: UnsafeMutablePointer<addrinfo>?
            let rc = getaddrinfo(host, "\(port)", &hints, &list)
            guard rc == 0, let first = list else {
                throw CrewError(
                    .systemCallFailed, "getaddrinfo \(host): \(String(cString: gai_strerror(rc)))")
            }
            defer { freeaddrinfo(list) }
            var failure: CrewError?
            var entry: UnsafeMutablePointer<addrinfo>? = first
            while let info = entry {
                entry = info.pointee.ai_next
                let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), 0)
                guard fd >= 0 else {
                    failure = systemCallError("socket")
                    continue
                }
                var one: Int32 = 1
                setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
                if reusePort { setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size)) }
                guard bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
                    failure = systemCallError("bind \(host):\(port)")
                    Glibc.close(fd)
                    continue
                }
                guard listen(fd, Int32(clamping: backlog)) == 0 else {
                    failure = systemCallError("listen")
                    Glibc.close(fd)
                    continue
                }
                return (fd, boundPort(fd) ?? port)
            }
            throw failure ?? CrewError(.systemCallFailed, "\(host):\(port) resolved to no address")
        }

        private static func boundPort(_ fd: Int32) -> Int? {
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let rc = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
            guard rc == 0 else { return nil }
            return withUnsafePointer(to: &storage) { pointer -> Int? in
                switch Int32(pointer.pointee.ss_family) {
                case AF_INET:
                    return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                        Int(UInt16(bigEndian: $0.pointee.sin_port))
                    }
                case AF_INET6:
                    return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                        Int(UInt16(bigEndian: $0.pointee.sin6_port))
                    }
                default:
                    return nil
                }
            }
        }
    }
}
