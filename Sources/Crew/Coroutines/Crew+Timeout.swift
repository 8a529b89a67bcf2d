import AsyncAlgorithms
import CCrewShims
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

extension Crew {
    /// Runs `body`, giving up after `timeout`: gevent's `Timeout`. On time-out `body` is cancelled and this throws
    /// ``CrewError/Code/timedOut`` at once — also if `body` ignores cancellation (it then runs on, unawaited).
    public static func withTimeout<T: Sendable>(
        _ timeout: Duration,
        _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        let outcome = Completion<Result<T, ErrorBox>>()
        let task = Task {
            do {
                outcome.complete(.success(try await body()))
            } catch {
                outcome.complete(.failure(ErrorBox(error: error)))
            }
        }
        let nanoseconds = timeout.clampedNanoseconds
        Reactor.shared.submit {
            Reactor.shared.schedule(afterNanoseconds: nanoseconds) {
                outcome.complete(
                    .failure(ErrorBox(error: CrewError(.timedOut, "the call did not finish within \(timeout)"))))
            }
        }
        let result = await withTaskCancellationHandler {
            await outcome.wait()
        } onCancel: {
            task.cancel()
        }
        guard let result else { throw CancellationError() }
        switch result {
        case .success(let value):
            return value
        case .failure(let box):
            if let error = box.error as? CrewError, error.code == .timedOut { task.cancel() }
            throw box.error
        }
    }
}
