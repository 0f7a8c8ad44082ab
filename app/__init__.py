"""bertclf: fine-tune TF-Hub BERT encoders for text classification and export them for TF Serving."""

import os

# hub.KerasLayer only works with Keras 2. This must happen before TensorFlow is first imported,
# so that `tf.keras` resolves to `tf_keras` everywhere in the project.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# TensorFlow's C++ start-up chatter drowns our own logs; users can still override it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
