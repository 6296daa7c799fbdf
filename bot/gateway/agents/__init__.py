"""Agent surfaces: the web inbox, the agent API and the Telegram group, over the handoff desk."""
