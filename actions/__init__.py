"""rasa_sdk custom actions: thin wrappers around bot.dialogue."""
