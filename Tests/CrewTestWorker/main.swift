import Crew
import CrewTestSupport

// The child executable of Crew's test suite: it registers the test functions and serves its parent.
try Crew.bootstrap(TestFunctions.all + QueueFunctions.all)
print("crew-test-worker serves Crew's test suite as a child process; it does nothing on its own.")
