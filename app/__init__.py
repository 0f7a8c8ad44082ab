"""bertclf: fine-tune TF-Hub BERT encoders for text classification and export them for TF Serving."""

import logging
import os

# hub.KerasLayer only works with Keras 2. This must happen before TensorFlow is first imported,
# so that `tf.keras` resolves to `tf_keras` everywhere in the project. Importing any `app.*`
# module runs this file first.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# TensorFlow's C++ start-up chatter drowns our own logs; users can still override it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"


def configure_logging(level: int = logging.INFO) -> None:
    """For the CLIs: our INFO lines with timestamps; TensorFlow's and absl's only from WARNING."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("absl", "tensorflow", "h5py", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
