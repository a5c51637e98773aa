"""An example third-party stylefw plugin: a style term matching per-channel feature mean and std."""
