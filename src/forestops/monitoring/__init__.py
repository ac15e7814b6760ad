"""Prequential monitoring: how the serving champion did on each batch before any training on it."""
