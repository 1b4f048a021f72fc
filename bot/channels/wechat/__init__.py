"""The WeChat Official Account channel, in four layers (see channel.py's docstring):
codec.py (wechatpy), client.py (the WeChat API), state.py (per-user state, in memory or Redis),
channel.py (the Rasa InputChannel); replay.py is the timestamp window and the nonce store,
settings.py the options. credentials.yml names the channel `bot.channels.wechat.WeChatInput`."""

from bot.channels.wechat.channel import WeChatInput

__all__ = ["WeChatInput"]
