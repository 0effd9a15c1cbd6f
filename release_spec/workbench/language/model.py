"""The small decoder-only transformer, from Keras's built-in layers only.

Token and position embeddings (positions are a second integer input, fed
``0, 1, ..., seq_len - 1``), ``blocks`` pre-norm transformer blocks
(``MultiHeadAttention(use_causal_mask=True)`` and a two-layer ReLU
feed-forward, each with a residual ``Add``), a final ``LayerNormalization``
and a ``Dense`` to the vocabulary's logits. Nothing but built-in layers, so
the model store saves and loads it with ``safe_mode`` and its refusal of
foreign code unchanged (`release_spec.store.check_model_file`).

Two sizes (`SIZES`): ``small`` (one block, width 64) is released first;
``large`` (two blocks, width 96) follows it up the size ladder.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["SIZES", "ModelSize", "build_language_model", "fine_tune_copy", "positions"]


@dataclass(frozen=True)
class ModelSize:
    """Width, depth and heads of one rung of the size ladder."""

    name: str
    width: int
    blocks: int
    heads: int

    def __post_init__(self) -> None:
        if self.width < 8 or self.blocks < 1 or self.heads < 1 or self.width % self.heads:
            raise ValueError(
                f"size {self.name!r}: need width >= 8 divisible by heads >= 1 and blocks >= 1, "
                f"got width {self.width}, heads {self.heads}, blocks {self.blocks}"
            )


SIZES = {
    "small": ModelSize("small", width=64, blocks=1, heads=4),
    "large": ModelSize("large", width=96, blocks=2, heads=4),
}


def positions(batch: int, seq_len: int) -> npt.NDArray[np.int32]:
    """The position input: ``0 .. seq_len - 1`` on every row.

    Examples:
        >>> positions(2, 3).tolist()
        [[0, 1, 2], [0, 1, 2]]
    """
    return np.broadcast_to(np.arange(seq_len, dtype=np.int32), (batch, seq_len)).copy()


# --8<-- [start:build_language_model]
def build_language_model(
    vocab_size: int,
    seq_len: int,
    size: ModelSize,
    learning_rate: float = 3e-3,
    decay_steps: int = 0,
) -> Any:
    """Build and compile the decoder-only transformer.

    Args:
        vocab_size: number of token ids (padding is 0 and is masked by the caller's weights).
        seq_len: the longest context (the position table's size); any shorter
            length can be fed.
        size: width, blocks and heads (`SIZES`).
        learning_rate: Adam's step size (the peak of the schedule, if any).
        decay_steps: if positive, the training steps the step size is scheduled
            over (`compile_language_model`); 0 keeps it constant.

    Returns:
        A compiled functional ``keras.Model`` with inputs ``tokens`` and
        ``positions`` (both ``(batch, seq_len)`` integers) and next-token logits
        ``(batch, seq_len, vocab_size)``; loss: sparse categorical cross-entropy
        on logits (eq-cce per token).
    """
    import keras
    from keras import layers

    tokens = keras.Input((None,), dtype="int32", name="tokens")
    pos = keras.Input((None,), dtype="int32", name="positions")
    x = layers.Add(name="embed")(
        [
            layers.Embedding(vocab_size, size.width, name="token_embedding")(tokens),
            layers.Embedding(seq_len, size.width, name="position_embedding")(pos),
        ]
    )
    for b in range(size.blocks):
        h = layers.LayerNormalization(epsilon=1e-5, name=f"block{b}_ln1")(x)
        h = layers.MultiHeadAttention(
            size.heads, size.width // size.heads, name=f"block{b}_attention"
        )(h, h, use_causal_mask=True)
        x = layers.Add(name=f"block{b}_residual1")([x, h])
        h = layers.LayerNormalization(epsilon=1e-5, name=f"block{b}_ln2")(x)
        h = layers.Dense(4 * size.width, activation="relu", name=f"block{b}_ff1")(h)
        h = layers.Dense(size.width, name=f"block{b}_ff2")(h)
        x = layers.Add(name=f"block{b}_residual2")([x, h])
    x = layers.LayerNormalization(epsilon=1e-5, name="final_ln")(x)
    logits = layers.Dense(vocab_size, name="logits")(x)
    model = keras.Model([tokens, pos], logits, name=f"decoder_{size.name}")
    compile_language_model(model, learning_rate, decay_steps)
    return model


# --8<-- [end:build_language_model]


def compile_language_model(model: Any, learning_rate: float, decay_steps: int = 0) -> None:
    """Adam, sparse categorical cross-entropy on logits, token accuracy.

    With ``decay_steps > 0`` the step size warms up linearly from a tenth of
    ``learning_rate`` to it over the first tenth of ``decay_steps``, then
    follows a cosine down towards 5 % of it: the short runs of the quick plan
    end at a small step and settle on the sums (a constant step left the
    addition table half-learnt on some seeds).
    """
    import keras

    lr: Any = learning_rate
    if decay_steps > 0:
        lr = keras.optimizers.schedules.CosineDecay(
            learning_rate / 10,
            decay_steps,
            alpha=0.05,
            warmup_target=learning_rate,
            warmup_steps=decay_steps // 10,
        )
    model.compile(
        # Named, so the saved compile config does not depend on how many optimisers
        # this process has made before (Keras numbers unnamed ones: adam_1, adam_2, ...).
        optimizer=keras.optimizers.Adam(learning_rate=lr, name="adam"),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )


def fine_tune_copy(pretrained: Any, learning_rate: float, decay_steps: int = 0) -> Any:
    """A fresh compiled copy of ``pretrained`` with its weights (new optimiser state)."""
    import keras

    model = keras.models.clone_model(pretrained)
    model.set_weights(pretrained.get_weights())
    compile_language_model(model, learning_rate, decay_steps)
    return model


_FORWARD: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def forward(model: Any) -> Callable[[npt.NDArray[np.int32], npt.NDArray[np.int32]], Any]:
    """``model``'s inference call (tokens, positions) -> logits, traced once as a graph.

    Generation calls the model once per new token; run eagerly, each call walks
    the layers in Python. One ``tf.function`` per model with both dimensions
    left open serves every batch and length without retracing. It holds the
    model weakly, so it does not keep a discarded model alive.
    """
    fn: Any = _FORWARD.get(model)
    if fn is None:
        import tensorflow as tf

        ref = weakref.ref(model)
        spec = tf.TensorSpec([None, None], tf.int32)

        def call(tokens: Any, pos: Any) -> Any:
            m = ref()
            assert m is not None
            return m([tokens, pos], training=False)

        fn = _FORWARD[model] = tf.function(call, input_signature=[spec, spec])
    return lambda tokens, pos: fn(np.ascontiguousarray(tokens), np.ascontiguousarray(pos))


def token_nll(model: Any, batch: npt.NDArray[np.int32]) -> npt.NDArray[np.float64]:
    """Per-sequence summed negative log-likelihood (nats) and token counts, shape ``(n, 2)``.

    ``batch`` holds start + text + end rows padded with 0 to ``seq_len + 1``;
    the model reads ``[:, :-1]`` and is scored on ``[:, 1:]`` where not padding.
    Perplexity over the rows is exp(sum of the first column / sum of the second).
    """
    x, y = batch[:, :-1], batch[:, 1:]
    out = np.zeros((len(batch), 2), np.float64)
    for s in range(0, len(batch), 256):
        xb, yb = x[s : s + 256], y[s : s + 256]
        logits = np.asarray(forward(model)(xb, positions(len(xb), xb.shape[1])))
        logits = logits.astype(np.float64)
        m = logits.max(axis=-1, keepdims=True)
        logp = logits - m - np.log(np.exp(logits - m).sum(axis=-1, keepdims=True))
        picked = np.take_along_axis(logp, yb[..., None].astype(np.int64), axis=-1)[..., 0]
        mask = yb != 0
        out[s : s + 256, 0] = -(picked * mask).sum(axis=1)
        out[s : s + 256, 1] = mask.sum(axis=1)
    return out


def generate(
    model: Any,
    prompts: npt.NDArray[np.int32],
    lengths: npt.NDArray[np.int64],
    *,
    max_new: int,
    end_id: int,
    temperature: float = 0.0,
    rng: np.random.Generator | None = None,
) -> npt.NDArray[np.int32]:
    """Continue each row of ``prompts`` (first ``lengths[i]`` tokens) by ``max_new`` tokens.

    Greedy at ``temperature == 0``; otherwise sampled from softmax(logits /
    temperature) with ``rng`` (required then). Returns the new tokens,
    ``(n, max_new)``; a row stops growing at ``end_id`` (later tokens are 0).
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature > 0 and rng is None:
        raise ValueError("sampling at temperature > 0 needs an rng")
    seq = prompts.copy()
    n, seq_len = seq.shape
    cur = lengths.astype(np.int64).copy()
    new = np.zeros((n, max_new), np.int32)
    done = np.zeros(n, bool)
    pos = positions(n, seq_len)
    step = forward(model)
    for t in range(max_new):
        active = ~done & (cur < seq_len)
        if not active.any():
            break
        # Only the rows still growing, and only the columns up to the longest of them:
        # under the causal mask the later (padding) columns change nothing before them.
        rows = np.flatnonzero(active)
        upto = int(cur[rows].max())
        logits = np.asarray(step(seq[rows, :upto], pos[: len(rows), :upto]))
        last = logits[np.arange(len(rows)), cur[rows] - 1].astype(np.float64)
        if temperature == 0:
            pick = last.argmax(axis=-1)
        else:
            assert rng is not None
            z = last / temperature
            p = np.exp(z - z.max(axis=-1, keepdims=True))
            p /= p.sum(axis=-1, keepdims=True)
            u = rng.random((n, 1))[rows]  # one draw per row and step, grown or not
            pick = (p.cumsum(axis=-1) < u).sum(axis=-1).clip(0, p.shape[1] - 1)
        nxt = np.zeros(n, np.int64)
        nxt[rows] = pick
        new[:, t] = nxt
        seq[rows, cur[rows]] = pick
        cur[rows] += 1
        done |= nxt == end_id
    return new
