"""The two refusals of the security layer, rendered like every :class:`~smg.errors.SmgError`
(the OpenAI error shape): 401 for a missing or wrong credential, 403 for a refused one."""

from __future__ import annotations

from smg.errors import SmgError

__all__ = ["Forbidden", "Unauthorized"]


class Unauthorized(SmgError):
    status_code = 401
    error_type = "authentication_error"


class Forbidden(SmgError):
    status_code = 403
    error_type = "permission_error"
