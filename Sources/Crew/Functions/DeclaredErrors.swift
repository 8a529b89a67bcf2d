import Synchronization

/// The error types that functions declare they throw (``Crew/Function/throwing(_:)``), by their type's name. An
/// error of such a type crosses a process boundary as itself, encoded with its `Codable` conformance, and the
/// caller can catch it by its type; any other error arrives as a ``CrewError`` whose code is `remoteError`. Only
/// these types are decoded from a child's answer: the name picks a type this program declared, never code.
package enum DeclaredErrors {
    /// How one declared type is recognized, encoded and decoded.
    package struct Codec: Sendable {
        /// The type's name, as `String(reflecting:)` spells it.
        package let name: String
        /// The error as this type, if it is one.
        package let cast: @Sendable (any Error) -> (any Error & Sendable)?
        /// The error's encoding (Crew's binary format), if it is of this type and encodes.
        package let encode: @Sendable (any Error) throws -> [UInt8]?
        /// An error of this type from its encoding.
        package let decode: @Sendable ([UInt8]) throws -> any Error & Sendable
    }

    private static let codecs = Mutex<[String: Codec]>([:])

    /// Declares `type`: from now on its errors cross process boundaries as themselves.
    package static func declare<E: Error & Codable & Sendable>(_ type: E.Type) {
        let name = String(reflecting: type)
        let codec = Codec(
            name: name,
            cast: { $0 as? E },
            encode: { error in
                guard let error = error as? E else { return nil }
                var bytes: [UInt8] = []
                try BinaryEncoder.encode(error, appendingTo: &bytes)
                return bytes
            },
            decode: { bytes in try BinaryDecoder().decode(E.self, from: bytes) }
        )
        codecs.withLock { $0[name] = codec }
    }

    /// The codec of the type named `name`, if a function declared it.
    package static func codec(named name: String) -> Codec? {
        codecs.withLock { $0[name] }
    }

    /// The codec of `error`'s type, if a function declared it.
    package static func codec(for error: any Error) -> Codec? {
        codec(named: String(reflecting: type(of: error)))
    }
}

extension Crew.Function {
    /// Declares the error types the body throws that its callers may catch by type, as Python's `except Oops:`
    /// catches an exception a child raised: an error of one of these types crosses the process boundary encoded
    /// (each must be `Codable`), and a pool call, an ``AsyncResult``, a ``Crew/Process``'s value or a task queue
    /// job's result rethrows it as itself. Other errors arrive as a ``CrewError`` with the code `remoteError`, which
    /// names their type and describes them.
    ///
    /// ```swift
    /// struct Oops: Error, Codable { var n: Int }
    /// static let risky = Crew.Function("risky") { (n: Int) throws -> Int in
    ///     if n == 7 { throw Oops(n: n) }
    ///     return n
    /// }.throwing(Oops.self)
    ///
    /// do { _ = try await pool.apply(Work.risky, 7) } catch let oops as Oops { print(oops.n) }  // 7
    /// ```
    public func throwing(_ types: any (Error & Codable & Sendable).Type...) -> Self {
        for type in types { DeclaredErrors.declare(type) }
        return self
    }
}
