public import Crew
import CrewTestSupport
import CrewTesting
public import Testing

/// The crew every test uses: children are `crew-test-worker`, which registers `TestFunctions.all`. The test
/// process also registers `onlyInParent`, which the children do not know.
public let testCrew: Crew = {
    do {
        return try CrewTesting.bootstrap(
            TestFunctions.all + QueueFunctions.all + [TestFunctions.onlyInParent], worker: "crew-test-worker")
    } catch {
        fatalError("cannot bootstrap the test crew: \(error)")
    }
}()

/// Expects `body` to throw a `CrewError` with `code`, and returns it.
@discardableResult
public func expectCrewError<R>(
    _ code: CrewError.Code,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () async throws -> R
) async -> CrewError? {
    do {
        let value = try await body()
        Issue.record("expected CrewError.\(code), got \(value)", sourceLocation: sourceLocation)
        return nil
    } catch let error as CrewError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected CrewError.\(code), got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}
