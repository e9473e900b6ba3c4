"""The paper's network: ResNet34 whose four stages are refined by ECA-U-Net masks.

`build_model` assembles one functional Keras model from raw 48x48 gray faces (uint8 or float
in 0-255) to class probabilities: preprocessing layers, the backbone with its four fused
stages, global average pooling and a softmax head. `build_ensemble` averages several such
networks into one model.
"""

import argparse
import json
import math

import keras
from keras import layers

from keras_fer.layers import (
    BN_EPSILON,
    BN_MOMENTUM,
    AverageViews,
    BasicBlock,
    BatchNormalization,
    ECAUNetMask,
    FaceAugmentation,
    GrayscaleToRGB,
    MirrorViews,
    ResizeImages,
)

# ResNet34: basic blocks per stage; channels are width * 2**stage_index.
STAGE_BLOCKS = (3, 4, 6, 3)
# Stems: how the backbone turns the input image into the first stage's feature map, and by
# what factor it shrinks it. "imagenet" is ResNet34's (and the paper's); "conv3x3" keeps a
# 48-pixel face at full resolution, "conv3x3_s2" halves it, neither with a max-pool.
STEM_STRIDES = {"imagenet": 4, "conv3x3": 1, "conv3x3_s2": 2}
# Each stem's convolution kernel, its one weight of a shape of its own: stems of the same kernel
# share weights (keras_fer/training/initialization.py carries them from one to the other).
STEM_KERNELS = {"imagenet": 7, "conv3x3": 3, "conv3x3_s2": 3}
# Not stated in the paper: the common FER2013 choice of flips, small shifts and rotations.
DEFAULT_AUGMENTATION = {"flip": True, "shift": 0.1, "rotation_degrees": 10.0, "zoom": 0.1}
# The layer of a `build_ensemble` model that averages its members: `network_count` finds ensembles by it.
ENSEMBLE_AVERAGE_LAYER = "average_members"


def apply_stage(x, filters, blocks, stride, mask_depth, stage_name, mask_options):
    """One ResNet34 stage, optionally fused with its U-Net mask as F * (1 + W).

    Args:
        x: feature map (batch, H, W, C_in).
        filters: int, channels of the stage.
        blocks: int, basic blocks in the stage; the first one has `stride`.
        stride: int, 1 for the first stage, 2 for the others.
        mask_depth: int or None, depth of the U-Net mask; None for a plain stage.
        stage_name: str, prefix of every layer name, e.g. "stage2".
        mask_options: dict of keyword arguments for `ECAUNetMask`.
    Returns:
        (batch, H / stride, W / stride, filters).
    """
    for index in range(blocks):
        x = BasicBlock(filters, stride if index == 0 else 1, name=f"{stage_name}_block{index + 1}")(x)
    if mask_depth is None:
        return x
    mask = ECAUNetMask(mask_depth, name=f"{stage_name}_mask", **mask_options)(x)
    # The residual gate F * (1 + W) = F + F * W: an untrained mask cannot erase the features.
    gated = layers.Multiply(name=f"{stage_name}_mask_gate")([x, mask])
    return layers.Add(name=f"{stage_name}_fused")([x, gated])


def apply_stem(x, stem, width):
    """The backbone's stem: convolution, BN, ReLU and, for "imagenet", a max-pool.

    Args:
        x: images (batch, H, W, 3).
        stem: str, a key of `STEM_STRIDES`.
        width: int, channels of the stem's output (the first stage's width).
    Returns:
        (batch, H / s, W / s, width) with s = `STEM_STRIDES[stem]`.
    """
    # The imagenet stem's convolution halves the side and its max-pool halves it again.
    stride = 2 if stem == "imagenet" else STEM_STRIDES[stem]
    x = layers.Conv2D(width, STEM_KERNELS[stem], strides=stride, padding="same", use_bias=False, name="stem_conv")(x)
    x = BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    if stem == "imagenet":
        x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    return x


def stage_sizes(input_size, stem="imagenet"):
    """Side of each stage's feature map for a square input of `input_size` pixels.

    Example:
    >>> stage_sizes(224), stage_sizes(48, "conv3x3")
    ([56, 28, 14, 7], [48, 24, 12, 6])
    """
    side = math.ceil(input_size / STEM_STRIDES[stem])
    sizes = [side]
    for _ in STAGE_BLOCKS[1:]:
        sizes.append(math.ceil(sizes[-1] / 2))
    return sizes


