import Foundation

/// Paths for SQLite databases of the tests' own: a new directory each time, so that the database's WAL and
/// wake-up files are the test's alone.
public enum TemporaryDatabase {
    /// A path for a new database file, in a new directory.
    ///
    /// - Throws: if the directory cannot be made.
    public static func path() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("crew-broker-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.appendingPathComponent("crew.db").path
    }
}
