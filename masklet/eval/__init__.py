"""Evaluation: benchmark data layouts, prompt simulation, metrics and runners.

Submodules are imported directly (``from masklet.eval.prompting import simulate_clicks``); nothing heavy
happens at import time.
"""
