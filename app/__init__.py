"""bertclf: fine-tune TF-Hub BERT encoders for text classification and export them for TF Serving."""

import os

# hub.KerasLayer needs Keras 2: `tf.keras` must resolve to tf_keras, which TensorFlow decides when
# it is first imported. Importing any `app` module runs this file first. Everything else that
# changes how TensorFlow runs (CPU fusion, log levels) is explicit: `app.runtime`.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

__version__ = "0.1.0"
