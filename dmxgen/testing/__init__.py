"""Support for tests, tools and demos: build small .tflite models without TensorFlow."""