def check_build_arguments(input_size, width, num_classes, mask_depths, mask_width, use_masks, dropout, stem,
                          augmentation=None, image_shape=(48, 48, 1), flip_average=False):
    """Raises ValueError, quoting the value, for `build_model` arguments it cannot build a network from.

    `build_model` calls it first; a training run calls it before it touches its directory.

    Example:
    >>> check_build_arguments(48, 0, 7, (4, 3, 2, 1), 0.5, True, 0.0, "conv3x3_s2")
    Traceback (most recent call last):
    ...
    ValueError: `width` must be a positive integer. Received: width=0
    """
    if stem not in STEM_STRIDES:
        raise ValueError(f"`stem` must be one of {', '.join(STEM_STRIDES)}. Received: stem={stem!r}")
    if not isinstance(input_size, int) or input_size < 8 * STEM_STRIDES[stem]:
        raise ValueError(
            f"`input_size` must be an integer >= {8 * STEM_STRIDES[stem]} with stem {stem!r}. "
            f"Received: input_size={input_size!r}"
        )
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"`width` must be a positive integer. Received: width={width!r}")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"`num_classes` must be an integer >= 2. Received: num_classes={num_classes!r}")
    mask_depths, image_shape = tuple(mask_depths), tuple(image_shape)
    if len(mask_depths) != len(STAGE_BLOCKS) or not all(isinstance(d, int) and d >= 1 for d in mask_depths):
        raise ValueError(
            f"`mask_depths` must be {len(STAGE_BLOCKS)} integers >= 1, one per stage. "
            f"Received: mask_depths={mask_depths}"
        )
    if isinstance(mask_width, bool) or not isinstance(mask_width, (int, float)) or not mask_width > 0:
        raise ValueError(f"`mask_width` must be a number > 0. Received: mask_width={mask_width!r}")
    if use_masks:
        for index, (side, depth) in enumerate(zip(stage_sizes(input_size, stem), mask_depths), start=1):
            if side % 2 ** (depth - 1):
                raise ValueError(
                    f"With stem {stem!r}, `input_size` {input_size} gives stage {index} a side of {side} "
                    f"pixels, which its depth-{depth} U-Net mask cannot pool {depth - 1} times exactly "
                    f"(it must be divisible by {2 ** (depth - 1)}). Received: input_size={input_size}, "
                    f"stem={stem!r}, mask_depths={mask_depths}"
                )
    if not isinstance(flip_average, bool):
        raise ValueError(f"`flip_average` must be True or False. Received: flip_average={flip_average!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout!r}")
    if len(image_shape) != 3 or image_shape[-1] not in (1, 3):
        raise ValueError(
            f"`image_shape` must be (height, width, 1 or 3). Received: image_shape={image_shape}"
        )
    unknown = set(augmentation or {}) - set(DEFAULT_AUGMENTATION) - {"seed"}
    if unknown:
        raise ValueError(
            f"Unknown `augmentation` keys {sorted(unknown)}; known: {sorted(DEFAULT_AUGMENTATION)} "
            f"and seed. Received: augmentation={augmentation}"
        )


