"""Evaluation: benchmark data layouts, prompt simulation, metrics and runners.

Submodules are imported directly (``from masklet.eval.prompting import first_click``); nothing heavy
happens at import time.
"""
