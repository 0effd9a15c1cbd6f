"""The workbench: the classic Keras example run end to end through every stage.

The only layer that imports TensorFlow/Keras (install the ``[workbench]`` extra).
"""
