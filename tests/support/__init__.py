"""Helpers the tests share: small models and data they build for themselves."""
