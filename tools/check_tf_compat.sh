#!/usr/bin/env bash
# Load an export with an older TensorFlow + TF Text and call both signatures: TF Serving of a
# release links the TF and TF Text ops of that release, so this shows which releases can serve it.
#   tools/check_tf_compat.sh saved_models/bertclf/1 2.20
set -euo pipefail
export_dir=$(realpath "$1"); version=$2
venv=${TMPDIR:-/tmp}/bertclf-tf$version
test -x "$venv/bin/python" || python3 -m venv "$venv"
"$venv/bin/pip" install -q "tensorflow==$version.*" "tensorflow-text==$version.*" 2>&1 | grep -v "^WARNING: Location" || true
"$venv/bin/python" - "$export_dir" <<'PY'
import sys
import tensorflow as tf
import tensorflow_text as text
model = tf.saved_model.load(sys.argv[1])
out = model.signatures["serving_default"](text=tf.constant(["An unforgettable film.", ""]))
example = tf.train.Example(features=tf.train.Features(feature={
    "text": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"Great cast"]))}))
scores = model.signatures["classify"](inputs=tf.constant([example.SerializeToString()]))["scores"]
print(f"TF {tf.__version__} / TF Text {text.__version__}: OK", out["label"].numpy(), scores.numpy().round(3))
PY
