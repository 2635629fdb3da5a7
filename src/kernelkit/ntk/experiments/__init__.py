"""Registered experiments (run by ``kernelkit reproduce``)."""
