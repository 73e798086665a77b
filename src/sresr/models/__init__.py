"""Built-in models; each subpackage holds a torch-free ``SPEC`` (``__init__``) and its ``arch`` module."""
