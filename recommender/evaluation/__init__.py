"""Offline measurement: time splits, metrics, baselines and the evaluation protocols (batch,
replay, top-k, related) that run the real engine. The top layer: may import everything below.
"""
