"""The CUDA engine: fused kernels (``kernels.cu``), their launcher, and the epoch driver."""
