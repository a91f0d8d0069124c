"""Tests of stemjax.acquisition (a package: module names do not clash with other test folders)."""
