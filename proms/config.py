"""Default settings.

`instance/config.py` and `PROMS_*` environment variables override these (see `create_app`).
Names here are the names without the `PROMS_` prefix: `PROMS_DATABASE_URL` sets `DATABASE_URL`.
"""

# "production", "development" or "test". Production is the default so that a deployment that
# forgets to say what it is gets secure cookies and a refusal of the default secret key.
ENV = "production"

# The development key; create_app refuses it when ENV is production.
SECRET_KEY = "dev-only-insecure-secret-key"  # noqa: S105 - a known default, refused in production

# The key of the pseudonyms (keyed HMAC-SHA256) and date shifts of de-identified exports
# (docs/exports.md). Production refuses those exports with this default or a key under 32
# characters. Keep it: a new key gives every patient a new pseudonym.
EXPORT_PSEUDONYM_KEY = "dev-only-insecure-export-pseudonym-key"

# The audit log's hash chain (proms/audit_chain.py, docs/audit.md): the HMAC key of each event's
# link, kept out of the database so that whoever can edit the table cannot forge a link.
# `proms audit verify` refuses this default or a key under 32 characters in production. Keep
# it: events written with one key do not verify with another.
AUDIT_CHAIN_KEY = "dev-only-insecure-audit-chain-key"

# Empty means SQLite at <instance>/proms.sqlite3.
DATABASE_URL = ""

# Staff sessions.
IDLE_TIMEOUT_MINUTES = 15
# Staff sign-in records and two-step sign-in (proms/auth/sessions.py, proms/auth/mfa.py;
# docs/staff-sign-in.md). A session ends SESSION_MAX_HOURS after sign-in however busy it is,
# besides IDLE_TIMEOUT_MINUTES without a request. Its "last seen" is written at most every
# SESSION_TOUCH_SECONDS (so page views do not each write: SQLite has one writer), which is
# also how far the idle time may run over. A password accepted waits MFA_CODE_MINUTES for
# its code. MFA_ISSUER names the account in the staff member's authenticator app.
SESSION_MAX_HOURS = 12
SESSION_TOUCH_SECONDS = 60
MFA_CODE_MINUTES = 5
MFA_ISSUER = "proms"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# None means: Secure everywhere but development (plain-HTTP localhost).
SESSION_COOKIE_SECURE = None

# Failed logins: after LOGIN_LOCK_AFTER consecutive failures the account is locked for
# LOGIN_LOCK_BASE_SECONDS, doubling with every further failure up to LOGIN_LOCK_MAX_SECONDS.
LOGIN_LOCK_AFTER = 5
LOGIN_LOCK_BASE_SECONDS = 60
LOGIN_LOCK_MAX_SECONDS = 3600

# argon2id cost (argon2-cffi's defaults follow RFC 9106's second recommendation).
ARGON2_TIME_COST = 3
ARGON2_MEMORY_COST = 65536  # KiB
ARGON2_PARALLELISM = 4

# CSRF tokens live as long as the session: a long form must not fail after an hour.
WTF_CSRF_TIME_LIMIT = None
# We send Referrer-Policy: no-referrer, so browsers send no Referer for Flask-WTF's HTTPS check;
# the token plus an Origin check (proms.security) protect the forms instead.
WTF_CSRF_SSL_STRICT = False

# Requests larger than this are refused with 413; form fields have their own, smaller limits
# and fail validation with a 400 that names the field.
MAX_CONTENT_LENGTH = 4 * 1024 * 1024
MAX_FORM_MEMORY_SIZE = 2 * 1024 * 1024
# Plain (urlencoded) forms are refused before they are parsed when larger than this or with more
# fields: 413. Anyone can post the patient pages and the sign-in form, which need a few hundred
# bytes, so they get the small limit; staff forms the larger one.
PUBLIC_FORM_MAX_BYTES = 8 * 1024
PUBLIC_FORM_MAX_FIELDS = 50
FORM_MAX_BYTES = 64 * 1024
FORM_MAX_FIELDS = 1000
# Endpoints that take the public limits (besides every page of the patient blueprint).
PUBLIC_FORM_ENDPOINTS = ["auth.login", "auth.set_password"]

# How many reverse proxies (nginx, a load balancer) stand in front of proms and set
# X-Forwarded-For/-Proto/-Host. 0 trusts none of those headers: right when proms faces clients.
PROXY_FIX_HOPS = 0

# Logs (proms.logs): "json" (one object a line, for a log collector) or "text" (for a terminal).
# Empty means json in production and text in development and tests. Either way links, tokens
# and database values are redacted; docs/deployment.md#logs lists the fields.
LOG_FORMAT = ""

# Staff patient list page size.
PATIENTS_PER_PAGE = 50
# The alerts inbox page size.
ALERTS_PER_PAGE = 50
# Seconds a cohort report page keeps the figures it counted (its CSV serves the same ones);
# 0 counts afresh on every view. proms/care/snapshots.py says why.
COHORT_REPORT_MAX_AGE = 600

