"""The torch-free core: label sets, official geometry, artefact metadata."""
