"""The layout of a run folder: the name of every file a training run writes, in one place.

    config.json  run.json  metrics.csv  [tensorboard/]  final.json
    last.safetensors  last.state.pt      (every epoch, and every `checkpoint_minutes`)
    last.state.pt.previous                (the state before, if the last one is damaged)
    best.safetensors                      (best validation top-1 so far)

Plain strings, no imports: the command line and the figures read them without loading torch.
"""

from __future__ import annotations

CONFIG = "config.json"          # the resolved settings of the run's latest start
RUN = "run.json"                # status, the command that resumes it, every start's machine
METRICS = "metrics.csv"         # one row per finished epoch
FINAL = "final.json"            # the final evaluation
TENSORBOARD = "tensorboard"     # a folder, when the tensorboard package is installed
LAST_WEIGHTS = "last.safetensors"
BEST_WEIGHTS = "best.safetensors"
STATE = "last.state.pt"         # all a resume needs (checkpoint.py: the training state)
PREVIOUS_SUFFIX = ".previous"   # a state file's predecessor, kept beside it
PREVIOUS_STATE = STATE + PREVIOUS_SUFFIX
CHECKPOINTS = (STATE, PREVIOUS_STATE, LAST_WEIGHTS, BEST_WEIGHTS)
# The weights a run folder stands for where a model is asked for: the best, else the last.
WEIGHTS = (BEST_WEIGHTS, LAST_WEIGHTS)
