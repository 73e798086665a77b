"""The command line: a thin layer over the library. Heavy imports stay inside command bodies."""
