"""The serving contract: request bodies, both signatures through TensorFlow's own SavedModel tools
(`tf.saved_model.load` and the `saved_model_cli` program), and the REST and gRPC clients against
in-process stand-ins for TF Serving (the real server cannot be installed here).
"""

import base64
import http.server
import json
import subprocess
import threading
from concurrent import futures

import numpy as np
import pytest
from test_export import tiny_export

from keras_fer.data import CLASS_NAMES, synthetic_faces
from keras_fer.export import encode_png
from keras_fer.classifiers import KerasClassifier
from keras_fer.serving import (
    ENCODED_INPUT,
    ENCODED_SIGNATURE,
    OUTPUT_KEYS,
    PIXELS_INPUT,
    PIXELS_SIGNATURE,
    GrpcClient,
    RestClient,
    ServingError,
    grpc_predict_request,
    parse_rest_response,
    rest_predict_body,
    rest_predict_url,
)

FACES = synthetic_faces(6, seed=42)[0]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    paths = tiny_export(tmp_path_factory)
    paths["reference"] = KerasClassifier(paths["keras"]).classify(FACES)
    return paths


@pytest.fixture(scope="module")
def signatures(exported):
    import tensorflow as tf

    return tf.saved_model.load(exported["saved_model"]).signatures


def tensors_from_rest_body(body):
    """The input tensors TF Serving builds from a columnar REST body: base64 objects -> bytes."""
    (key, values), = body["inputs"].items()
    if isinstance(values[0], dict):
        return key, np.array([base64.b64decode(value["b64"]) for value in values], dtype=object)
    return key, np.array(values, np.uint8)


def assert_matches_keras(outputs, reference):
    np.testing.assert_allclose(np.asarray(outputs["probabilities"]), reference, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(outputs["class_index"]), np.argmax(reference, -1))
    names = [name.decode() if isinstance(name, bytes) else str(name) for name in outputs["class_name"]]
    assert names == [CLASS_NAMES[i] for i in np.argmax(reference, -1)]


def test_rest_bodies_are_what_tf_serving_expects():
    body = rest_predict_body(images=FACES[:2])
    assert body["signature_name"] == PIXELS_SIGNATURE
    assert np.array_equal(np.array(body["inputs"][PIXELS_INPUT]), FACES[:2])
    encoded = encode_png(FACES[:2])
    body = json.loads(json.dumps(rest_predict_body(encoded_images=encoded)))
    assert body == {
        "signature_name": ENCODED_SIGNATURE,
        "inputs": {ENCODED_INPUT: [{"b64": base64.b64encode(png).decode()} for png in encoded]},
    }
    assert rest_predict_url("host", 8501, "fer", 3) == "http://host:8501/v1/models/fer/versions/3:predict"
    with pytest.raises(ValueError, match="exactly one"):
        rest_predict_body()
    with pytest.raises(ValueError, match="uint8"):
        rest_predict_body(images=FACES.astype(np.float32))


@pytest.mark.parametrize("encoded", [False, True], ids=["pixels", "base64"])
def test_rest_body_through_the_savedmodel_loader(exported, signatures, encoded):
    body = rest_predict_body(**({"encoded_images": encode_png(FACES)} if encoded else {"images": FACES}))
    key, tensor = tensors_from_rest_body(json.loads(json.dumps(body)))
    outputs = signatures[body["signature_name"]](**{key: tensor})
    assert_matches_keras({k: v.numpy() for k, v in outputs.items()}, exported["reference"])


