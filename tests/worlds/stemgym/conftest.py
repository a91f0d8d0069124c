"""Shared tiny STEMGym worlds (built once per session: all tests use the "tiny" size, so the
environment compiles once)."""

import functools

import jax
import pytest

from stemjax.worlds import stemgym


@functools.cache
def tiny_world(material: str = "SrTiO3", difficulty: str = "easy", seed: int = 0, **changes):
    """A tiny (2 × 2 tiles of 16 px) world, cached."""
    return stemgym.make_world(jax.random.key(seed), material, difficulty, "tiny", **changes)


@functools.cache
def default_world(material: str = "BaTiO3", difficulty: str = "medium"):
    """A world of the default size (8 × 8 tiles of 32 px), cached."""
    return stemgym.make_world(jax.random.key(0), material, difficulty)


@pytest.fixture(scope="session")
def world():
    return tiny_world()
