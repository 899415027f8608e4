"""Background execution with Dramatiq (broker, actors, workers, sweeper): built in the job-runner issue."""
