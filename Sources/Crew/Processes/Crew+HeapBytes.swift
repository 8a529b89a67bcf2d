import CCrewShims

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

extension Crew {
    /// Bytes of heap in use in this process (glibc's `mallinfo2`), for the benchmark's memory figures.
    @_spi(Internals)
    public static func heapBytesInUse() -> Int {
        Int(crew_heap_in_use())
    }
}
