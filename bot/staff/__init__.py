"""Staff tools: FAQs as data, retraining with a quality gate and hot swap, reports.

Used by the `bot` command (bot/cli.py) and the admin page. Nothing here is
imported by the running assistant.
"""
