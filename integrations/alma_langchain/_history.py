"""`AlmaChatMessageHistory`: a LangChain chat history persisted in ALMA's record space.

One record per message in namespace `chat/<session_id>`, ordered by the store's per-namespace `seq`
(strictly increasing, even across processes). Values are `messages_to_dict` JSON and are read back
with `messages_from_dict`, which only builds LangChain's own message classes (no object loading). A
message is stored only if it reads back equal, so a read gives what `InMemoryChatMessageHistory` would.
Records carry `user_id` in their metadata when given, so `alma.delete_user(user_id)` removes them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import BaseMessage, message_to_dict, messages_from_dict

from alma_core import ALMA, SerializationError, ValidationError
from alma_core.storage import DeleteRecords, ListRecords, Op, PutRecord, Record

__all__ = ["AlmaChatMessageHistory"]

NAMESPACE_PREFIX = "chat/"


def _encode(message: BaseMessage) -> bytes:
    """The message as JSON, refused unless it reads back equal (an in-memory history keeps it as it is)."""
    what = message.id or message.type
    try:
        data = json.dumps(message_to_dict(message), ensure_ascii=False).encode("utf-8")
        again = messages_from_dict([json.loads(data)])[0]
    except (TypeError, ValueError, KeyError) as exc:
        raise SerializationError(f"chat message {what!r} is not JSON-serializable: {exc}") from None
    if type(again) is not type(message) or again != message:
        raise SerializationError(
            f"chat message {what!r} would not read back equal from JSON: use string dict keys, lists not tuples,"
            f" no NaN, and LangChain's own message classes (not subclasses)"
        )
    return data


def _decode(records: Sequence[Record]) -> list[BaseMessage]:
    try:
        return messages_from_dict([json.loads(r.value or b"null") for r in records])
    except (ValueError, KeyError, TypeError) as exc:
        raise SerializationError(f"a stored chat message cannot be read back: {exc}") from None


class AlmaChatMessageHistory(BaseChatMessageHistory):
    """The messages of one chat session, stored in ALMA (works with `RunnableWithMessageHistory`)."""

    def __init__(self, alma: ALMA, session_id: str, *, user_id: str | None = None) -> None:
        if not isinstance(session_id, str) or not session_id:
            raise ValidationError("session_id must be a non-empty string")
        self.alma, self.session_id, self.user_id = alma, session_id, user_id
        self.namespace = NAMESPACE_PREFIX + session_id

    def _list(self) -> ListRecords:
        return ListRecords(self.alma.project_id, self.namespace, descending=False)

    def _puts(self, messages: Sequence[BaseMessage]) -> list[Op]:
        batch = [] if isinstance(messages, BaseMessage) else list(messages)  # a generator is read once
        if isinstance(messages, BaseMessage) or not all(isinstance(m, BaseMessage) for m in batch):
            raise ValidationError("add_messages takes a sequence of LangChain messages (BaseMessage)")
        metadata: dict[str, Any] = {"type": "chat_message", "session_id": self.session_id}
        if self.user_id is not None:
            metadata["user_id"] = self.user_id
        return [
            PutRecord(Record(self.alma.project_id, self.namespace, uuid.uuid4().hex, _encode(m), metadata=metadata))
            for m in batch
        ]  # encoded before anything is written: one bad message stores none of the batch

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        """Every message of the session, oldest first."""
        return _decode(self.alma.storage.execute(self._list()))

    async def aget_messages(self) -> list[BaseMessage]:
        return _decode(await self.alma.storage.aexecute(self._list()))

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Append messages in one transaction (all or none)."""
        ops = self._puts(messages)
        if ops:
            self.alma.storage.batch(ops)

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        ops = self._puts(messages)
        if ops:
            await self.alma.storage.abatch(ops)

    def clear(self) -> None:
        self.alma.storage.execute(DeleteRecords(self.alma.project_id, self.namespace))

    async def aclear(self) -> None:
        await self.alma.storage.aexecute(DeleteRecords(self.alma.project_id, self.namespace))
