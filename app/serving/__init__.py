"""Serving: the SavedModel TF Serving loads, and loading it back.

What it owns: the export (`export`: signatures, warm-up requests, the config and record as
assets) and loading an export for batched prediction (`inference`). It may import the setup
modules, `app.data`, `app.model` and `app.training`.
"""
