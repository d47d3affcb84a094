"""Evaluation: metrics, calibration, risk-coverage, figures, the simulation and EVALUATION.md.

``selfheal eval`` runs :func:`selfheal.evaluation.run.evaluate`; the other modules are plain
functions over arrays so they can be tested on hand-computed examples.
"""
