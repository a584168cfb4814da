"""The torch-free core every layer stands on.

Errors, options, files and folders, downloads, run folders, logs.
"""
