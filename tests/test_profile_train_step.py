"""tools/profile_train_step.py: reading op kernels from a profiler trace and adding them up by op type, layer and part."""

import pytest
from tensorflow.tsl.profiler.protobuf import xplane_pb2

from tools.profile_train_step import OUTSIDE, kernel_events, summarize

LAYERS = {"augment", "stem_conv", "stage1_block1", "stage1_mask", "stage1_mask_gate"}
# (event name, line, picoseconds) as TensorFlow's host profiler writes them for one step.
EVENTS = [
    ("StatefulPartitionedCall/keras_fer_1/stage1_block1_1/conv1_1/convolution:_MklNativeConv2D", "tf_Compute/1", 4e9),
    ("StatefulPartitionedCall/gradient_tape/keras_fer_1/stage1_block1_1/conv1_1/convolution/"
     "Conv2DBackpropFilter:_MklNativeConv2DBackpropFilter", "tf_Compute/2", 6e9),
    ("StatefulPartitionedCall/keras_fer_1/stage1_mask_1/down1/softmax:_MklSoftmax", "tf_Compute/1", 5e9),
    ("StatefulPartitionedCall/keras_fer_1/stage1_mask_gate_1/mul:Mul", "tf_Compute/2", 1e9),
    ("StatefulPartitionedCall/keras_fer_1/augment_1/GatherV2:GatherV2", "tf_Compute/1", 2e9),
    ("StatefulPartitionedCall/SGD/AssignSubVariableOp:AssignSubVariableOp", "tf_Compute/2", 2e9),
    # Not op kernels: the executor, tf.data and Python's own events.
    ("ExecutorState::Process", "tf_Compute/1", 50e9),
    ("Iterator::Root::Prefetch", "tf_data_iterator_get_next/3", 9e9),
    ("EagerLocalExecute: __inference_multi_step_on_iterator_24523", "python", 40e9),
]


def trace(events, plane_name="/host:CPU"):
    xspace = xplane_pb2.XSpace()
    plane = xspace.planes.add(name=plane_name)
    lines = {}
    for index, (name, line_name, picoseconds) in enumerate(events, start=1):
        plane.event_metadata[index].id = index
        plane.event_metadata[index].name = name
        if line_name not in lines:
            lines[line_name] = plane.lines.add(name=line_name)
        lines[line_name].events.add(metadata_id=index, duration_ps=int(picoseconds))
    return xspace


def test_only_op_kernels_are_read_with_their_type_and_seconds():
    events = list(kernel_events(trace(EVENTS)))
    assert sorted(op_type for _, op_type, _ in events) == sorted([
        "_MklNativeConv2D", "_MklNativeConv2DBackpropFilter", "_MklSoftmax", "Mul", "GatherV2", "AssignSubVariableOp"])
    assert sum(seconds for _, _, seconds in events) == pytest.approx(0.020)
    assert not list(kernel_events(trace(EVENTS, plane_name="/device:GPU:0")))


def test_kernels_add_up_by_layer_and_part_per_step_gradients_included():
    summary = summarize(kernel_events(trace(EVENTS)), "keras_fer", LAYERS, steps=2, top=3)
    assert summary["kernel_seconds_per_step"] == pytest.approx(0.010)
    by_layer = {row["name"]: row["seconds_per_step"] for row in summary["by_layer"]}
    # The block's forward and gradient kernels both count for it; suffixed scopes match the layer.
    assert by_layer == pytest.approx({"stage1_block1": 0.005, "stage1_mask": 0.0025, "stage1_mask_gate": 0.0005,
                                      "augment": 0.001, OUTSIDE: 0.001})
    by_part = {row["name"]: row["share"] for row in summary["by_part"]}
    assert by_part == pytest.approx({"backbone, stem and head": 0.5, "ECA-U-Net masks and gates": 0.3,
                                     "augmentation": 0.1, OUTSIDE: 0.1})
    assert [row["name"] for row in summary["by_op_type"]] == [
        "_MklNativeConv2DBackpropFilter", "_MklSoftmax", "_MklNativeConv2D"]  # the top 3, largest first


@pytest.mark.parametrize("labels, targets, outputs", [("fer2013", "labels", 7), ("ferplus8", "votes", 8)])
def test_a_step_is_profiled_with_the_configs_classes_and_targets(tmp_path, labels, targets, outputs):
    # A FERPlus config's head has 8 classes and its loss takes vote shares: the fixed batches must match both.
    from keras_fer import config as config_lib
    from tools.profile_train_step import profile

    config = config_lib.load_config("configs/quickstart.yaml", [
        f"data.labels={labels}", f"data.targets={targets}", "data.ferplus_path=fer2013new.csv",
        "training.batch_size=4", "model.input_size=32", "model.width=4"])
    model, wall = profile(config, warmup=1, steps=1, logdir=str(tmp_path))
    assert model.output_shape == (None, outputs)
    assert wall > 0


def test_an_image_folder_config_is_refused_naming_its_labels(tmp_path):
    from benchmarks import train_throughput
    from keras_fer import config as config_lib

    config = config_lib.load_config("configs/quickstart.yaml", ["data.labels=folders", f"data.source={tmp_path}"])
    with pytest.raises(ValueError, match="data.labels='folders'.*--set data.labels=fer2013"):
        train_throughput.compiled_model(config)
