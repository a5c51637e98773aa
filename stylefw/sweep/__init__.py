"""Sweeps (`stylefw -m`): what a job does beyond a single run, and the summary and contact sheet at the end."""
