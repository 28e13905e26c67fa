"""Streaming statistics of a store: the per-pixel mean image and the 3x3 RGB covariance.

Sums are accumulated in float64 per chunk of images (by the worker that decoded them) and
added up, so memory stays at one mean-sized buffer whatever the number of images. The
covariance is over all pixels of all images (paper §4.1: "the set of RGB pixel values
throughout the ImageNet training set"), on the 0-255 scale.
"""

from __future__ import annotations

import numpy as np


class RGBStats:
    """Running sums: images [n], pixel sum [S,S,3], RGB outer-product sum [3,3]."""

    def __init__(self, size: int):
        self.size = size
        self.images = 0
        self._pixel_sum = np.zeros((size, size, 3), np.float64)
        self._recent = np.zeros((size, size, 3), np.uint32)  # exact while < 16.8 M images
        self.outer_sum = np.zeros((3, 3), np.float64)

    @property
    def pixel_sum(self) -> np.ndarray:
        if self._recent.any():
            self._pixel_sum += self._recent
            self._recent[:] = 0
        return self._pixel_sum

    @pixel_sum.setter
    def pixel_sum(self, value: np.ndarray) -> None:
        self._pixel_sum, self._recent[:] = value, 0

    @property
    def rgb_sum(self) -> np.ndarray:
        return self.pixel_sum.sum(axis=(0, 1))

    def add_image(self, image: np.ndarray) -> None:
        """Add one uint8 [S,S,3] image (integer sums: cheap, and exact)."""
        np.add(self._recent, image, out=self._recent)
        flat = image.reshape(-1, 3).astype(np.float64)
        self.outer_sum += flat.T @ flat   # every product and sum is an exact float64 integer
        self.images += 1

    def merge(self, other: RGBStats) -> None:
        self.images += other.images
        self.pixel_sum += other.pixel_sum
        self.outer_sum += other.outer_sum

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"stats_images": np.asarray(self.images, np.int64), "pixel_sum": self.pixel_sum,
                "rgb_sum": self.rgb_sum, "outer_sum": self.outer_sum}

    @classmethod
    def from_arrays(cls, arrays) -> RGBStats:
        stats = cls(arrays["pixel_sum"].shape[0])
        stats.images = int(arrays["stats_images"])
        stats.pixel_sum = np.array(arrays["pixel_sum"], np.float64)
        stats.outer_sum = np.array(arrays["outer_sum"], np.float64)
        return stats

    def finish(self) -> dict[str, np.ndarray]:
        """mean [S,S,3] f32, channel_mean [3], covariance [3,3] f64, eigvals [3] descending,
        eigvecs [3,3] (column i for eigvals[i]; the arbitrary sign is fixed so that the
        components sum to <= 0, like cuda-convnet's first one, (-0.56, -0.58, -0.59))."""
        n = max(self.images, 1)
        pixels = n * self.size * self.size
        channel_mean = self.rgb_sum / pixels
        covariance = self.outer_sum / pixels - np.outer(channel_mean, channel_mean)
        covariance = (covariance + covariance.T) / 2
        eigvals, eigvecs = np.linalg.eigh(covariance)
        order = np.argsort(eigvals)[::-1]
        eigvals, eigvecs = np.clip(eigvals[order], 0, None), eigvecs[:, order]
        eigvecs = eigvecs * np.where(eigvecs.sum(0) > 0, -1.0, 1.0)  # sign is arbitrary
        return {"mean": (self.pixel_sum / n).astype(np.float32),
                "channel_mean": channel_mean.astype(np.float32),
                "covariance": covariance,
                "eigvals": eigvals.astype(np.float32),
                "eigvecs": eigvecs.astype(np.float32)}
