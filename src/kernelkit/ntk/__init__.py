"""Neural tangent kernels: empirical NTK of any PyTorch module, infinite-width kernels, prediction."""
