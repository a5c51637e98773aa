"""stylefw: a plugin-based neural style transfer framework (Hydra + Lightning)."""

__version__ = "0.1.0"
