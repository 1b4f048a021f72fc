"""Rasa input channels of the assistant: REST (rest.py) and the WeChat Official Account (the wechat package)."""
