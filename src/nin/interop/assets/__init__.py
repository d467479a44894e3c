"""Data files of ``nin.interop`` (see README.md beside this file)."""
