"""Alerting: rules on any device value raise events, and notifications reach people.

``rules`` says what a rule is, ``values`` what it can watch (read from the kinds'
declarations), ``evaluate`` the life of one (rule, subject), ``engine`` applies them to what
ingest received inside its transaction, ``templates`` and ``recipients`` word and address
notifications, ``channels`` delivers them (email, SMS, webhook: each registers itself) and
``worker`` is the delivery worker that ``fleetwatch notify`` runs.
"""

from alerting.errors import AlertingError, DeliveryError, RuleError, TemplateError

__all__ = ["AlertingError", "DeliveryError", "RuleError", "TemplateError"]
