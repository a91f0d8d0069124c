"""Shared fixtures: run a test in float32 (JAX's default) and in float64."""

import gc

import jax
import jax.numpy as jnp
import pytest


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    """The float dtype of the test; float64 runs inside ``jax.enable_x64(True)``."""
    if request.param == "float64":
        with jax.enable_x64(True):
            yield jnp.float64
    else:
        yield jnp.float32


@pytest.fixture
def x64():
    """Run the test with 64-bit floats (finite-difference gradient checks)."""
    with jax.enable_x64(True):
        yield


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled programs after each test module. Every XLA CPU executable holds
    memory mappings; a whole-suite process would otherwise run into the kernel's limit on
    them (vm.max_map_count, 65530) and abort inside a compilation."""
    yield
    jax.clear_caches()
    gc.collect()
