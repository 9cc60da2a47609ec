"""Data-change events: the event schema, publishing, conditions, and the consumer.

``triggers.publish("orders", "on_create", after={...})`` publishes one record change;
``triggers.Publisher(url)`` publishes many over one connection.
"""

from firehook.triggers.events import CloudEvent, InvalidEvent, change_event, hook_event
from firehook.triggers.publisher import Publisher, PublishError, publish

__all__ = [
    "CloudEvent",
    "InvalidEvent",
    "PublishError",
    "Publisher",
    "change_event",
    "hook_event",
    "publish",
]
