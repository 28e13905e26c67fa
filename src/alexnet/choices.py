"""The valid values of the settings that name a choice, and the limits that several layers
check, in one torch-free place.

The config checks a run's settings against them, the engine dispatches on them, the data
layer checks its stores against them and the command line offers them, so all agree.
"""

from __future__ import annotations

VIEWS = ("center", "ten")            # test-time views: the centre crop, the paper's 10 patches
OPTIMIZERS = ("paper", "sgd")        # the paper's SGD (lr inside the velocity), torch's SGD
SCHEDULES = ("constant", "step", "multistep", "cosine", "plateau")
NORMALIZATIONS = ("mean-image", "mean-image-std", "imagenet")
AMP_MODES = ("auto", "bf16", "none")  # fp16 would need loss scaling; bf16 does not
MAX_SIZE = 2048   # stored image side: the paper's is 256; 2048 is 12 MB per image
