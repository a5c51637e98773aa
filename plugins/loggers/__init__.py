"""Built-in experiment loggers."""
