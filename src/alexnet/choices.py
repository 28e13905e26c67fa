"""The valid values of the settings that name a choice, in one torch-free place.

The config checks a run's settings against them, the engine dispatches on them and the
command line offers them, so all three always agree.
"""

from __future__ import annotations

VIEWS = ("center", "ten")            # test-time views: the centre crop, the paper's 10 patches
OPTIMIZERS = ("paper", "sgd")        # the paper's SGD (lr inside the velocity), torch's SGD
SCHEDULES = ("constant", "step", "multistep", "cosine", "plateau")
NORMALIZATIONS = ("mean-image", "mean-image-std", "imagenet")
AMP_MODES = ("auto", "bf16", "none")  # fp16 would need loss scaling; bf16 does not
