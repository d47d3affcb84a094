"""Evaluation: metrics, calibration, risk-coverage, figures, the simulation and EVALUATION.md.

``selfheal eval`` runs :func:`selfheal.evaluation.pipeline.evaluate` and prints with
:mod:`~selfheal.evaluation.console`. One module per concern:

* ``pipeline``: load the data, predict once, measure, write the files;
* ``metrics``, ``calibration``: plain functions over arrays (k labels), tested on hand-computed
  examples and against scikit-learn;
* ``targets``: the targets, what the model allows, the operating point chosen on validation;
* ``no_person``: the no-person rule as configured and refitted on validation;
* ``simulate``: the self-healing simulation through the real graph;
* ``knowability``: inputs the model cannot know;
* ``examples``: real inputs of each kind for the report;
* ``report``, ``plots``, ``console``: EVALUATION.md, the figures, the console summary.
"""
