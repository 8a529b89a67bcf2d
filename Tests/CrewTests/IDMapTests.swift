import CrewTestHelpers
import Testing

@testable import Crew

/// The pool's id-keyed tables behave as dictionaries do, whatever the order of inserts and removals.
@Suite struct IDMapTests {
    @Test func agreesWithDictionaryUnderRandomInsertsAndRemovals() {
        var generator = SystemRandomNumberGenerator()
        var map = IDMap<UInt64, Int>()
        var reference: [UInt64: Int] = [:]
        var next: UInt64 = 1
        for step in 0..<50_000 {
            switch Int.random(in: 0..<10, using: &generator) {
            case 0..<5:  // Mostly new ids in order, as the pool hands them out.
                map[next] = step
                reference[next] = step
                next += 1
            case 5..<8:
                let id = UInt64.random(in: 0...next, using: &generator)
                #expect(map.removeValue(forKey: id) == reference.removeValue(forKey: id))
            case 8:
                let id = UInt64.random(in: 0...next, using: &generator)
                if map[id] != nil { map[id]! += 1 }
                if reference[id] != nil { reference[id]! += 1 }
            default:
                let id = UInt64.random(in: 0...next, using: &generator)
                #expect(map[id] == reference[id])
            }
        }
        #expect(map.count == reference.count)
        #expect(Set(map.keys) == Set(reference.keys))
        for (id, value) in reference { #expect(map[id] == value) }
    }

    @Test func largeAndNegativeIdsWork() {
        var map = IDMap<Int, String>()
        for id in [Int.min, -1, 0, 1, Int.max] { map[id] = "\(id)" }
        for id in [Int.min, -1, 0, 1, Int.max] { #expect(map[id] == "\(id)") }
        #expect(map.removeValue(forKey: -1) == "-1")
        #expect(map[-1] == nil && map.count == 4 && !map.isEmpty)
    }
}
