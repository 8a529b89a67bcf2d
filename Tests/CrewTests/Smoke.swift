import Testing

@testable import Crew
