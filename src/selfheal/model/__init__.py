"""The classifier: LoRA training, temperature calibration, backup models and inference."""
