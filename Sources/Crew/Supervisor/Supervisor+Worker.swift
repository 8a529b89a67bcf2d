import CCrewShims
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

extension Crew.Supervisor {
    /// What a supervised worker is handed: who it is, and the arguments the supervisor was given for every worker.
    public struct Start<Arguments: Codable & Sendable>: Codable, Sendable {
        /// This worker, as its supervisor knows it.
        public let worker: Worker
        /// The supervisor's arguments for its workers (a listening socket, a configuration…).
        public let arguments: Arguments
    }

    /// A supervised worker's side of its supervisor: it says when it is ready, beats while its tasks run, and
    /// hears when it should stop.
    ///
    /// ```swift
    /// static let serve = Crew.Function("serve") { (start: Crew.Supervisor.Start<Settings>) async throws in
    ///     let server = try await startServing(start.arguments)   // your work loop
    ///     start.worker.ready()                                    // the supervisor counts it from now
    ///     await start.worker.stopRequested()                      // SIGTERM: finish what is in hand
    ///     try await server.drain()
    /// }
    /// ```
    ///
    /// Returning from the function ends the worker with status 0, which the supervisor takes as a worker that
    /// finished on its own (as one that served its request limit): it starts another at once. Throwing, trapping
    /// or being killed ends it with a failure, and it is restarted with a backoff.
    public struct Worker: Codable, Sendable {
        /// The worker's number: 1, 2, 3… in start order, never reused by its supervisor (gunicorn's worker age).
        public let id: Int
        /// The reload the worker was started by: 1 at first, one more with each reload.
        public let generation: Int
        let page: SupervisorPage

        init(id: Int, generation: Int, page: SupervisorPage) {
            self.id = id
            self.generation = generation
            self.page = page
        }

        /// Tells the supervisor that this worker serves, and starts its heartbeat: a task that beats as long as
        /// the process's tasks get to run. A worker whose tasks stop running (a handler that blocks every thread)
        /// stops beating, and its supervisor ends and replaces it after its timeout. Call it once the worker takes
        /// work (it listens); calling it again does nothing.
        public func ready() {
            StopNotice.shared.arm()
            guard
                Self.heartbeatStarted.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing)
                    .exchanged
            else { return }
            page.markReady()
            let page = page
            let interval = max(page.beatNanoseconds, 1_000_000)
            Task.detached {
                while true {
                    page.beat()
                    do {
                        try await Task.sleep(nanoseconds: interval)
                    } catch {
                        return  // Cancelled: the process is ending.
                    }
                }
            }
        }

        /// Suspends until the supervisor asks this worker to stop (it sends `SIGTERM`): stop taking work, finish
        /// what is in hand, then return from the worker's function. `SIGQUIT` ends the worker at once.
        public func stopRequested() async {
            StopNotice.shared.arm()
            _ = await StopNotice.shared.requested.wait()
        }

        /// Whether the supervisor has asked this worker to stop.
        public var isStopRequested: Bool { StopNotice.shared.requested.current != nil }

        private static let heartbeatStarted = Atomic(false)
    }
}

/// Turns `SIGTERM` into a request to stop, in a supervised worker: Crew's signal thread writes a byte to a pipe
/// (see `crew_term_notify`), and a thread of this type's reads it.
final class StopNotice: Sendable {
    static let shared = StopNotice()
    let requested = Completion<Void>()
    private let armed = Atomic(false)

    /// From now on `SIGTERM` asks this process to stop instead of ending it.
    func arm() {
        guard armed.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else {
            return
        }
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { return }
        let (reader, writer) = (fds[0], fds[1])
        _ = fcntl(reader, F_SETFD, FD_CLOEXEC)
        _ = fcntl(writer, F_SETFD, FD_CLOEXEC)
        let requested = self.requested
        let started = startThreadIfPossible(name: "crew-stop-notice") {
            var byte: UInt8 = 0
            while read(reader, &byte, 1) < 0 && errno == EINTR {}
            requested.complete(())
        }
        // Without the thread, SIGTERM keeps ending the process (after flushing its output).
        if case .success = started { crew_term_notify(writer) }
    }
}
