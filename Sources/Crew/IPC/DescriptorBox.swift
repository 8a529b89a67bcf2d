import CCrewShims
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A handed descriptor owned by the process's table of handed objects.
final class DescriptorBox: Sendable {
    let fd: Int32

    init(fd: Int32) {
        self.fd = fd
    }
}
