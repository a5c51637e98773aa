"""stylefw's Hydra plugins (Hydra scans this package at start-up; `hydra_plugins` itself has no __init__)."""
