import Crew

// The child of crew-bench's static-executable process-start row: a program linked with -static-executable, which
// loads no shared object when it starts. It registers the one function that row runs, under crew-bench's name.

let double = Crew.Function("bench.double") { (x: Int) in x * 2 }
try Crew.bootstrap(double)
print("crew-bench-static is a child of crew-bench (its process-start row); it does nothing on its own")