def build_model(
    input_size=224,
    width=64,
    num_classes=7,
    mask_depths=(4, 3, 2, 1),
    mask_width=1.0,
    use_masks=True,
    use_eca=True,
    mask_activation="softmax",
    dropout=0.0,
    augmentation=DEFAULT_AUGMENTATION,
    include_preprocessing=True,
    image_shape=(48, 48, 1),
    eca_gamma=2,
    eca_b=1,
    stem="imagenet",
    flip_average=False,
    name="keras_fer",
):
    """Builds the ResNet34 + ECA-U-Net mask network as one functional Keras model.

    With `include_preprocessing`, the input is a batch of raw faces `image_shape` (uint8 or
    float, 0-255), and the model scales them to [0, 1], augments them in training only,
    resizes them to `input_size` and repeats a gray channel to RGB. Without it, the input is
    `(input_size, input_size, 3)` float, already scaled, for other datasets.

    Args:
        input_size: int, side of the square image the backbone sees. Every stage's side
            must be divisible by 2^(mask depth - 1) so that its U-Net pools exactly: with the
            "imagenet" stem a multiple of 32 does that. The paper uses 224.
        width: int, channels of the first stage (64 in ResNet34); all channels scale with it.
        num_classes: int, size of the softmax head.
        mask_depths: four ints, U-Net depth after each stage (paper: 4, 3, 2, 1).
        mask_width: float > 0, multiplier of every U-Net mask's channels: level i of the
            mask after a C-channel stage has round(C * 2^i * mask_width) (paper: 1).
        use_masks: bool, False gives a plain ResNet34.
        use_eca: bool, ECA after every U-Net encoder block; False gives the Residual Masking
            Network's masks.
        mask_activation: "softmax" over channels (paper) or "sigmoid".
        dropout: float in [0, 1), dropout before the head.
        augmentation: dict of `FaceAugmentation` options (flip, shift, rotation_degrees,
            zoom, seed), missing keys taking `FaceAugmentation`'s defaults; None or {} for
            none. Active only when the model is called with `training=True`.
        include_preprocessing: bool, whether the model starts from raw faces.
        image_shape: (height, width, channels) of the raw faces, channels 1 or 3.
        eca_gamma, eca_b: ECA's adaptive kernel-size constants.
        stem: str, "imagenet" (7x7 stride-2 convolution and 3x3 stride-2 max-pool, the
            paper's), "conv3x3" (3x3 stride-1 convolution: the first stage at the input's
            resolution) or "conv3x3_s2" (3x3 stride 2: half of it). See `STEM_STRIDES`.
        flip_average: bool, whether the network classifies each face and its mirror image and
            averages the two probability vectors (flip test-time augmentation inside the
            graph, so that every format it is exported to has it). It doubles the cost of a
            face. The shipped preset uses it; training does not need it.
        name: str, model name.

    Example:
    >>> import numpy as np
    >>> model = build_model(input_size=64, width=8)
    >>> tuple(model(np.zeros((2, 48, 48, 1), "uint8")).shape)
    (2, 7)
    """
    check_build_arguments(input_size, width, num_classes, mask_depths, mask_width, use_masks, dropout, stem,
                          augmentation, image_shape, flip_average)
    mask_depths, image_shape = tuple(mask_depths), tuple(image_shape)

    if include_preprocessing:
        inputs = keras.Input(image_shape, name="faces")
        x = layers.Rescaling(1.0 / 255.0, name="scale")(inputs)
        if augmentation:
            x = FaceAugmentation(**augmentation, name="augment")(x)
        if image_shape[:2] != (input_size, input_size):
            x = ResizeImages(input_size, name="resize")(x)
        if image_shape[-1] == 1:
            x = GrayscaleToRGB(name="gray_to_rgb")(x)
    else:
        inputs = keras.Input((input_size, input_size, 3), name="images")
        x = inputs
    if flip_average:
        x = MirrorViews(name="mirror_views")(x)

    x = apply_stem(x, stem, width)

    mask_options = dict(use_eca=use_eca, activation=mask_activation, eca_gamma=eca_gamma, eca_b=eca_b,
                        width=mask_width)
    for index, (blocks, depth) in enumerate(zip(STAGE_BLOCKS, mask_depths)):
        x = apply_stage(
            x,
            filters=width * 2**index,
            blocks=blocks,
            stride=1 if index == 0 else 2,
            mask_depth=depth if use_masks else None,
            stage_name=f"stage{index + 1}",
            mask_options=mask_options,
        )

    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    # float32 probabilities also under a mixed-precision policy.
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)
    if flip_average:
        outputs = AverageViews(dtype="float32", name="average_views")(outputs)
    return keras.Model(inputs, outputs, name=name)


def build_ensemble(members, name="keras_fer_ensemble"):
    """One functional model that averages the class probabilities of several networks.

    Networks that err on different faces are more accurate together than each alone: the
    FERPlus preset averages a stride-2 and a stride-1 network (docs/model_card_ferplus.md).
    Each member keeps its own preprocessing, so members may differ in stem and input size
    but must take the same raw faces and give the same classes.

    Args:
        members: list of two or more `keras.Model`s with equal input and output shapes and
            distinct names (a member's name is its layers' scope in the ensemble).
        name: str, model name.

    Example:
    >>> import numpy as np
    >>> members = [build_model(input_size=32, width=4, use_masks=False, name=f"member{index}")
    ...            for index in (1, 2)]
    >>> tuple(build_ensemble(members)(np.zeros((2, 48, 48, 1), "uint8")).shape)
    (2, 7)
    """
    members = list(members)
    if len(members) < 2:
        raise ValueError(f"An ensemble needs two or more members. Received: {len(members)} member(s)")
    names = [member.name for member in members]
    if len(set(names)) != len(names):
        raise ValueError(f"Every member needs a name of its own. Received: member names {names}")
    for member in members[1:]:
        if (member.input_shape, member.output_shape) != (members[0].input_shape, members[0].output_shape):
            raise ValueError(
                f"Every member must map the same faces to the same classes. Received: {members[0].name!r} "
                f"{members[0].input_shape} -> {members[0].output_shape}, {member.name!r} {member.input_shape} "
                f"-> {member.output_shape}"
            )
    inputs = keras.Input(members[0].input_shape[1:], name="faces")
    outputs = layers.Average(dtype="float32", name=ENSEMBLE_AVERAGE_LAYER)([member(inputs) for member in members])
    return keras.Model(inputs, outputs, name=name)


