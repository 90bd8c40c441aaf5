"""Build the compiled CPU epoch; everything else is in pyproject.toml.

The extension is optional: without a C compiler the package installs and runs
the same engine in NumPy (slower per step, same results).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "sk_gpusgd._engines.compiled._sgd_cpu",
            sources=["sk_gpusgd/_engines/compiled/sgd_cpu.c"],
            depends=["sk_gpusgd/_engines/compiled/sgd_epoch.h"],
            extra_compile_args=["-O3"],
            optional=True,
        )
    ]
)
