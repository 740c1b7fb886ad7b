"""Synthetic training data built with the real engine (``sleuth synth ...``).

``sleuth synth trajectories`` plays a planned, behaviour-rich script through the real agent loop
against the real index, so the SFT episodes are exactly the text the agent sees at inference.
"""
