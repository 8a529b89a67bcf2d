import CCrewShims

/// Memory a supervised worker shares with its supervisor: the worker says there that it is ready, and counts its
/// heartbeats; the supervisor reads both on its ticks (as gunicorn's arbiter looks at its workers' temporary files)
/// and writes how often the worker should beat.
final class SupervisorPage: Codable, @unchecked Sendable {
    // @unchecked Sendable: every word is read and written with atomic loads and stores.
    static let size = 4096
    let region: SharedRegion

    private init(region: SharedRegion) {
        self.region = region
    }

    /// A new page for a worker that should beat every `beatNanoseconds`.
    static func create(beatNanoseconds: UInt64) throws -> SupervisorPage {
        let page = SupervisorPage(region: try SharedRegion.create(name: "crew-supervisor", size: size))
        crew_store64(page.word(2), beatNanoseconds)
        return page
    }

    private func word(_ index: Int) -> UnsafeMutablePointer<UInt64> {
        (region.address + index * 8).assumingMemoryBound(to: UInt64.self)
    }

    /// The worker is ready to serve.
    var isReady: Bool { crew_load64(word(0)) != 0 }
    func markReady() { crew_store64(word(0), 1) }

    /// How many times the worker has beaten.
    var beats: UInt64 { crew_load64(word(1)) }
    func beat() { crew_store64(word(1), crew_load64(word(1)) &+ 1) }

    /// How often the worker beats.
    var beatNanoseconds: UInt64 { crew_load64(word(2)) }

    func encode(to encoder: any Encoder) throws {
        try HandedDescriptors.encode("SupervisorPage", fd: region.fd, owner: self, to: encoder)
    }

    convenience init(from decoder: any Decoder) throws {
        let page = try HandedDescriptors.decode("SupervisorPage", as: SupervisorPage.self, from: decoder) { fd in
            SupervisorPage(region: try SharedRegion.adopt(fd, minimumSize: SupervisorPage.size))
        }
        self.init(region: page.region)
    }
}
