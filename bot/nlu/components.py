"""Custom Rasa NLU components for Chinese questions about the notice.

- TextNormalizer: first in the pipeline; traditional -> simplified, full-width
  -> half-width, spaces, markup, repeated punctuation, length cap.
- CleanJiebaTokenizer: Rasa's JiebaTokenizer without whitespace tokens.
- PinyinCountVectorsFeaturizer: counts of pinyin syllables and syllable pairs
  of each token, so a homophone typo (练系方式) looks like the word it stands for;
- KnowledgeEntityExtractor: finds the notice's named things with the alias
  tables generated from knowledge/entities.yml (lookup tables named
  "kb:<type>:<value>"), returning canonical values.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.nlu.featurizers.sparse_featurizer.count_vectors_featurizer import CountVectorsFeaturizer
from rasa.nlu.selectors.response_selector import ResponseSelector
from rasa.nlu.tokenizers.jieba_tokenizer import JiebaTokenizer
from rasa.nlu.tokenizers.tokenizer import Token
from rasa.shared.nlu.constants import ENTITIES, INTENT, INTENT_NAME_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.knowledge.gazetteer import Gazetteer
from bot.text import normalize

logger = logging.getLogger(__name__)

LOOKUP_PREFIX = "kb:"
_WORDLIKE = re.compile(r"[^\W_]|[\U0001F300-\U0001FAFF\u2600-\u27BF]")  # a letter, digit or emoji


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER], is_trainable=False)
class TextNormalizer(GraphComponent):
    """Rewrites the message text into its canonical form before tokenizing."""

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> TextNormalizer:
        """Create the (stateless) component."""
        return cls()

    @staticmethod
    def _normalize(message: Message) -> None:
        text = message.get(TEXT)
        # Messages with annotated entities keep their text: offsets must stay valid.
        if isinstance(text, str) and not message.get(ENTITIES):
            message.set(TEXT, normalize(text) or text)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        """Normalise the training examples the same way as live messages."""
        for message in training_data.training_examples:
            self._normalize(message)
        return training_data

    def process(self, messages: list[Message]) -> list[Message]:
        """Normalise incoming messages."""
        for message in messages:
            self._normalize(message)
        return messages


def _pinyin_of(token: str) -> str:
    from pypinyin import lazy_pinyin

    return " ".join(lazy_pinyin(token))


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER], is_trainable=True)
class PinyinCountVectorsFeaturizer(CountVectorsFeaturizer):
    """Rasa's CountVectorsFeaturizer over the toneless pinyin of each token.

    Each token stays one row of the sequence features; its text is replaced by
    its syllables ("联系" -> "lian xi"), so with the word analyzer and n-grams of
    1-2 a same-sounding character gives the same features as the right one.
    """

    def _process_tokens(self, tokens: list[str], attribute: str = TEXT) -> list[str]:
        tokens = super()._process_tokens(tokens, attribute)
        if attribute != TEXT:
            return tokens
        return [_pinyin_of(t) for t in tokens]


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER], is_trainable=True)
class CleanJiebaTokenizer(JiebaTokenizer):
    """JiebaTokenizer that drops the whitespace tokens jieba keeps, and in the message text the
    punctuation tokens too: "联系电话是多少？" and a phone's "联系电话是多少" are one question (a rare
    "？" feature once tipped a trained model to out-of-scope)."""

    def tokenize(self, message: Message, attribute: str) -> list[Token]:
        """Tokens of the attribute, without pure-whitespace (and, in the text, punctuation) ones."""
        import jieba

        text = message.get(attribute)
        tokens = [Token(word, start) for (word, start, _end) in jieba.tokenize(text) if word.strip()]
        if attribute == TEXT:
            words = [t for t in tokens if _WORDLIKE.search(t.text)]
            tokens = words or tokens[:1]  # a message of punctuation alone keeps one token
        return self._apply_token_pattern(tokens)


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR], is_trainable=True)
class KnowledgeEntityExtractor(GraphComponent, EntityExtractorMixin):
    """Gazetteer over the knowledge base's aliases (longest match, canonical values)."""

    FILE = "gazetteer.json"

    def __init__(self, model_storage: ModelStorage, resource: Resource, gazetteer: Gazetteer | None) -> None:
        self._model_storage = model_storage
        self._resource = resource
        self._gazetteer = gazetteer

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> KnowledgeEntityExtractor:
        """Create an untrained extractor."""
        return cls(model_storage, resource, None)

    def train(self, training_data: TrainingData) -> Resource:
        """Collect the alias tables from the generated lookup tables and persist them."""
        table: dict[str, list[tuple[str, str]]] = {}
        for lookup in training_data.lookup_tables:
            name = str(lookup.get("name", ""))
            if not name.startswith(LOOKUP_PREFIX):
                continue
            type_, _, value = name[len(LOOKUP_PREFIX):].partition(":")
            for alias in lookup.get("elements", []):
                targets = table.setdefault(str(alias), [])
                if (type_, value) not in targets:
                    targets.append((type_, value))
        if not table:
            logger.warning("KnowledgeEntityExtractor: no 'kb:' lookup tables found; run 'make generate'.")
        self._gazetteer = Gazetteer(table)
        with self._model_storage.write_to(self._resource) as directory:
            (directory / self.FILE).write_text(
                json.dumps(self._gazetteer.to_dict(), ensure_ascii=False), encoding="utf-8"
            )
        return self._resource

    @classmethod
    def load(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> KnowledgeEntityExtractor:
        """Load the persisted alias table."""
        try:
            with model_storage.read_from(resource) as directory:
                data = json.loads((directory / cls.FILE).read_text(encoding="utf-8"))
            return cls(model_storage, resource, Gazetteer.from_dict(data))
        except (ValueError, FileNotFoundError):
            logger.warning("KnowledgeEntityExtractor: no stored alias table; extracting nothing.")
            return cls(model_storage, resource, None)

    def process(self, messages: list[Message]) -> list[Message]:
        """Add the entities found in each message's text."""
        if self._gazetteer is None:
            return messages
        for message in messages:
            text = message.get(TEXT) or ""
            found = [
                {
                    "entity": m.type, "value": m.value, "start": m.start, "end": m.end,
                    "confidence_entity": 1.0, "extractor": self.__class__.__name__,
                    "text": m.text,
                }
                for m in self._gazetteer.find(text)
            ]
            message.set(ENTITIES, message.get(ENTITIES, []) + found, add_to_output=True)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        """Nothing to add to training data."""
        return training_data


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=True)
class FaqResponseSelector(ResponseSelector):
    """Rasa's ResponseSelector, asked only about messages the intent classifier reads as its
    retrieval intent (`faq`).

    Its pick is used only then (bot/dialogue: staff_faq; bot/staff/faqs.py), yet Rasa runs it on
    every message: a second TensorFlow model, about a third of the NLU time per message. Trained
    exactly as ResponseSelector; other messages carry no `response_selector` entry, which every
    reader treats as "no FAQ selected" (bot/faq.py: selected_faq).
    """

    def process(self, messages: list[Message]) -> list[Message]:
        """Select a response for the messages whose intent is the retrieval intent; keep the rest."""
        asked = [m for m in messages if (m.get(INTENT) or {}).get(INTENT_NAME_KEY) == self.retrieval_intent]
        if asked:
            super().process(asked)
        return messages
