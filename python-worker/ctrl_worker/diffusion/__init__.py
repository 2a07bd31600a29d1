"""Diffusion primitives: backbones, the SDE sampler, text conditioning, fused branches, denoising."""
