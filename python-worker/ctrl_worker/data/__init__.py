"""Offline data: image-folder datasets and the seeded synthetic generator."""
