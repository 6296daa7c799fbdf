"""Channels: where customers DM from (Telegram, the web chat, other platforms via the DM API)."""
