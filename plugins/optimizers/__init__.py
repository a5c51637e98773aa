"""Optimizers written for stylefw (configs in conf/optimizer)."""
