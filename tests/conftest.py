"""Shared fixtures: run a test in float32 (JAX's default) and in float64."""

import gc

import jax
import jax.numpy as jnp
import pytest


# Modules of a minute or more are collected first, so that with `make test`'s workers
# (pytest-xdist, one module per worker, no reordering) they start at once and the workers
# finish together instead of one waiting on a long module at the end.
_LONG_MODULES = ("test_docs.py", "test_classifier.py")


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: item.path.name not in _LONG_MODULES)  # stable


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