def network_count(model):
    """How many networks `model` runs: the members of a `build_ensemble` model, else 1.

    Args:
        model: a `keras.Model` of `build_model` or `build_ensemble`.
    Returns:
        int, at least 1.

    Example:
    >>> members = [build_model(input_size=32, width=4, use_masks=False, name=f"member{index}")
    ...            for index in (1, 2)]
    >>> network_count(build_ensemble(members)), network_count(members[0])
    (2, 1)
    """
    if ENSEMBLE_AVERAGE_LAYER not in {layer.name for layer in model.layers}:
        return 1
    return sum(isinstance(layer, keras.Model) for layer in model.layers)


def as_float32(model):
    """`model` if every layer computes in float32, else a float32 copy of it with the same weights.

    A model trained under `mixed_bfloat16` keeps that policy in its `.keras` file, and the
    TFLite converter takes float32 graphs only (its bfloat16 ops are "neither a custom op nor a
    flex op"). The copy computes the same function without the bfloat16 rounding.

    Example:
    >>> keras.mixed_precision.set_global_policy("mixed_bfloat16")
    >>> model = build_model(input_size=32, width=4, use_masks=False)
    >>> keras.mixed_precision.set_global_policy("float32")
    >>> as_float32(model).get_layer("stem_conv").compute_dtype
    'float32'
    """
    if all(layer.dtype_policy.compute_dtype == "float32" for layer in model.layers):
        return model
    copy = keras.Model.from_config(_float32_policies(model.get_config()))
    copy.set_weights(model.get_weights())
    return copy


def _float32_policies(config):
    """A layer or model config with every dtype policy, and every tensor dtype, made float32."""
    if isinstance(config, dict):
        if config.get("class_name") == "DTypePolicy":
            return {**config, "config": {**config["config"], "name": "float32"}}
        return {key: ("float32" if key == "dtype" and value in ("bfloat16", "float16") else _float32_policies(value))
                for key, value in config.items()}
    if isinstance(config, list):
        return [_float32_policies(item) for item in config]
    return config


def stage_outputs(model):
    """Names of the layers whose outputs are the four stage outputs (fused where masked)."""
    layer_names = {layer.name for layer in model.layers}
    names = []
    for index, blocks in enumerate(STAGE_BLOCKS, start=1):
        fused = f"stage{index}_fused"
        names.append(fused if fused in layer_names else f"stage{index}_block{blocks}")
    return names


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m keras_fer.models",
        description="Build the ResNet34 + ECA-U-Net network and print its structure and size.",
    )
    parser.add_argument("--input-size", type=int, default=224, help="backbone input side (default 224, the paper)")
    parser.add_argument("--width", type=int, default=64, help="first-stage channels (default 64, the paper)")
    parser.add_argument("--stem", choices=tuple(STEM_STRIDES), default="imagenet",
                        help="imagenet (7x7/2 + max-pool, the paper's; default), conv3x3 or conv3x3_s2")
    parser.add_argument("--num-classes", type=int, default=7)
    parser.add_argument("--mask-depths", type=int, nargs=4, default=(4, 3, 2, 1), metavar="D")
    parser.add_argument("--mask-width", type=float, default=1.0,
                        help="multiplier of the U-Net masks' channels (default 1, the paper)")
    parser.add_argument("--no-masks", action="store_true", help="plain ResNet34")
    parser.add_argument("--no-eca", action="store_true", help="masks without ECA (Residual Masking Network)")
    parser.add_argument("--summary", action="store_true", help="print the layer-by-layer summary")
    parser.add_argument("--expand", action="store_true", help="with --summary, expand nested layers")
    parser.add_argument("--json", action="store_true", help="print the sizes as JSON")
    args = parser.parse_args(argv)
    model = build_model(
        input_size=args.input_size,
        width=args.width,
        num_classes=args.num_classes,
        mask_depths=args.mask_depths,
        mask_width=args.mask_width,
        use_masks=not args.no_masks,
        use_eca=not args.no_eca,
        stem=args.stem,
    )
    if args.summary:
        model.summary(expand_nested=args.expand, line_length=120)
    report = {
        "input_shape": list(model.input_shape),
        "output_shape": list(model.output_shape),
        "stage_outputs": {name: list(model.get_layer(name).output.shape[1:]) for name in stage_outputs(model)},
        "parameters": model.count_params(),
    }
    if args.json:
        print(json.dumps(report))
    else:
        for stage, shape in report["stage_outputs"].items():
            print(f"{stage}: {'x'.join(map(str, shape))}")
        print(f"input {tuple(model.input_shape)} -> output {tuple(model.output_shape)}")
        print(f"parameters: {report['parameters']:,} ({report['parameters'] / 1e6:.1f} M)")


if __name__ == "__main__":
    main()
