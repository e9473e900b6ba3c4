"""Pictures of results: photos and video frames annotated with boxes and labels, stage-mask overlays."""

import os

import cv2
import numpy as np

from keras_fer.faces import ImageError


def annotate(image, results):
    """A copy of the BGR photo with each face's box and label drawn."""
    annotated = image.copy()
    thickness = max(1, round(max(image.shape[:2]) / 300))
    for result in results:
        x, y, width, height = result["box"]
        label = f"{result['label']} {result['probabilities'][result['label']]:.2f}"
        cv2.rectangle(annotated, (x, y), (x + width, y + height), (0, 255, 0), thickness)
        scale = max(0.4, width / 200)
        (text_width, text_height), baseline = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        text_top = max(y - text_height - baseline, 0)
        cv2.rectangle(annotated, (x, text_top), (x + text_width, text_top + text_height + baseline), (0, 255, 0), -1)
        cv2.putText(annotated, label, (x, text_top + text_height), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness)
    return annotated


def annotate_frame(image, faces, bar_width=90):
    """A copy of a BGR video frame with each tracked face's box, "#track label" and probability bars.

    Args:
        image: uint8 BGR (H, W, 3).
        faces: `keras_fer.video.TrackedFace` objects.
        bar_width: length in pixels of a probability of 1.
    """
    annotated = image.copy()
    line_height = 13
    for face in faces:
        x, y, width, height = face.box
        cv2.rectangle(annotated, (x, y), (x + width, y + height), (0, 255, 0), 2)
        cv2.putText(annotated, f"#{face.track} {face.label}", (x, max(y - 6, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    (0, 255, 0), 1, cv2.LINE_AA)
        # The bars go right of the box, or left of it when the box touches the right edge.
        left = x + width + 6 if x + width + 6 + bar_width + 70 <= image.shape[1] else max(x - bar_width - 76, 0)
        for row, (name, probability) in enumerate(face.probabilities.items()):
            top = y + row * line_height
            cv2.putText(annotated, name[:8], (left, top + 10), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1,
                        cv2.LINE_AA)
            cv2.rectangle(annotated, (left + 62, top + 2), (left + 62 + bar_width, top + 10), (80, 80, 80), 1)
            cv2.rectangle(annotated, (left + 62, top + 2), (left + 62 + round(bar_width * probability), top + 10),
                          (0, 200, 255) if name == face.label else (200, 200, 200), -1)
    return annotated


def mask_overlays(face, gates, tile=192):
    """BGR strips, one per network: the face, then each stage's map as a heat map over it.

    Args:
        face: uint8 (48, 48, C).
        gates: {network name: float (h, w) maps}, as `KerasClassifier.stage_gates` gives. With
            more than one network (an ensemble), each strip's face tile carries its network's name.
        tile: side of each picture in pixels.
    """
    gray = face[..., 0] if face.shape[-1] == 1 else cv2.cvtColor(face, cv2.COLOR_RGB2GRAY)
    face_tile = cv2.cvtColor(cv2.resize(gray, (tile, tile), interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2BGR)
    strips = []
    for network, gate_maps in gates.items():
        tiles = [face_tile.copy()]
        if len(gates) > 1:
            cv2.putText(tiles[0], network, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2)
        for stage, gate_map in enumerate(gate_maps, start=1):
            span = float(gate_map.max() - gate_map.min())
            normalized = (gate_map - gate_map.min()) / span if span > 0 else np.zeros_like(gate_map)
            heat = cv2.applyColorMap(
                cv2.resize(np.uint8(255 * normalized), (tile, tile), interpolation=cv2.INTER_LINEAR), cv2.COLORMAP_JET
            )
            overlay = cv2.addWeighted(face_tile, 0.5, heat, 0.5, 0)
            cv2.putText(overlay, f"stage {stage}", (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2)
            tiles.append(overlay)
        strips.append(np.concatenate(tiles, axis=1))
    return np.concatenate(strips, axis=0)


def write_image(directory, path, suffix, image):
    """Writes `image` as DIRECTORY/<stem of path><suffix>.png; returns the written path."""
    os.makedirs(directory, exist_ok=True)
    stem = os.path.splitext(os.path.basename(path))[0]
    out_path = os.path.join(directory, f"{stem}{suffix}.png")
    if not cv2.imwrite(out_path, image):
        raise ImageError(f"{out_path}: cannot write the image.")
    return out_path
