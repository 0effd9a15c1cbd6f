"""The classic Keras example's network, built by one function you can copy.

``Dense(128, relu)`` on 784 inputs → ``Dense(10, softmax)``, compiled with
Adam, categorical cross-entropy and accuracy: the network of the article this
project started from. It is TensorFlow's beginner quickstart without its
``Flatten`` (our inputs are already 784-vectors) and ``Dropout(0.2)`` layers,
and with one-hot labels and categorical cross-entropy where the quickstart
uses integer labels and the sparse form. The optional L2 penalty is the one knob
the iterative optimisation may add when it diagnoses over-fitting; with the
default ``l2=0.0`` no regulariser is attached at all.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["build_model", "fine_tune_copy", "same_weights"]


# --8<-- [start:build_model]
def build_model(learning_rate: float = 1e-3, l2: float = 0.0) -> Any:
    """Build and compile the classic 784 → 128 (ReLU) → 10 (softmax) network.

    Args:
        learning_rate: Adam's step size (Keras default 0.001).
        l2: L2 penalty on both kernels; 0 attaches no regulariser.

    Returns:
        A compiled ``keras.Sequential`` model.
    """
    import keras

    reg = keras.regularizers.L2(l2) if l2 > 0 else None
    model = keras.Sequential(
        [
            keras.Input(shape=(784,)),
            keras.layers.Dense(128, activation="relu", kernel_regularizer=reg),
            keras.layers.Dense(10, activation="softmax", kernel_regularizer=reg),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


# --8<-- [end:build_model]


def fine_tune_copy(pretrained: Any, learning_rate: float, l2: float = 0.0) -> Any:
    """A fresh compiled copy of ``pretrained`` carrying its weights, ready to fine-tune.

    The copy has a new optimiser state (a lower learning rate is the usual
    fine-tuning choice) and leaves ``pretrained`` untouched, so the pre-trained
    model stays available as the baseline the fine-tuning gates compare with.
    """
    model = build_model(learning_rate=learning_rate, l2=l2)
    model.set_weights(pretrained.get_weights())
    return model


def same_weights(a: Any, b: Any) -> bool:
    """Whether two Keras models hold the same weights, array for array, bit for bit.

    How a run recognises a candidate that is production's model again (the
    same plan and seed run twice into one ``--out``): exact equality, not a
    tolerance, because a model that differs at all is a change to judge.

    Examples:
        >>> class M:
        ...     def __init__(self, *w):
        ...         self.w = [np.asarray(x, np.float32) for x in w]
        ...     def get_weights(self):
        ...         return self.w
        >>> same_weights(M([1, 2], [3]), M([1, 2], [3])), same_weights(M([1, 2]), M([1, 2.5]))
        (True, False)
    """
    wa, wb = a.get_weights(), b.get_weights()
    return len(wa) == len(wb) and all(
        x.shape == y.shape and np.array_equal(x, y) for x, y in zip(wa, wb, strict=True)
    )
