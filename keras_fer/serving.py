"""The serving contract of an exported model, and clients for TF Serving's REST and gRPC APIs.

An exported SavedModel (see :mod:`keras_fer.export`) has two signatures, both returning
``probabilities`` (float32 (N, K)), ``class_index`` (int64 (N,)) and ``class_name``
(string (N,)):

* ``serving_default``: input ``images``, uint8 (N, 48, 48, C), raw gray (C=1) faces;
* ``serving_image_bytes``: input ``image_bytes``, string (N,), encoded JPEG/PNG/BMP/GIF
  images of any size, decoded, converted to gray and resized inside the graph. The input
  name ends in ``_bytes`` and its REST values are ``{"b64": ...}`` objects, which TF
  Serving decodes into the string tensor.

The request builders are plain functions so that tests can send the exact bodies a client
sends through TensorFlow's own SavedModel tools, without a server.
"""

import base64
import json
import urllib.error
import urllib.request

import numpy as np

PIXELS_SIGNATURE = "serving_default"
ENCODED_SIGNATURE = "serving_image_bytes"
PIXELS_INPUT = "images"
ENCODED_INPUT = "image_bytes"
OUTPUT_KEYS = ("probabilities", "class_index", "class_name")
# The metadata entry of a TFLite file that holds its class names (JSON).
CLASS_NAMES_METADATA = "class_names"
DEFAULT_MODEL_NAME = "keras_fer"
REST_PORT = 8501
GRPC_PORT = 8500


class ServingError(RuntimeError):
    """The server answered with an error, or not at all."""


def request_inputs(images=None, encoded_images=None):
    """Which signature and input a request uses, and the input values.

    Args:
        images: uint8 array (N, 48, 48, C) of raw faces, or None.
        encoded_images: sequence of N encoded images (bytes), or None.
    Returns:
        (signature name, input key, values): values is a uint8 array or a list of bytes.
    Raises:
        ValueError: not exactly one of the two is given, or the pixels are not uint8 (N, H, W, C).
    """
    if (images is None) == (encoded_images is None):
        raise ValueError("Pass exactly one of `images` (uint8 pixels) and `encoded_images` (bytes).")
    if encoded_images is not None:
        encoded_images = [bytes(image) for image in encoded_images]
        return ENCODED_SIGNATURE, ENCODED_INPUT, encoded_images
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(
            f"`images` must be uint8 (N, height, width, channels). Received: {images.dtype} {images.shape}"
        )
    return PIXELS_SIGNATURE, PIXELS_INPUT, images


def rest_predict_body(images=None, encoded_images=None):
    """The JSON body (as a dict) of a TF Serving REST ``:predict`` request, columnar format.

    Raw pixels go as nested lists of ints; encoded images as ``{"b64": base64}`` objects.
    """
    signature, key, values = request_inputs(images, encoded_images)
    if signature == ENCODED_SIGNATURE:
        values = [{"b64": base64.b64encode(value).decode("ascii")} for value in values]
    else:
        values = values.tolist()
    return {"signature_name": signature, "inputs": {key: values}}


def rest_predict_url(host, port=REST_PORT, model_name=DEFAULT_MODEL_NAME, version=None):
    """``http://HOST:PORT/v1/models/NAME[/versions/V]:predict``."""
    version_part = f"/versions/{version}" if version is not None else ""
    return f"http://{host}:{port}/v1/models/{model_name}{version_part}:predict"


def parse_rest_response(body):
    """A columnar REST response ``{"outputs": {...}}`` -> dict of NumPy arrays (see `OUTPUT_KEYS`)."""
    if "error" in body:
        raise ServingError(f"TF Serving error: {body['error']}")
    outputs = body["outputs"]
    return {
        "probabilities": np.asarray(outputs["probabilities"], np.float32),
        "class_index": np.asarray(outputs["class_index"], np.int64),
        "class_name": np.asarray(outputs["class_name"], str),
    }


class RestClient:
    """Calls TF Serving's REST API (``/v1/models/NAME:predict``) with either signature.

    Example:
    >>> client = RestClient("localhost")  # doctest: +SKIP
    >>> client.predict(encoded_images=[open("face.png", "rb").read()])["class_name"]  # doctest: +SKIP
    array(['Happy'], dtype='<U5')
    """

    def __init__(self, host="localhost", port=REST_PORT, model_name=DEFAULT_MODEL_NAME, version=None, timeout=30.0):
        self.url = rest_predict_url(host, port, model_name, version)
        self.timeout = timeout

    def predict(self, images=None, encoded_images=None):
        """Sends one request; returns the outputs as NumPy arrays."""
        data = json.dumps(rest_predict_body(images, encoded_images)).encode()
        request = urllib.request.Request(self.url, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return parse_rest_response(json.loads(response.read()))
        except urllib.error.HTTPError as error:
            # TF Serving puts its message in a JSON body {"error": ...} with the HTTP error.
            raise ServingError(f"{self.url}: HTTP {error.code}: {error.read().decode(errors='replace')}") from error
        except urllib.error.URLError as error:
            raise ServingError(f"{self.url}: {error.reason}") from error


def grpc_predict_request(model_name=DEFAULT_MODEL_NAME, images=None, encoded_images=None, version=None):
    """A `tensorflow_serving.apis.predict_pb2.PredictRequest` for either signature."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    signature, key, values = request_inputs(images, encoded_images)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = int(version)
    dtype = tf.string if signature == ENCODED_SIGNATURE else tf.uint8
    request.inputs[key].CopyFrom(tf.make_tensor_proto(values, dtype=dtype))
    return request


def parse_grpc_response(response):
    """A `PredictResponse` -> dict of NumPy arrays (see `OUTPUT_KEYS`)."""
    import tensorflow as tf

    outputs = {key: tf.make_ndarray(response.outputs[key]) for key in OUTPUT_KEYS}
    outputs["class_name"] = np.asarray([name.decode() for name in outputs["class_name"]], str)
    return outputs


class GrpcClient:
    """Calls TF Serving's gRPC ``PredictionService.Predict`` (needs ``tensorflow-serving-api``)."""

    def __init__(self, host="localhost", port=GRPC_PORT, model_name=DEFAULT_MODEL_NAME, version=None, timeout=30.0):
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        self.target = f"{host}:{port}"
        self.model_name = model_name
        self.version = version
        self.timeout = timeout
        self.channel = grpc.insecure_channel(self.target)
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)

    def predict(self, images=None, encoded_images=None):
        """Sends one request; returns the outputs as NumPy arrays."""
        import grpc

        request = grpc_predict_request(self.model_name, images, encoded_images, self.version)
        try:
            response = self.stub.Predict(request, timeout=self.timeout)
        except grpc.RpcError as error:
            raise ServingError(f"{self.target}: {error.code().name}: {error.details()}") from error
        return parse_grpc_response(response)

    def close(self):
        self.channel.close()
