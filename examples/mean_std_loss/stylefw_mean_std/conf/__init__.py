# A package, so Hydra can read this folder as `pkg://stylefw_mean_std.conf` once installed.
