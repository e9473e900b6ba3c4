"""Custom Keras layers of the network: ECA, the residual basic block, the ECA-U-Net mask.

Every layer computes with `keras.ops` so it runs on any Keras backend (batch normalization
adds TensorFlow's fused kernel for training on that backend), implements `get_config` and is
registered, so a saved `.keras` file loads without `custom_objects`.
"""

import math

import keras
from keras import layers, ops

PACKAGE = "keras_fer"
BN_EPSILON = 1e-5
# PyTorch's BatchNorm momentum 0.1, written the Keras way: short runs get usable statistics.
BN_MOMENTUM = 0.9


def eca_kernel_size(channels, gamma=2, b=1):
    """Kernel size of ECA's channel convolution for `channels` channels.

    t = int(|(log2(C) + b) / gamma|), made odd by adding one when even (ECA reference code).

    Example:
    >>> [eca_kernel_size(c) for c in (64, 128, 256, 512, 1024, 2048)]
    [3, 5, 5, 5, 5, 7]
    """
    if channels < 1:
        raise ValueError(f"`channels` must be a positive integer. Received: channels={channels}")
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


@keras.saving.register_keras_serializable(package=PACKAGE)
class ECA(layers.Layer):
    """Efficient channel attention (Wang et al., CVPR 2020).

    Global average pool over H, W; a 1-D convolution across channels (one filter, kernel
    `kernel_size`, no bias); sigmoid; rescale the input channel-wise.

    Shapes: (batch, H, W, C) -> (batch, H, W, C).

    Args:
        gamma: float, ECA's gamma in the adaptive kernel size. Defaults to 2.
        b: float, ECA's b in the adaptive kernel size. Defaults to 1.

    The kernel size is chosen from C when the layer is built and exposed as `kernel_size`.
    """

    def __init__(self, gamma=2, b=1, **kwargs):
        super().__init__(**kwargs)
        self.gamma = gamma
        self.b = b
        self.kernel_size = None

    def build(self, input_shape):
        channels = input_shape[-1]
        self.kernel_size = eca_kernel_size(channels, self.gamma, self.b)
        self.channel_conv = layers.Conv1D(
            1,
            self.kernel_size,
            padding="same",
            use_bias=False,
            dtype=self.dtype_policy,
            name="channel_conv",
        )
        self.channel_conv.build((None, channels, 1))

    def call(self, inputs):
        pooled = ops.mean(inputs, axis=(1, 2))  # (batch, C)
        weights = self.channel_conv(ops.expand_dims(pooled, -1))  # (batch, C, 1)
        weights = ops.sigmoid(weights[:, None, None, :, 0])  # (batch, 1, 1, C)
        return inputs * weights

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"gamma": self.gamma, "b": self.b})
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class BatchNormalization(layers.BatchNormalization):
    """`keras.layers.BatchNormalization` whose training step uses TensorFlow's fused kernel.

    Keras 3 normalizes a batch with separate moment, subtract, multiply and cast ops. On the
    TensorFlow backend, training calls on NHWC feature maps run instead as one
    `FusedBatchNormV3` op (oneDNN on a CPU, cuDNN on a GPU), which computes the same function:
    the batch is normalized by its biased variance, and the moving statistics get the same
    update as Keras' (momentum, biased variance). Measured on the 2-core CPU: the
    `configs/fer2013_cpu.yaml` training step is 1.5 times faster. Inference, other backends
    and other settings (masks, renorm, synchronized, another axis or rank) are Keras' own code.

    Under a `tf.distribute` strategy with several replicas, each replica normalizes with its own
    share of the batch, as in Keras, but the moving statistics are averaged over the replicas
    at every update, so that every replica and worker holds the same model. (Keras 3 creates
    them without an aggregation: two workers of `tools/multi_worker_check.py` ended with the
    same trained weights and different moving statistics, each the average of its own shares.)

    Args and weights are those of `keras.layers.BatchNormalization`, so weights move freely
    between the two classes.

    Example:
    >>> import numpy as np
    >>> bn = BatchNormalization()
    >>> y = bn(np.random.default_rng(0).normal(3.0, 2.0, (8, 4, 4, 2)).astype("float32"), training=True)
    >>> bool(abs(float(keras.ops.mean(y))) < 1e-4)
    True
    """

    def call(self, inputs, training=None, mask=None):
        if not self._fused_applies(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf  # only on the TensorFlow backend

        outputs, mean, bessel_variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, ops.cast(self.gamma, "float32"), ops.cast(self.beta, "float32"),
            epsilon=self.epsilon, data_format="NHWC", is_training=True,
        )
        count = ops.cast(ops.size(inputs) // ops.shape(inputs)[-1], "float32")
        # The kernel returns the unbiased variance; Keras' moving statistic uses the biased one.
        variance = bessel_variance * (count - 1.0) / count
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(
            self.moving_variance * self.momentum + variance * (1.0 - self.momentum)
        )
        return ops.cast(outputs, self.compute_dtype)

    def add_weight(self, *args, **kwargs):
        # The only non-trainable weights are the moving statistics; see the class docstring.
        if not kwargs.get("trainable", True):
            kwargs.setdefault("aggregation", "mean")
        return super().add_weight(*args, **kwargs)

    def _fused_applies(self, inputs, training, mask):
        return (
            training
            and self.trainable
            and mask is None
            and keras.backend.backend() == "tensorflow"
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and self.center
            and self.scale
            and not self.synchronized
            and not self.renorm
        )


@keras.saving.register_keras_serializable(package=PACKAGE)
class BasicBlock(layers.Layer):
    """ResNet34's residual basic block.

    conv3x3(stride) - BN - ReLU - conv3x3 - BN, plus a shortcut (identity, or 1x1 conv with
    stride + BN where the channel count or stride changes), add, ReLU.

    Shapes: (batch, H, W, C_in) -> (batch, H / stride, W / stride, filters).

    Args:
        filters: int, output channels.
        stride: int, stride of the first convolution and of the shortcut. Defaults to 1.
    """

    def __init__(self, filters, stride=1, **kwargs):
        super().__init__(**kwargs)
        if filters < 1 or stride < 1:
            raise ValueError(
                f"`filters` and `stride` must be positive. Received: filters={filters}, stride={stride}"
            )
        self.filters = filters
        self.stride = stride
        conv = dict(padding="same", use_bias=False, dtype=self.dtype_policy)
        bn = dict(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, dtype=self.dtype_policy)
        self.conv1 = layers.Conv2D(filters, 3, strides=stride, name="conv1", **conv)
        self.bn1 = BatchNormalization(name="bn1", **bn)
        self.conv2 = layers.Conv2D(filters, 3, name="conv2", **conv)
        self.bn2 = BatchNormalization(name="bn2", **bn)
        # The projection shortcut exists only where the shape changes; that is known at build.
        self.shortcut_conv = layers.Conv2D(filters, 1, strides=stride, name="shortcut_conv", **conv)
        self.shortcut_bn = BatchNormalization(name="shortcut_bn", **bn)
        self.projects = None

    def build(self, input_shape):
        self.projects = input_shape[-1] != self.filters or self.stride != 1
        self.conv1.build(input_shape)
        inner_shape = self.conv1.compute_output_shape(input_shape)
        self.bn1.build(inner_shape)
        self.conv2.build(inner_shape)
        self.bn2.build(inner_shape)
        if self.projects:
            self.shortcut_conv.build(input_shape)
            self.shortcut_bn.build(inner_shape)
        else:
            self.shortcut_conv = self.shortcut_bn = None

    def call(self, inputs, training=None):
        x = ops.relu(self.bn1(self.conv1(inputs), training=training))
        x = self.bn2(self.conv2(x), training=training)
        shortcut = inputs
        if self.projects:
            shortcut = self.shortcut_bn(self.shortcut_conv(inputs), training=training)
        return ops.relu(x + shortcut)

    def compute_output_shape(self, input_shape):
        return self.conv1.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "stride": self.stride})
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class ECAUNetMask(layers.Layer):
    """U-Net mask branch of any depth with ECA after every encoder block.

    For an input with C channels and depth d:
    - encoder: d basic blocks of C_i = round(C * 2^i * width) channels (i = 1..d), each
      followed by ECA, with a 2x2 max pool between consecutive blocks;
    - decoder: for i = d-1 .. 1, transposed conv 2x2/2 (C_(i+1) -> C_i) + BN + ReLU,
      concatenation with encoder block i, basic block 2 C_i -> C_i;
    - head: basic block C_1 -> C, then softmax over channels (or sigmoid) at every pixel.

    With the paper's `width` 1, C_i = C * 2^i. Every convolution of the mask has its cost
    scale with `width` squared, except the head's first one.

    Shapes: (batch, H, W, C) -> (batch, H, W, C); H and W must be divisible by 2^(d-1).

    Args:
        depth: int >= 1, the number of encoder blocks.
        use_eca: bool, ECA after every encoder block; False gives the Residual Masking
            Network's plain U-Net. Defaults to True.
        activation: "softmax" (over channels, the paper) or "sigmoid". Defaults to "softmax".
        eca_gamma, eca_b: ECA's adaptive kernel-size constants. Default to 2 and 1.
        width: float > 0, multiplier of the encoder's and decoder's channels. Defaults to 1
            (the paper).
    """

    def __init__(self, depth, use_eca=True, activation="softmax", eca_gamma=2, eca_b=1, width=1.0, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"`depth` must be an integer >= 1. Received: depth={depth}")
        if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
            raise ValueError(f"`width` must be a number > 0. Received: width={width!r}")
        if activation not in ("softmax", "sigmoid"):
            raise ValueError(
                f'`activation` must be "softmax" or "sigmoid". Received: activation={activation!r}'
            )
        self.depth = depth
        self.use_eca = use_eca
        self.activation = activation
        self.eca_gamma = eca_gamma
        self.eca_b = eca_b
        self.width = width

    def level_channels(self, channels, level):
        """Channels of encoder (and decoder) level `level` (1..depth) for a C-channel input."""
        return max(1, round(channels * 2**level * self.width))

    def build(self, input_shape):
        _, height, width, channels = input_shape
        factor = 2 ** (self.depth - 1)
        for size in (height, width):
            if size is not None and size % factor:
                raise ValueError(
                    f"{self.name}: a U-Net of depth {self.depth} pools {self.depth - 1} times and "
                    f"needs height and width divisible by {factor}. Received spatial size "
                    f"{height}x{width} (input shape {tuple(input_shape)}). Choose an input size "
                    "that is a multiple of 32 or a smaller mask depth."
                )
        policy = self.dtype_policy
        self.encoder_blocks = []
        self.encoder_ecas = []
        shape = tuple(input_shape)
        skip_shapes = []
        for i in range(1, self.depth + 1):
            if i > 1:
                shape = (shape[0], shape[1] and shape[1] // 2, shape[2] and shape[2] // 2, shape[3])
            block = BasicBlock(self.level_channels(channels, i), dtype=policy, name=f"encoder{i}")
            block.build(shape)
            shape = tuple(block.compute_output_shape(shape))
            self.encoder_blocks.append(block)
            if self.use_eca:
                eca = ECA(self.eca_gamma, self.eca_b, dtype=policy, name=f"encoder{i}_eca")
                eca.build(shape)
                self.encoder_ecas.append(eca)
            skip_shapes.append(shape)
        self.decoder_ups = []
        self.decoder_bns = []
        self.decoder_blocks = []
        for i in range(self.depth - 1, 0, -1):
            up = layers.Conv2DTranspose(
                self.level_channels(channels, i), 2, strides=2, use_bias=False, dtype=policy, name=f"decoder{i}_up"
            )
            up.build(shape)
            shape = tuple(up.compute_output_shape(shape))
            bn = BatchNormalization(
                epsilon=BN_EPSILON, momentum=BN_MOMENTUM, dtype=policy, name=f"decoder{i}_up_bn"
            )
            bn.build(shape)
            shape = shape[:3] + (shape[3] + skip_shapes[i - 1][3],)
            block = BasicBlock(self.level_channels(channels, i), dtype=policy, name=f"decoder{i}")
            block.build(shape)
            shape = tuple(block.compute_output_shape(shape))
            self.decoder_ups.append(up)
            self.decoder_bns.append(bn)
            self.decoder_blocks.append(block)
        self.head = BasicBlock(channels, dtype=policy, name="head")
        self.head.build(shape)

    def call(self, inputs, training=None):
        x = inputs
        skips = []
        for i, block in enumerate(self.encoder_blocks):
            if i > 0:
                x = ops.max_pool(x, pool_size=2, strides=2)
            x = block(x, training=training)
            if self.use_eca:
                x = self.encoder_ecas[i](x)
            skips.append(x)
        for up, bn, block, skip in zip(
            self.decoder_ups, self.decoder_bns, self.decoder_blocks, reversed(skips[:-1])
        ):
            x = ops.relu(bn(up(x), training=training))
            x = block(ops.concatenate([x, skip], axis=-1), training=training)
        x = self.head(x, training=training)
        if self.activation == "softmax":
            return ops.softmax(x, axis=-1)
        return ops.sigmoid(x)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "depth": self.depth,
                "use_eca": self.use_eca,
                "activation": self.activation,
                "eca_gamma": self.eca_gamma,
                "eca_b": self.eca_b,
                "width": self.width,
            }
        )
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class GrayscaleToRGB(layers.Layer):
    """Repeats a single gray channel three times.

    Shapes: (batch, H, W, 1) -> (batch, H, W, 3).
    """

    def call(self, inputs):
        return ops.concatenate([inputs, inputs, inputs], axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (3,)


@keras.saving.register_keras_serializable(package=PACKAGE)
class MirrorViews(layers.Layer):
    """Appends each image's mirror image to the batch: the views that `AverageViews` averages.

    Shapes: (batch, H, W, C) -> (2 * batch, H, W, C), the images first, then their mirrors in
    the same order.

    Example:
    >>> import numpy as np
    >>> keras.ops.convert_to_numpy(MirrorViews()(np.array([[[[1.0], [2.0]]]])))[:, 0, :, 0].tolist()
    [[1.0, 2.0], [2.0, 1.0]]
    """

    def call(self, inputs):
        return ops.concatenate([inputs, ops.flip(inputs, axis=2)], axis=0)

    def compute_output_shape(self, input_shape):
        batch = input_shape[0]
        return (None if batch is None else 2 * batch,) + tuple(input_shape[1:])


@keras.saving.register_keras_serializable(package=PACKAGE)
class AverageViews(layers.Layer):
    """The mean of the two halves of a batch that `MirrorViews` doubled.

    Shapes: (2 * batch, ...) -> (batch, ...).

    Example:
    >>> import numpy as np
    >>> keras.ops.convert_to_numpy(AverageViews()(np.array([[0.25, 0.75], [0.75, 0.25]]))).tolist()
    [[0.5, 0.5]]
    """

    def call(self, inputs):
        half = ops.shape(inputs)[0] // 2
        return (inputs[:half] + inputs[half:]) / 2

    def compute_output_shape(self, input_shape):
        batch = input_shape[0]
        return (None if batch is None else batch // 2,) + tuple(input_shape[1:])


def mirror_into_range(coordinate, size):
    """Folds coordinates into [0, size - 1] by mirroring about the edge pixels."""
    period = 2.0 * (size - 1)
    folded = ops.mod(ops.abs(coordinate), period)
    return ops.where(folded > size - 1, period - folded, folded)


def bilinear_sample(images, rows, cols):
    """Samples `images` at fractional positions with bilinear interpolation.

    A gather on the flattened images, so it compiles under XLA and needs no static batch size
    (`keras.ops.image.map_coordinates` needs one on TensorFlow).

    Args:
        images: (batch, H, W, C) float.
        rows, cols: (batch, H, W, 1) source positions in pixels; out-of-range positions are
            mirrored back into the image.
    Returns:
        (batch, H, W, C).
    """
    height, width, channels = images.shape[1:]
    rows = mirror_into_range(rows, height)
    cols = mirror_into_range(cols, width)
    top, left = ops.floor(rows), ops.floor(cols)
    row_weight, col_weight = rows - top, cols - left
    top, left = ops.cast(top, "int32"), ops.cast(left, "int32")
    bottom, right = ops.minimum(top + 1, height - 1), ops.minimum(left + 1, width - 1)
    flat = ops.reshape(images, (-1, height * width * channels))
    channel = ops.reshape(ops.arange(channels, dtype="int32"), (1, 1, 1, channels))

    def pixels(r, c):
        index = ops.reshape((r * width + c) * channels + channel, (-1, height * width * channels))
        return ops.reshape(ops.take_along_axis(flat, index, axis=1), (-1, height, width, channels))

    upper = pixels(top, left) * (1.0 - col_weight) + pixels(top, right) * col_weight
    lower = pixels(bottom, left) * (1.0 - col_weight) + pixels(bottom, right) * col_weight
    return upper * (1.0 - row_weight) + lower * row_weight


@keras.saving.register_keras_serializable(package=PACKAGE)
class FaceAugmentation(layers.Layer):
    """Random horizontal flip, rotation, zoom and shift of faces, in training only.

    One random affine map per image, sampled with bilinear interpolation and mirrored
    borders. Written with `keras.ops` (a gather, no image-transform kernel) rather than
    Keras' random image layers, for two reasons: those layers mark themselves as not
    XLA-compilable, which turns `jit_compile` off for the whole model (on JAX that means
    eager, op-by-op training), and their `training=True` default makes a plain `model(x)`
    random. This layer is the identity unless called with `training=True` (as `model.fit`
    does), which keeps `model(x)`, `predict`, SavedModel and TFLite deterministic.

    Shapes: (batch, H, W, C) -> (batch, H, W, C).

    Args:
        flip: bool, flip half of the images left to right.
        shift: float in [0, 1), largest translation as a fraction of height and width.
        rotation_degrees: float in [0, 180], largest rotation either way, in degrees.
        zoom: float in [0, 1), largest zoom in or out as a fraction of the size.
        seed: int or None, seed of the random draws.
    """

    def __init__(self, flip=True, shift=0.1, rotation_degrees=10.0, zoom=0.1, seed=None, **kwargs):
        super().__init__(**kwargs)
        for key, value in (("shift", shift), ("zoom", zoom)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"`{key}` must be in [0, 1). Received: {key}={value!r}")
        if not 0.0 <= rotation_degrees <= 180.0:
            raise ValueError(
                f"`rotation_degrees` must be in [0, 180]. Received: rotation_degrees={rotation_degrees!r}"
            )
        self.flip = flip
        self.shift = shift
        self.rotation_degrees = rotation_degrees
        self.zoom = zoom
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        if not training or not (self.flip or self.shift or self.rotation_degrees or self.zoom):
            return inputs
        batch = ops.shape(inputs)[0]
        height, width, channels = inputs.shape[1:]

        def uniform(low, high):
            return keras.random.uniform((batch, 1, 1, 1), low, high, seed=self.seed_generator)

        angle = uniform(-1.0, 1.0) * (self.rotation_degrees * math.pi / 180.0)
        scale = uniform(1.0 - self.zoom, 1.0 + self.zoom)
        shift_rows = uniform(-self.shift, self.shift) * height
        shift_cols = uniform(-self.shift, self.shift) * width
        mirror = ops.where(uniform(0.0, 1.0) < 0.5, -1.0, 1.0) if self.flip else 1.0

        # Output pixel (i, j) reads the input at the rotated, scaled, shifted and mirrored
        # position around the image centre.
        rows = ops.reshape(ops.arange(height, dtype="float32") - (height - 1) / 2.0, (1, height, 1, 1))
        cols = ops.reshape(ops.arange(width, dtype="float32") - (width - 1) / 2.0, (1, 1, width, 1))
        cols = cols * mirror
        cos, sin = ops.cos(angle) / scale, ops.sin(angle) / scale
        source_rows = cos * rows - sin * cols + (height - 1) / 2.0 + shift_rows
        source_cols = sin * rows + cos * cols + (width - 1) / 2.0 + shift_cols
        warped = bilinear_sample(ops.cast(inputs, "float32"), source_rows, source_cols)
        return ops.cast(warped, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "flip": self.flip,
                "shift": self.shift,
                "rotation_degrees": self.rotation_degrees,
                "zoom": self.zoom,
                "seed": self.seed,
            }
        )
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class ResizeImages(layers.Layer):
    """Bilinear resize to a square `size` x `size`.

    Used instead of `keras.layers.Resizing`, whose `training=True` call default leaks into
    the call context: in `model(x)` every BatchNormalization after it then ran in training
    mode (Keras 3.15).

    Shapes: (batch, H, W, C) -> (batch, size, size, C).

    Args:
        size: int, output height and width.
    """

    def __init__(self, size, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"`size` must be a positive integer. Received: size={size!r}")
        self.size = size

    def call(self, inputs):
        return ops.image.resize(inputs, (self.size, self.size), interpolation="bilinear")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.size, self.size, input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update({"size": self.size})
        return config
