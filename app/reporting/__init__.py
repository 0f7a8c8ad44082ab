"""Reporting: what a person reads after a run.

What it owns: the figures (`metrics`) and plots (`plots`) of a model's answers on labelled
examples, the TF-IDF + logistic regression baseline (`baseline`), the findings that say what to
try next (`findings`), and the report's Markdown and HTML renderings of one list of sections
(`render`). What the report says, in what order, and the `python -m app.evaluate` command are
`app.evaluate`. It may import every earlier stage.
"""
