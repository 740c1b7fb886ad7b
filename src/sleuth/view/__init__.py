"""The trajectory viewer and user debug mode (NExT-Search): browse evaluation runs, see each
episode step by step, edit a step and replay it, and log feedback that ``sleuth feedback
export`` turns into training data.

>>> from sleuth.view.runs import load_runs
>>> from sleuth.view.app import create_app
>>> app = create_app(load_runs(["runs/demo"]), "runs/feedback.jsonl")  # doctest: +SKIP
"""
