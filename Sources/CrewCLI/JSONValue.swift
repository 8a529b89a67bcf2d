import ArgumentParser
import Crew
import CrewPostgres
import CrewQueue
import CrewSQLite
import FoundationEssentials
import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals

#if canImport(Glibc)
    import Glibc
#endif

/// Any JSON value (to check that `--args` is JSON).
enum JSONValue: Decodable {
    case value

    init(from decoder: any Decoder) throws {
        if var array = try? decoder.unkeyedContainer() {
            while !array.isAtEnd { _ = try array.decode(JSONValue.self) }
        } else if let object = try? decoder.container(keyedBy: AnyKey.self) {
            for key in object.allKeys { _ = try object.decode(JSONValue.self, forKey: key) }
        } else {
            let single = try decoder.singleValueContainer()
            if single.decodeNil() {
                self = .value
                return
            }
            if (try? single.decode(Bool.self)) != nil || (try? single.decode(Double.self)) != nil
                || (try? single.decode(String.self)) != nil
            {
                self = .value
                return
            }
            throw DecodingError.dataCorruptedError(in: single, debugDescription: "not JSON")
        }
        self = .value
    }

    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int?
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { return nil }
    }
}

func encodeJSON(_ value: some Encodable) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    encoder.dateEncodingStrategy = .secondsSince1970
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}