# Patient links and surveys.
# The address patients reach proms at, for links in messages and `proms link`: in production an
# https address, or proms refuses to start (proms.checks). Empty in development and tests means
# the address of the server itself (the port `flask run` or `make run PORT=...` listens on).
PUBLIC_BASE_URL = ""
# A link works until its questionnaire closes, but never longer than this.
SURVEY_LINK_MAX_AGE_DAYS = 30
# The survey cookie (after "Start") lasts this long without activity.
SURVEY_SESSION_MINUTES = 60
# The optional date-of-birth check: wrong tries before the link locks, and for how long.
IDENTITY_MAX_TRIES = 5
IDENTITY_LOCK_MINUTES = 60

# Rate limits (Flask-Limiter). memory:// suits one process; several hosts share a store such
# as redis://127.0.0.1:6379 or memcached://127.0.0.1:11211.
RATELIMIT_STORAGE_URI = "memory://"
# No X-RateLimit-* headers on every limited response (bytes on each patient page); a 429 says
# Retry-After itself (proms.errors).
RATELIMIT_HEADERS_ENABLED = False
LINK_RATE_LIMIT = "30 per minute"
IDENTITY_RATE_LIMIT = "10 per minute"
# Sign-in attempts per client address (beside the per-address lockout): slows password spraying.
LOGIN_RATE_LIMIT = "30 per minute"

# Compressed responses (Flask-Compress): brotli where the browser offers it (every current one
# does over HTTPS; about 15% smaller than gzip on our pages), else gzip. Quality 5 costs what 4
# does (a tenth of a millisecond for a page) and saves some 6% more; 9 and up cost milliseconds.
COMPRESS_ALGORITHM = ["br", "gzip"]
COMPRESS_BR_LEVEL = 5
# Streamed responses stay uncompressed: Flask-Compress 1.25 leaves a streamed file open and
# offers no gzip for streams. Static files are read into memory first (proms.security.Compress),
# so the stylesheet is compressed all the same.
COMPRESS_STREAMS = False
COMPRESS_MIMETYPES = ["text/html", "text/css", "application/json", "image/svg+xml"]

# Static files. Pages link them with their content hash in the URL (templating.static_url), and
# those URLs are kept a year, immutable (proms.security). The same file without the hash is
# revalidated every time (Flask sends no-cache plus its ETag), so an edit is never hidden.
SEND_FILE_MAX_AGE_DEFAULT = None

# Languages of patient-facing text (Flask-Babel); staff pages are in English.
LANGUAGES = ["en", "es"]
BABEL_DEFAULT_LOCALE = "en"
# The compiled catalogues (.mo) are read from proms.resources' translations folder: the
# installed package's or the checkout's. BABEL_TRANSLATION_DIRECTORIES replaces it when set.

# Messages (proms.notify; docs/messages.md). How messages leave: "live" sends email over SMTP
# and texts through Twilio; "files" writes each message as a file under OUTBOX_DIR instead (so a
# newcomer can read them and click their links); "null" takes them and drops them (benchmarks).
# Empty means "files" when ENV is development (`make run`), else "live".
MESSAGE_TRANSPORT = ""
# Empty means <instance>/outbox.
OUTBOX_DIR = ""
# The sender of every email, e.g. "Pain Service <no-reply@clinic.example.org>".
MAIL_FROM = ""
SMTP_HOST = "127.0.0.1"
SMTP_PORT = 587
# "starttls" (port 587), "tls" (implicit TLS, port 465) or "none" (a relay on this host only).
SMTP_SECURITY = "starttls"
SMTP_USERNAME = ""
SMTP_PASSWORD = ""
SMTP_TIMEOUT_SECONDS = 30
# Twilio's Messages API. TWILIO_BASE_URL changes only for a test double or a regional edge.
TWILIO_BASE_URL = "https://api.twilio.com"
TWILIO_ACCOUNT_SID = ""
TWILIO_AUTH_TOKEN = ""
# The sending number (E.164), or a Messaging Service (which then chooses the number).
TWILIO_FROM = ""
TWILIO_MESSAGING_SERVICE_SID = ""
TWILIO_TIMEOUT_SECONDS = 15

# The scheduler (`proms scheduler`): how often each sweep runs, in seconds.
SWEEP_DISPATCH_SECONDS = 30
SWEEP_WINDOWS_SECONDS = 300
SWEEP_RECONCILE_SECONDS = 900
SWEEP_PURGE_SECONDS = 3600
# Tells a clinic's care team mailbox (Clinic.alert_email) of new urgent alerts: a link only.
SWEEP_ALERTS_SECONDS = 60
# Messages claimed per batch, and how long a claim lasts before another scheduler may take the
# row back (a claim whose message was handed to a provider becomes "unknown" instead).
DISPATCH_BATCH_SIZE = 200
DISPATCH_LEASE_SECONDS = 300
# A message the provider refused is tried again after RETRY_BASE_SECONDS, doubling each time
# (with jitter), at most RETRY_MAX_ATTEMPTS times in all; then it shows as failed.
RETRY_MAX_ATTEMPTS = 5
RETRY_BASE_SECONDS = 60
# Per patient, across all their courses: at most this many messages a local day, this far apart.
PATIENT_MESSAGES_PER_DAY = 2
PATIENT_MESSAGE_GAP_MINUTES = 240
# Links are deleted this many days after they expire (until then an old link still says
# "expired, ask for a new one" rather than "unknown").
TOKEN_PURGE_AFTER_DAYS = 30
