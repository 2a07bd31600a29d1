"""CTRL: the control (label embedding + LoRA), rollouts, rewards, the optimiser, checkpoints."""
