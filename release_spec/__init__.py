"""release-spec: an executable spec for the staged release of foundation models.

The layers, lowest first (the contracts in ``pyproject.toml`` under
``[tool.importlinter]`` are the one definition; ``nox -s lint`` checks them):

* formulas: ``losses``, ``metrics``, ``optimizers``, ``statistics``; each imports
  NumPy (and SciPy for ``statistics``) only, and may be copied alone;
* ``strategy``: gates, stages, rollout, monitoring, the canary judge, the plan;
* ``store``: the versioned model store;
* ``services`` and ``workbench``, which never import each other: the canary
  judge as an HTTP service; the Keras example run through every stage (TensorFlow);
* ``cli``: the command line, on top.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
