"""The knowledge layer: facts of the notice as data. Imports nothing from Rasa."""
