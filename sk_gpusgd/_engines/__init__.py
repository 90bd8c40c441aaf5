"""The engines side by side under one loop (``loop.py``): the array-API reference
(dense, sparse), the compiled C epoch, the CUDA kernels, and streaming."""
