import Crew
try Crew.bootstrap()
