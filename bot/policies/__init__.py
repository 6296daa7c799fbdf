"""Dialogue policies of our own, and the featurizer the dialogue policies share.

Importing the package registers IncrementalStatesFeaturizer with Rasa: a trained
model names its policies' featurizers by registered type, so loading one needs it.
"""

from bot.policies import dialogue_states  # noqa: F401 - registers the featurizer
