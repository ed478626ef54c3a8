"""Text messages through Twilio's Messages API (REST, with httpx), and Twilio's webhook signature.

    POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json   (HTTP basic auth: sid, token)
    To, Body, From or MessagingServiceSid, StatusCallback         -> 201 {"sid": "SM...", ...}

Failures are told apart by whether Twilio could have the message (proms/notify/base.py):

- not connected, or told to slow down (429) or that it is unavailable (503): `Rejected`, try again;
- any other 4xx: Twilio refused this message (a bad number, an opted-out recipient):
  `Rejected(permanent=True)` with Twilio's error code; 401 (our credentials) may be retried;
- the request went out and no answer came (read timeout, dropped connection), or a 500, 502 or
  504 (an error or a gateway between us and Twilio; the message may exist): `Uncertain`.

Reasons never hold the phone number or the text: Twilio's messages quote the number, so digits
runs and the recipient are taken out before a reason leaves this module.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

import httpx

from proms.notify.base import OutgoingMessage, Rejected, Uncertain

API_VERSION = "2010-04-01"

# 429 Too Many Requests and 503 Service Unavailable: Twilio answered and did not take it.
_RETRY_LATER = frozenset({429, 503})
# 500 and the gateway errors: the request may have reached Twilio and created the message.
_MAYBE_SENT = frozenset({500, 502, 504})
_DIGIT_RUN = re.compile(r"\+?\d[\d\s().-]{5,}\d")
_REASON_LENGTH = 200


class SmsSender:
    """Sends text messages through one Twilio account, on one pooled HTTP connection."""

    def __init__(
        self,
        base_url: str,
        account_sid: str,
        auth_token: str,
        *,
        from_number: str = "",
        messaging_service_sid: str = "",
        timeout: float = 15.0,
    ) -> None:
        if not (from_number or messaging_service_sid):
            raise ValueError("a Twilio sender needs a From number or a Messaging Service SID")
        self.account_sid = account_sid
        self.from_number = from_number
        self.messaging_service_sid = messaging_service_sid
        self.url = f"{base_url.rstrip('/')}/{API_VERSION}/Accounts/{account_sid}/Messages.json"
        self._client = httpx.Client(
            auth=(account_sid, auth_token),
            timeout=httpx.Timeout(timeout),
            headers={"Accept": "application/json", "User-Agent": "proms"},
        )

    def send(self, message: OutgoingMessage) -> str:
        """Create the message at Twilio; its sid ("SM...") is the provider id."""
        if message.channel != "sms":
            raise ValueError(f"SmsSender sends text messages, not {message.channel!r}")
        try:
            response = self._client.post(self.url, data=self._form(message))
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
            raise Rejected(f"cannot connect to Twilio ({type(error).__name__})") from None
        except (httpx.WriteError, httpx.WriteTimeout) as error:
            # The request did not go out whole, and Twilio acts on whole requests only.
            raise Rejected(f"request to Twilio not sent ({type(error).__name__})") from None
        except (httpx.UnsupportedProtocol, httpx.ProxyError) as error:
            raise Rejected(f"cannot reach Twilio ({type(error).__name__})") from None
        except httpx.TransportError as error:
            # ReadTimeout, ReadError, RemoteProtocolError: sent, and no answer.
            raise Uncertain(
                f"no answer from Twilio after the request was sent ({type(error).__name__})"
            ) from None
        return _message_sid(response, message)

    def close(self) -> None:
        self._client.close()

    def _form(self, message: OutgoingMessage) -> dict[str, str]:
        form = {"To": message.to, "Body": message.text}
        if self.messaging_service_sid:
            form["MessagingServiceSid"] = self.messaging_service_sid
        else:
            form["From"] = self.from_number
        if message.status_callback_url:
            form["StatusCallback"] = message.status_callback_url
        return form


def _message_sid(response: httpx.Response, message: OutgoingMessage) -> str:
    """The new message's sid from a success, or the failure Twilio's answer means."""
    status = response.status_code
    if response.is_success:
        sid = _json(response).get("sid")
        if not isinstance(sid, str) or not sid:
            raise Uncertain(f"Twilio answered {status} without a message sid")
        return sid
    reason = _twilio_error(response, message)
    if status in _RETRY_LATER:
        raise Rejected(reason)
    if status in _MAYBE_SENT or status >= 500:
        raise Uncertain(reason)
    # 401: our account sid or token is wrong, not the message; it can go once they are fixed.
    raise Rejected(reason, permanent=status != 401)


def _twilio_error(response: httpx.Response, message: OutgoingMessage) -> str:
    """ "Twilio 400, error 21211: The 'To' number <number> is not a valid phone number." """
    body = _json(response)
    code = body.get("code")
    text = str(body.get("message") or response.reason_phrase or "")
    for secret in (message.to, message.text):
        if secret:
            text = text.replace(secret, "<redacted>")
    text = " ".join(_DIGIT_RUN.sub("<number>", text).split())[:_REASON_LENGTH]
    reason = f"Twilio {response.status_code}"
    if isinstance(code, int):
        reason += f", error {code}"
    return f"{reason}: {text}" if text else reason


def _json(response: httpx.Response) -> dict[str, object]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


# Webhook signatures (https://www.twilio.com/docs/usage/webhooks/webhooks-security) ---------------


def sign(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """X-Twilio-Signature: base64 HMAC-SHA1, keyed with the auth token, of the full URL followed
    by each POST parameter's name and value, sorted by name."""
    data = url + "".join(name + params[name] for name in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def valid_signature(
    auth_token: str, url: str, params: Mapping[str, str], signature: str | None
) -> bool:
    """Whether a webhook request is Twilio's. Twilio signs an https URL with or without its port
    (as its own libraries check), so both spellings are tried."""
    if not signature or not auth_token:
        return False
    # Compared as bytes: compare_digest refuses str with non-ASCII characters (a TypeError,
    # so a 500), and a header is whatever the sender put in it.
    given = signature.encode("utf-8", "surrogateescape")
    return any(
        hmac.compare_digest(sign(auth_token, candidate, params).encode("ascii"), given)
        for candidate in _url_spellings(url)
    )


def _url_spellings(url: str) -> list[str]:
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    try:
        port = parts.port or default
    except ValueError:  # not a number: no other spelling
        return [url]
    if parts.hostname is None or default is None:
        return [url]
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = f"{userinfo}@" if userinfo else ""
    without_port = urlunsplit(parts._replace(netloc=prefix + host))
    with_port = urlunsplit(parts._replace(netloc=f"{prefix}{host}:{port}"))
    return list(dict.fromkeys([url, without_port, with_port]))
