"""Handoffs: a person takes over a conversation, and gives it back to the bot.

The desk (``desk.py``) is the one place agents' actions happen; every agent
surface (web inbox, agent API, Telegram group) is a thin layer over it and is
told about every change through one event (``events.py``).
"""
