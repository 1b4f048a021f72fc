"""Tests of the input channels."""
