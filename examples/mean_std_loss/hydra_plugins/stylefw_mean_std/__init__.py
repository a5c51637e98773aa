"""Hydra plugins of stylefw_mean_std (Hydra scans this subpackage; `hydra_plugins` itself has no __init__)."""
