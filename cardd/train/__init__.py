"""cardd train: the runner, fine-tuning from a model of other classes."""
