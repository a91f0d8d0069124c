"""The papers' CNN feature extractor as a torch module, for the GPyTorch peers of the
benchmarks (two 3 × 3 convolutions with 16 and 32 channels, ReLU and 2 × 2 max-pooling, then a
linear map of 16 × 16 patches to a 2-D latent; shared/papers/003)."""

import torch


class PapersCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Sequential(
            torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        )  # fmt: skip
        self.out = torch.nn.Linear(512, 2)

    def forward(self, x):
        """(..., 256) flattened patches → (..., 2) latent; leading batch axes are kept."""
        z = self.out(self.conv(x.reshape(-1, 1, 16, 16)).flatten(1))
        return z.reshape(*x.shape[:-1], 2)
