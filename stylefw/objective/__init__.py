"""The objective: loss-term and backbone base classes, and their sum over one shared backbone pass."""
