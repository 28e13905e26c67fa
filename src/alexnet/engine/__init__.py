"""Training and evaluation: the loop, the paper's optimiser, schedules, checkpoints."""
