"""Config of the ``ntk_conv_cifar`` recipe: infinite-width convolutional kernels on a real CIFAR-10 subset."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(kw_only=True)
class NtkConvCifarConfig:
    """Kernel regression with the CNTK without pooling (CNTK-V), CNN-GAP and the neural-tangents README WideResNet.

    Defaults are the full run, sized for a CPU budget: the analytic conv kernels keep every pair of positions, so a
    pair of 8x8 images carries 4,096 position pairs per layer and a pair of 16x16 images 65,536; the full run
    therefore downsamples the 32x32 images to ``image_size`` by block averaging.
    """

    n_train: int = 400  # training images (class-balanced), drawn from the 10,000 CIFAR-10 test JPEGs
    n_test: int = 400  # held-out images (class-balanced, disjoint from the training images)
    image_size: int = 8  # side after block-average downsampling (32 -> 8: 4x4 blocks)
    depth: int = 3  # conv + ReLU layers of CNTK-V and CNN-GAP; Arora et al. 2019's depth counts them + 1 (here: 4)
    wrn_block_size: int = 4  # blocks per group of the WideResNet (neural-tangents' README: WideResnet(4, k=1))
    wrn_k: int = 1  # width multiplier of the WideResNet (irrelevant for the infinite-width kernel's values)
    ridge_grid: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)  # λ / mean(diag K) tried by cross-validation
    folds: int = 5  # cross-validation folds on the training images (the test images are never used for λ)
    block: int = 100  # rows/columns per block of kernel_blocks
    data_seed: int = 0  # which images form the subsets and the folds

    def __post_init__(self) -> None:
        if self.n_train < 10 * self.folds or self.n_test < 10:
            raise ValueError(f"n_train must be >= 10 x folds ({10 * self.folds}) and n_test >= 10, got "
                             f"{self.n_train} and {self.n_test}")
        if self.n_train + self.n_test > 10_000:
            raise ValueError(f"n_train + n_test must be <= 10,000 (the CIFAR-10 test JPEGs), got "
                             f"{self.n_train + self.n_test}")
        if self.image_size < 4 or self.image_size % 4:
            raise ValueError(f"image_size must be a multiple of 4 (the WideResNet halves it twice), got "
                             f"{self.image_size}")
        if self.depth < 1 or self.wrn_block_size < 1 or self.wrn_k < 1:
            raise ValueError("depth, wrn_block_size and wrn_k must be >= 1")
        if not self.ridge_grid or min(self.ridge_grid) <= 0:
            raise ValueError(f"ridge_grid must hold positive values, got {self.ridge_grid}")
        if self.folds < 2:
            raise ValueError(f"folds must be >= 2, got {self.folds}")

    @classmethod
    def quick(cls) -> NtkConvCifarConfig:
        """The small preset: same code path, 80 + 80 images, shallow networks."""
        return replace(cls(), n_train=80, n_test=80, depth=2, wrn_block_size=1, ridge_grid=(1e-3, 1e-2, 1e-1))
