"""fleetwatch's HTTP API for integrators: the fleet, its alarms, events and commands.

Every request acts as a person identified by a personal API token (``Authorization: Bearer
fwt_...``), under the roles of ``access``: reads for everyone, actions through
``access.actions``, each recorded in the audit trail. ``fleetwatch api`` serves it.
"""

from api.app import create_app

__all__ = ["create_app"]
