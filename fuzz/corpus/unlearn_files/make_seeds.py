"""Seeds of the `unlearn_files` fuzz target: safetensors files as
`graft unlearn ssd` reads them (a model written by graft-nn with its
`graft.model` metadata; samples as `x` f32 and `y` i64), valid and broken.

Run from the repository root with the peers interpreter (`cargo xtask peers`):
    python fuzz/corpus/unlearn_files/make_seeds.py
"""
import json
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

out = Path(__file__).parent
rng = np.random.default_rng(0)
mlp = {"kind": "mlp", "input": 4, "hidden": [2], "classes": 3}
weights = {
    "hidden.0.weight": rng.standard_normal((2, 4)).astype(np.float32),
    "hidden.0.bias": rng.standard_normal(2).astype(np.float32),
    "head.weight": rng.standard_normal((3, 2)).astype(np.float32),
    "head.bias": rng.standard_normal(3).astype(np.float32),
}


def save(name, tensors, metadata=None):
    save_file(tensors, str(out / name), metadata=metadata)


save("valid_model_mlp", weights, {"graft.model": json.dumps(mlp)})
cnn = {"kind": "cnn", "in_channels": 1, "image_size": 4, "channels": [1], "pool_after": [0], "hidden": 2, "classes": 3}
save(
    "valid_model_cnn",
    {
        "conv.0.weight": np.ones((1, 1, 3, 3), np.float32),
        "conv.0.bias": np.zeros(1, np.float32),
        "fc.weight": np.ones((2, 4), np.float32),
        "fc.bias": np.zeros(2, np.float32),
        "head.weight": np.ones((3, 2), np.float32),
        "head.bias": np.zeros(3, np.float32),
    },
    {"graft.model": json.dumps(cnn)},
)
x = rng.standard_normal((5, 4)).astype(np.float32)
y = np.array([0, 1, 2, 1, 0], np.int64)
save("valid_samples", {"x": x, "y": y})
save("valid_samples_duplicates", {"x": np.concatenate([x, x]), "y": np.concatenate([y, y])})
save("bad_model_huge", weights, {"graft.model": json.dumps({"kind": "mlp", "input": 4, "hidden": [1 << 40], "classes": 3})})
save("bad_model_negative", weights, {"graft.model": json.dumps({"kind": "mlp", "input": -4, "hidden": [2], "classes": 3})})
save("bad_model_cnn_overflow", weights, {"graft.model": json.dumps(dict(cnn, image_size=1 << 62))})
save("bad_model_wrong_shapes", weights, {"graft.model": json.dumps(dict(mlp, hidden=[3]))})
save("bad_model_no_metadata", weights)
save("bad_samples_labels", {"x": x, "y": np.array([0, 1, 7, 1, 0], np.int64)})
save("bad_samples_f64", {"x": x.astype(np.float64), "y": y})
save("bad_samples_rows", {"x": x, "y": y[:3]})
save("bad_samples_y_2d", {"x": x, "y": y.reshape(5, 1)})
(out / "bad_not_safetensors").write_bytes(b"not a safetensors file")
