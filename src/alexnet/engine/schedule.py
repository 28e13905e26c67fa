"""Learning-rate schedules as pure functions of training progress, plus the paper's rule.

A schedule gives a factor applied to the base lr. `constant`, `step`, `multistep` and
`cosine` depend only on (epoch, fraction of the epoch done); `plateau` is the paper's (§5):
divide the lr by 10 when the validation error stops improving, at most `max_drops` times;
its small state goes into the training checkpoint.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from alexnet.choices import SCHEDULES
from alexnet.errors import one_of


def step_factor(epoch: int, step_size: int, gamma: float = 0.1) -> float:
    """gamma ** (epoch // step_size): torchvision's StepLR."""
    return gamma ** (epoch // max(step_size, 1))


def multistep_factor(epoch: int, milestones: tuple[int, ...], gamma: float = 0.1) -> float:
    """gamma ** (number of milestones <= epoch)."""
    return gamma ** sum(epoch >= m for m in milestones)


def cosine_factor(progress: float, final: float = 0.0) -> float:
    """Half a cosine from 1 at progress 0 to `final` at progress 1."""
    progress = min(max(progress, 0.0), 1.0)
    return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * progress))


def warmup_factor(position: float, warmup_epochs: float) -> float:
    """Linear ramp from near 0 to 1 over the first `warmup_epochs` (position in epochs)."""
    if warmup_epochs <= 0 or position >= warmup_epochs:
        return 1.0
    return (position + 1e-3) / warmup_epochs


@dataclass
class Plateau:
    """The paper's rule: x `gamma` when the error has not improved for `patience` epochs.

    `update(error)` after each epoch's validation; returns True when it dropped the lr.
    """

    gamma: float = 0.1
    patience: int = 2
    max_drops: int = 3
    threshold: float = 1e-4      # an improvement smaller than this does not count
    best: float = math.inf
    bad_epochs: int = 0
    drops: int = 0

    @property
    def factor(self) -> float:
        return self.gamma ** self.drops

    def update(self, error: float) -> bool:
        if error < self.best - self.threshold:
            self.best, self.bad_epochs = error, 0
            return False
        self.bad_epochs += 1
        if self.bad_epochs >= self.patience and self.drops < self.max_drops:
            # The best error so far stays the target: the new lr must beat it.
            self.drops += 1
            self.bad_epochs = 0
            return True
        return False

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)


@dataclass
class Schedule:
    """The lr factor for a run: `factor(epoch, fraction)`; `end_epoch(error)` after each epoch."""

    kind: str = "constant"
    epochs: int = 1
    gamma: float = 0.1
    step_size: int = 30
    milestones: tuple[int, ...] = ()
    warmup_epochs: float = 0.0
    final_factor: float = 0.0
    plateau: Plateau | None = None

    def __post_init__(self):
        if self.kind not in SCHEDULES:
            raise one_of("schedule", self.kind, SCHEDULES)
        if self.kind == "plateau" and self.plateau is None:
            self.plateau = Plateau(gamma=self.gamma)

    def factor(self, epoch: int, fraction: float = 0.0) -> float:
        """lr factor at `fraction` (0..1) of the way through `epoch` (0-based)."""
        position = epoch + fraction
        if self.kind == "constant":
            base = 1.0
        elif self.kind == "step":
            base = step_factor(epoch, self.step_size, self.gamma)
        elif self.kind == "multistep":
            base = multistep_factor(epoch, self.milestones, self.gamma)
        elif self.kind == "cosine":
            base = cosine_factor(position / max(self.epochs, 1), self.final_factor)
        else:
            base = self.plateau.factor
        return base * warmup_factor(position, self.warmup_epochs)

    def end_epoch(self, error: float) -> bool:
        """Feed the epoch's validation error; True when the paper's rule dropped the lr."""
        return self.plateau.update(error) if self.plateau is not None else False

    def state_dict(self) -> dict:
        return {"plateau": self.plateau.state_dict() if self.plateau else None}

    def load_state_dict(self, state: dict) -> None:
        if state.get("plateau") is not None and self.plateau is not None:
            self.plateau.load_state_dict(state["plateau"])
