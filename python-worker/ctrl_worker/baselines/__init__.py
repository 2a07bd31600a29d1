"""Baselines computed in the worker: guided sampling (classifier-free, reconstruction, classifier)."""
