"""Stored responses of the Responses API: kept with ``store``, continued with ``previous_response_id``."""
