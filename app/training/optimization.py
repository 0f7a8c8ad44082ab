"""AdamW with linear warm-up and linear decay, as BERT fine-tuning recipes use.

Written on `tf_keras.optimizers.AdamW` because tf-models-official (which has this as
`official.nlp.optimization`) cannot be installed alongside TF 2.21.
"""

from __future__ import annotations

import re

import tensorflow as tf

# Layer norms and biases are not decayed (Loshchilov & Hutter; the original BERT recipe).
NO_DECAY = ["LayerNorm", "layer_norm", "norm/gamma", "norm/beta", "bias"]


@tf.keras.utils.register_keras_serializable(package="bertclf")
class WarmupLinearDecay(tf.keras.optimizers.schedules.LearningRateSchedule):
    """0 -> peak over `warmup_steps`, then linearly down to 0 at `total_steps`.

    With a `clock` (a scalar variable in [0, 1] that `app.training.fit.Deadline` sets to the share of a
    time budget used), the decay follows whichever is further on, the steps or the clock, so the
    rate reaches 0 at the deadline even when steps run slower than planned.
    """

    def __init__(self, peak_learning_rate: float, total_steps: int, warmup_steps: int,
                 clock: tf.Variable | None = None):
        super().__init__()
        if total_steps < 1:
            raise ValueError(f"total_steps must be at least 1, got {total_steps}")
        if not 0 <= warmup_steps <= total_steps:
            raise ValueError(f"warmup_steps must be in [0, {total_steps}], got {warmup_steps}")
        self.peak_learning_rate = peak_learning_rate
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps
        self.clock = clock

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        peak = tf.constant(self.peak_learning_rate, tf.float32)
        warm = peak * (step + 1.0) / max(self.warmup_steps, 1)
        decay_span = max(self.total_steps - self.warmup_steps, 1)
        done = (step - self.warmup_steps) / decay_span
        if self.clock is not None:
            done = tf.maximum(done, tf.cast(self.clock, tf.float32))
        decay = peak * tf.maximum(0.0, 1.0 - done)
        return tf.where(step < self.warmup_steps, warm, decay)

    def get_config(self):
        return {"peak_learning_rate": self.peak_learning_rate, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps}


@tf.keras.utils.register_keras_serializable(package="bertclf")
class FusedAdamW(tf.keras.optimizers.AdamW):
    """`tf_keras`' AdamW, each variable's Adam step one fused kernel, sparse gradients as dense.

    The update is the same (`tf_keras`' decoupled weight decay is kept as it is). Its own Adam
    step is about a dozen element-wise ops per variable, each a pass over the variable (the
    word-embedding table is the largest), where `ResourceApplyAdam` makes one. And its sparse
    path (for an embedding lookup's gradient) is not lazy either, momentum and decay reach
    every row, but it scatters into the two slots, which puts them in TensorFlow's copy-on-read
    mode: each later dense read of a slot copies it (docs/speed.md). Keras' legacy Adam ran this
    kernel too; the slots are read through `tf_keras`' private attributes, so requirements.txt pins tf-keras.

    `learning_rate_factors` ({variable-name prefix: factor}) scale the rate of the variables whose
    names start with a prefix: a freshly initialised head can learn faster than the pre-trained
    encoder under it. `layer_decay` below 1 is layer-wise learning-rate decay (Howard & Ruder 2018;
    ELECTRA): the lower layers, which hold the most general features, move less (`layer_factor`).
    """

    def __init__(self, *args, learning_rate_factors: dict[str, float] | None = None, layer_decay: float = 1.0,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.learning_rate_factors = {str(k): float(v) for k, v in (learning_rate_factors or {}).items()}
        self.layer_decay = float(layer_decay)
        self.encoder_layers = 0  # found in `build`, from the variables' names

    def build(self, var_list):
        super().build(var_list)
        indices = [layer_index(v.name) for v in var_list]
        self.encoder_layers = 1 + max((i for i in indices if i is not None), default=-1)

    def _factor(self, variable) -> float:
        name = variable.name
        factor = next((f for prefix, f in self.learning_rate_factors.items() if name.startswith(prefix)), 1.0)
        return factor * layer_factor(name, self.encoder_layers, self.layer_decay)

    def get_config(self):
        return {**super().get_config(), "learning_rate_factors": self.learning_rate_factors,
                "layer_decay": self.layer_decay}

    def update_step(self, gradient, variable):
        if isinstance(gradient, tf.IndexedSlices):
            gradient = tf.convert_to_tensor(gradient)
        if self.amsgrad:
            return super().update_step(gradient, variable)
        dtype = variable.dtype
        learning_rate = tf.cast(self.learning_rate, dtype) * self._factor(variable)
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        index = self._index_dict[self._var_key(variable)]
        return tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=self._momentums[index].handle, v=self._velocities[index].handle,
            beta1_power=tf.pow(beta_1, step), beta2_power=tf.pow(beta_2, step),
            lr=learning_rate, beta1=beta_1, beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype), grad=gradient)


_LAYER = re.compile(r"(?:^|/)layer_(\d+)/")


def layer_index(name: str) -> int | None:
    """The transformer layer a variable belongs to (`.../layer_3/...`, as in TF-Hub's BERT
    encoders and the offline one), else None."""
    match = _LAYER.search(name)
    return int(match.group(1)) if match else None


def layer_factor(name: str, layers: int, decay: float) -> float:
    """The learning-rate factor of variable `name` in an encoder of `layers` layers: decay ** (layers
    - 1 - i) in layer i (the top layer trains at the full rate), decay ** layers for the embeddings,
    1 for what is above the layers (pooler, head)."""
    if decay == 1.0 or not layers:
        return 1.0
    index = layer_index(name)
    if index is not None:
        return decay ** max(0, layers - 1 - index)
    return decay ** layers if "embedding" in name else 1.0


def create_optimizer(
    learning_rate: float,
    total_steps: int,
    warmup_fraction: float = 0.1,
    weight_decay: float = 0.01,
    clip_norm: float = 1.0,
    clock: tf.Variable | None = None,
    learning_rate_factors: dict[str, float] | None = None,
    warmup_steps: int | None = None,
    layer_decay: float = 1.0,
) -> tf.keras.optimizers.Optimizer:
    """Build inside `strategy.scope()`, like the model. `learning_rate_factors` and `layer_decay`:
    `FusedAdamW`'s; `warmup_steps` (default: `warmup_fraction` of the steps) when fewer steps are
    expected than planned.

    Keras compiles the AdamW updates with XLA itself when it sees a GPU; on CPUs compiling them
    bought nothing, so each variable's step runs as one fused TensorFlow kernel (`FusedAdamW`).
    """
    if warmup_steps is None:
        warmup_steps = int(round(total_steps * warmup_fraction))
    schedule = WarmupLinearDecay(learning_rate, total_steps, warmup_steps, clock)
    optimizer = FusedAdamW(
        learning_rate=schedule,
        weight_decay=weight_decay,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-6,
        global_clipnorm=clip_norm,
        learning_rate_factors=learning_rate_factors,
        layer_decay=layer_decay,
    )
    optimizer.exclude_from_weight_decay(var_names=NO_DECAY)
    return optimizer
