"""release-spec: an executable spec for the staged release of foundation models.

The package is layered (see the design page): formulas (``losses``,
``metrics``, ``optimizers``, ``statistics``) import NumPy and SciPy only;
the strategy layer (``gates``, ``stages``, ``rollout``, ``monitoring``)
imports the formulas and the standard library; ``registry`` is the model
store; the workbench (``data``, ``model``, ``pipeline``) is the only place
that imports TensorFlow/Keras.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
