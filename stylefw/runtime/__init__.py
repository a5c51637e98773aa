"""The process around a run: Lightning plumbing and loggers, device memory, crash-safe files."""
