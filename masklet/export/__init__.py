"""ONNX export of the whole tracker (image encoder, decoder, memory attention, memory encoder) and an
onnxruntime backend behind the model interface the predictors use.

Needs the ``onnx`` extra (``pip install masklet[onnx]``); nothing here is imported by ``masklet`` itself.
"""
