"""Inference backends, one file each, behind one small interface."""
