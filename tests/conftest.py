"""Strict numerics for the whole suite.

x64 is on so float64 oracles are real float64; float32 cases pass float32 arrays
explicitly. Rank promotion raises so an accidental broadcast in a backward fails.
"""
import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
