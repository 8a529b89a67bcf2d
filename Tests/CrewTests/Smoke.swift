import CrewTestHelpers
import Testing

@testable import Crew
