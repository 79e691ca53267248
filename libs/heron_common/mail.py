"""Email out through the operator's SMTP server (``HERON_SMTP_*``): building a message is pure,
sending is one ``aiosmtplib`` call that never blocks the event loop.

The SMTP server is the operator's own choice (a setting, never user input), so it is not put
through the outbound guard that protects HTTP requests to user-given URLs. ``HERON_SMTP_PORT``
465 means TLS from the start; otherwise ``HERON_SMTP_STARTTLS`` (default true) requires STARTTLS.
Errors are sorted into permanent (a 5xx answer: the address or message is refused and retrying
cannot help, or SMTP is not configured) and temporary (a 4xx answer, a connection failure or a
timeout), and never carry the password.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import aiosmtplib

from heron_common.settings import Settings

SMTP_TIMEOUT = 15.0


class MailError(Exception):
    def __init__(self, message: str, *, permanent: bool, code: int | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.code = code


def build(sender: str, to: str, subject: str, text: str, *, message_id: str | None = None) -> EmailMessage:
    """A plain-text message. ``message_id`` (e.g. a page's step id) makes a resend recognisable:
    the same page always has the same Message-ID."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    # Header injection is impossible through EmailMessage (it refuses CR/LF in values); a subject
    # is cut to one reasonable line anyway.
    message["Subject"] = " ".join(subject.split())[:200]
    message["Date"] = formatdate(usegmt=True)
    domain = sender.rpartition("@")[2] or "heron.invalid"
    message["Message-ID"] = f"<{message_id}@{domain}>" if message_id else make_msgid(domain=domain)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to pages
    message.set_content(text)
    return message


async def send(settings: Settings, message: EmailMessage, *, timeout: float = SMTP_TIMEOUT) -> None:
    """Send ``message`` through the configured server; :class:`MailError` if it did not go."""
    if not settings.smtp_host:
        raise MailError("email is not configured: set HERON_SMTP_HOST", permanent=True)
    implicit_tls = settings.smtp_port == 465
    try:
        await aiosmtplib.send(
            message,
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password,
            use_tls=implicit_tls,
            start_tls=False if implicit_tls else settings.smtp_starttls,
            timeout=timeout,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [r.code for r in exc.recipients]
        raise MailError(
            f"SMTP refused the recipient ({', '.join(str(c) for c in codes)})",
            permanent=all(c >= 500 for c in codes),
            code=codes[0] if codes else None,
        ) from None
    except aiosmtplib.SMTPResponseException as exc:
        raise MailError(
            f"SMTP answered {exc.code}: {exc.message[:200]}", permanent=exc.code >= 500, code=exc.code
        ) from None
    except aiosmtplib.SMTPException as exc:  # connection refused, timeouts, TLS: temporary
        raise MailError(f"SMTP failed: {type(exc).__name__}: {str(exc)[:200]}", permanent=False) from None
    except OSError as exc:
        raise MailError(f"SMTP failed: {exc}", permanent=False) from None