def saved_model_cli(*args):
    result = subprocess.run(["saved_model_cli", *args], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_saved_model_cli_lists_both_signatures(exported):
    shown = saved_model_cli("show", "--dir", exported["saved_model"], "--all")
    for signature, key, dtype in ((PIXELS_SIGNATURE, PIXELS_INPUT, "DT_UINT8"),
                                  (ENCODED_SIGNATURE, ENCODED_INPUT, "DT_STRING")):
        section = shown.split(f"signature_def['{signature}']")[1].split("signature_def[")[0]
        assert f"inputs['{key}'] tensor_info:\n        dtype: {dtype}" in section
        for output in OUTPUT_KEYS:
            assert f"outputs['{output}']" in section


@pytest.mark.parametrize("encoded", [False, True], ids=["pixels", "base64"])
def test_saved_model_cli_runs_the_rest_body(exported, tmp_path, encoded):
    """`saved_model_cli run` with the inputs of the exact body RestClient sends: the pixel lists
    as an `--input_exprs` Python literal, the base64-decoded bytes as an `--inputs` .npy file."""
    body = rest_predict_body(**({"encoded_images": encode_png(FACES)} if encoded else {"images": FACES}))
    body = json.loads(json.dumps(body))
    if encoded:
        key, tensor = tensors_from_rest_body(body)
        np.save(tmp_path / "input.npy", tensor, allow_pickle=True)
        feed = ["--inputs", f"{key}={tmp_path / 'input.npy'}"]
    else:
        feed = ["--input_exprs", f"{PIXELS_INPUT}={body['inputs'][PIXELS_INPUT]}"]
    saved_model_cli(
        "run", "--dir", exported["saved_model"], "--tag_set", "serve", "--signature_def", body["signature_name"],
        *feed, "--outdir", str(tmp_path / "out"),
    )
    outputs = {name: np.load(tmp_path / "out" / f"{name}.npy", allow_pickle=True) for name in OUTPUT_KEYS}
    assert_matches_keras(outputs, exported["reference"])


class FakeRestServer(http.server.ThreadingHTTPServer):
    """Answers `POST /v1/models/NAME:predict` with the SavedModel, as TF Serving's REST API does."""

    def __init__(self, signatures, model_name):
        self.signatures = signatures
        self.model_name = model_name
        super().__init__(("127.0.0.1", 0), FakeRestHandler)


class FakeRestHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        server = self.server
        if self.path != f"/v1/models/{server.model_name}:predict":
            self.reply(404, {"error": f"Servable not found for request: {self.path}"})
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        key, tensor = tensors_from_rest_body(body)
        outputs = server.signatures[body["signature_name"]](**{key: tensor})
        self.reply(200, {"outputs": {
            "probabilities": outputs["probabilities"].numpy().tolist(),
            "class_index": outputs["class_index"].numpy().tolist(),
            "class_name": [name.decode() for name in outputs["class_name"].numpy()],
        }})

    def reply(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_rest_client_round_trip(exported, signatures):
    server = FakeRestServer(signatures, "fer")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        client = RestClient("127.0.0.1", port, "fer")
        assert_matches_keras(client.predict(images=FACES), exported["reference"])
        assert_matches_keras(client.predict(encoded_images=encode_png(FACES)), exported["reference"])
        with pytest.raises(ServingError, match="HTTP 404.*Servable not found"):
            RestClient("127.0.0.1", port, "other").predict(images=FACES)
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(ServingError, match="TF Serving error: bad"):
        parse_rest_response({"error": "bad"})


def test_grpc_client_round_trip(exported, signatures):
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    class FakePredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
        """TF Serving's Predict: the request's tensors into the named signature."""

        def Predict(self, request, context):
            inputs = {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
            outputs = signatures[request.model_spec.signature_name](**inputs)
            response = predict_pb2.PredictResponse()
            for key, value in outputs.items():
                response.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
            return response

    request = grpc_predict_request("fer", encoded_images=encode_png(FACES[:2]), version=2)
    assert (request.model_spec.name, request.model_spec.signature_name, request.model_spec.version.value) == (
        "fer", ENCODED_SIGNATURE, 2)
    assert request.inputs[ENCODED_INPUT].dtype == tf.string.as_datatype_enum

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(FakePredictionService(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        client = GrpcClient("127.0.0.1", port, "fer")
        assert_matches_keras(client.predict(images=FACES), exported["reference"])
        assert_matches_keras(client.predict(encoded_images=encode_png(FACES)), exported["reference"])
        client.close()
    finally:
        server.stop(None)
    with pytest.raises(ServingError, match="UNAVAILABLE"):
        GrpcClient("127.0.0.1", port, "fer", timeout=5).predict(images=FACES)
