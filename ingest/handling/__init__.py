"""Handling: a batch of validated messages becomes the store operations of one transaction.

The batch is walked in arrival order, device by device state kept in memory, so a device's
messages take effect in the order it sent them even though the writes are grouped per kind.
The walk itself does no I/O: ``BatchHandler`` loads what it needs first, then writes the plan.

``core`` holds the walk's state and what every kind shares (liveness, connections, command
replies); each kind's handlers are one module (``panel``, ``telemetry``, ``robot``);
``walk`` combines them and ``batch`` drives a batch's transaction.
"""

from ingest.handling.batch import BatchHandler
from ingest.handling.core import Item, Outcome, Plan, reject
from ingest.handling.walk import Walk

__all__ = ["BatchHandler", "Item", "Outcome", "Plan", "Walk", "reject"]
