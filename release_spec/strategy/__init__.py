"""The strategy layer: gates, stages, rollout, monitoring, the canary judge and the plan.

Imports the formula modules, NumPy, SciPy and the standard library; never
TensorFlow, Keras or the store.
"""
