"""dgm: the engine of an open-ended archive of self-improving coding agents."""
