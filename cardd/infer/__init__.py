"""cardd infer: inputs, the run folder and its writers, the local and Ray engines."""
