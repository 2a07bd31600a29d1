"""Reward classifiers: the convnet, its noise-aware variant and their training steps."""
