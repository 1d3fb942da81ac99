"""All configuration of onionpost: one Settings class read from ONIONPOST_* variables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from onionpost.exits import ConfigError
from onionpost.setting_values import (
    REDIS_PASSWORD_FILE,
    check_sender,
    normalise_domain,
    onion_domain,
    parse_delays,
    parse_duration,
    parse_size,
    redis_url_with_secret,
    split_hostport,
    with_password,
)

__all__ = ["REDIS_PASSWORD_FILE", "ConfigError", "Settings", "load_settings", "parse_duration",
           "parse_size", "with_password"]

ByteSize = Annotated[int, BeforeValidator(parse_size), Field(ge=0)]
RetryDelays = Annotated[tuple[Annotated[float, Field(ge=0)], ...],
                        NoDecode, BeforeValidator(parse_delays)]
Duration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]


class Settings(BaseSettings):
    """Every setting, with its default. `.env.example` documents the same list."""

    # env_ignore_empty: `VAR=` (as .env.example writes unset values) means "use the default".
    model_config = SettingsConfigDict(
        env_prefix="ONIONPOST_", extra="ignore", env_ignore_empty=True, populate_by_name=True)

    # --- identity ---------------------------------------------------------------
    domain: str = Field("", description="our onion domain; empty: read onion_hostname_file")
    onion_hostname_file: Path = Field(
        Path("/var/lib/tor/onionpost/hostname"), description="tor's hostname file")
    # `from` is a Python keyword: the field has another name, the variable is ONIONPOST_FROM.
    from_address: str = Field(
        "", validation_alias="ONIONPOST_FROM", description="sendmail's sender when a message "
        "has no From and no -f; empty: anon@<our onion>, as neomutt-config writes")

    # --- ingest -----------------------------------------------------------------
    ingest_listen: str = Field("127.0.0.1:2525", description="host:port ingest binds to")
    ingest_workers: int = Field(1, ge=1, le=64, description="ingest processes sharing the port")
    maildir: Path = Field(Path("./mail/inbox"), description="Maildir that receives mail")
    proxy_protocol: bool = Field(False, description="expect tor's PROXY v1 header")
    proxy_timeout: float = Field(5.0, gt=0, description="seconds to wait for the PROXY header")
    max_message_size: ByteSize = Field(10_000_000, description="largest message (SIZE)")
    max_recipients: int = Field(50, ge=1, description="RCPT per message")
    max_sessions: int = Field(100, ge=1, description="concurrent SMTP sessions in total")
    circuit_max_sessions: int = Field(3, ge=1, description="concurrent sessions per circuit")
    circuit_messages_per_minute: int = Field(10, ge=1, description="messages per circuit/min")
    command_timeout: float = Field(60.0, gt=0, description="seconds idle between commands")
    data_timeout: float = Field(
        600.0, gt=0, description="seconds for the whole DATA phase (10 MB at 17 KB/s)")
    junk_command_limit: int = Field(
        20, ge=1, description="commands per session that send no mail; more: 421 and close")
    session_lifetime: float | None = Field(
        None, gt=0, description="seconds a session may last; empty: data_timeout + 300")
    max_messages: int = Field(100, ge=1, description="mailbox quota: messages in new/+cur/")
    max_bytes: ByteSize = Field(300_000_000, description="mailbox quota: bytes in new/+cur/")
    quota_rescan_interval: float = Field(
        600.0, gt=0, description="seconds between full rescans of the Maildir by ingest and "
        "the guardian (inotify keeps their counts in between; the rescan reconciles)")
    fsync: Literal["group", "file"] = Field(
        "group", description="group: one syncfs per group of messages; file: one fsync each")
    tls: Literal["on", "off"] = Field("on", description="offer STARTTLS (never required)")
    tls_cert: Path | None = Field(None, description="PEM certificate; empty: self-signed")
    tls_key: Path | None = Field(None, description="PEM key for tls_cert")
    tls_min: Literal["1.2", "1.3"] = Field("1.2", description="lowest TLS version offered")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="log level (logs never hold bodies, addresses or IPs)")
    pgp_key: Path | None = Field(
        None, description="owner's OpenPGP public key: every message is stored encrypted to "
        "it (docs/pgp.md); empty: stored in clear")
    pgp_subject: Literal["hide", "keep"] = Field(
        "hide", description="with pgp_key: hide (the stored Subject is '...') or keep it")
    pgp_seal_process_size: ByteSize = Field(
        1_048_576,  # ingest/sealing.py's PROCESS_SEAL_SIZE says why
        description="with pgp_key: a message bigger than this is encrypted in a "
        "child process, so that its encryption does not stall the other sessions")

    # --- redis / queues ---------------------------------------------------------
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis for state + queues")
    secrets_dir: Path | None = Field(
        None, description="generated secrets (compose: the secrets volume); its "
                          "redis-password is used with redis_url; empty: none")

    # --- guardian ---------------------------------------------------------------
    resume_percent: int = Field(
        80, ge=0, le=100, description="auto-resume below this % of each limit; 0: never")
    sweep_interval: int = Field(10, ge=1, description="seconds between guardian recounts")
    flood_messages: int = Field(30, ge=1, description="flood warning: this many messages ...")
    flood_seconds: int = Field(60, ge=1, description="... within this many seconds")

    # --- notifier ---------------------------------------------------------------
    ntfy_url: str = Field("http://ntfy:80", description="self-hosted ntfy base URL")
    ntfy_topic: str = Field("onionpost", description="ntfy topic for alerts")
    ntfy_token: str = Field("", description="ntfy access token (Bearer)")
    ntfy_user: str = Field("", description="ntfy user (when no token)")
    ntfy_password: str = Field("", description="ntfy password (when no token)")
    ntfy_timeout: float = Field(10.0, gt=0, description="seconds for each step of a post")
    ntfy_retry_seconds: int = Field(
        5, ge=1, description="first retry when ntfy is away; doubles, 8 tries, 15 min max")
    notify_new_mail: Literal["off", "count", "summary"] = Field(
        "count", description="new-mail notices: off, count ('3 new') or summary")
    new_mail_coalesce_seconds: int = Field(
        30, ge=0, description="new-mail notices: at most one per this many seconds")

    # --- tor --------------------------------------------------------------------
    tor_control: str = Field("127.0.0.1:9051", description="tor ControlPort host:port")
    tor_cookie_file: Path | None = Field(None, description="control auth cookie; empty: ask tor")
    tor_socks: str = Field("127.0.0.1:9050", description="tor SocksPort for sending")

    # --- owner onion (client-authorized: fetch, ntfy, dashboard) -------------------------
    owner_onion_dir: Path = Field(
        Path("/var/lib/tor/owner"), description="the owner onion's HiddenServiceDir "
        "(hostname, authorized_clients/NAME.auth)")
    owner_ssh_keys: Path = Field(
        Path("/var/lib/onionpost/owner-ssh/authorized_keys"),
        description="the owner sshd's AuthorizedKeysFile (one forced-command key per owner)")
    owner_ssh_user: str = Field(
        "onionpost", pattern=r"^[a-z_][a-z0-9_-]{0,31}$",
        description="the user the owner sshd logs in (printed for the laptop's ssh config)")
    owner_serve_command: str = Field(
        "onionpost fetch-serve", min_length=1,
        description="the command each owner ssh key is forced to run")

    # --- watch -------------------------------------------------------------------
    watch_interval: float = Field(300.0, gt=0, description="seconds between probes of our onion")
    watch_failures: int = Field(
        3, ge=1, description="consecutive failed probes before the unreachable alert")
    watch_timeout: float = Field(60.0, gt=0, description="seconds one probe may take")
    watch_control: str = Field(
        "", description="ControlPort of the tor whose SocksPort probes; empty: tor_control")
    watch_cookie_file: Path | None = Field(
        None, description="auth cookie for watch_control; empty: tor_cookie_file")
    watch_metrics_listen: str = Field(
        "127.0.0.1:9105", description="host:port of the Prometheus endpoint (internal only)")

    # --- sending / reading --------------------------------------------------------
    send_starttls: Literal["off", "on"] = Field(
        "off", description="on: STARTTLS when the receiving onion offers it (off: the onion "
        "address already authenticates it and Tor encrypts end to end)")
    address_book: Path = Field(
        Path("~/.config/onionpost/contacts"), description="name -> onion address")
    send_retry_delays: RetryDelays = Field(
        (10.0, 40.0), description="seconds between delivery tries (3 tries: 2 delays)")
    send_timeout: float = Field(
        60.0, gt=0, description="seconds for the onion connection and each SMTP step")
    send_queue: Literal["off", "on"] = Field(
        "off", description="on: keep undeliverable mail in the outbox (onionpost send-queue)")
    outbox: Path = Field(
        Path("~/.local/share/onionpost/outbox"), description="queued outgoing messages")
    queue_lifetime: Duration = Field(
        432000.0, description="queued mail older than this is bounced (5d, 12h, seconds)")
    local_inbox: Path = Field(
        Path("~/mail/inbox"), description="local Maildir that receives bounces")

    @field_validator("ingest_listen", "tor_control", "tor_socks", "watch_metrics_listen")
    @classmethod
    def _check_hostport(cls, value: str) -> str:
        split_hostport(value)
        return value

    @model_validator(mode="after")
    def _redis_password_from_secrets(self) -> Settings:
        self.redis_url = redis_url_with_secret(self.redis_url, self.secrets_dir)
        return self

    @field_validator("watch_control")
    @classmethod
    def _check_optional_hostport(cls, value: str) -> str:
        if value:
            split_hostport(value)
        return value

    @field_validator("from_address")
    @classmethod
    def _check_from_address(cls, value: str) -> str:
        return check_sender(value)

    @field_validator("domain")
    @classmethod
    def _normalise_domain(cls, value: str) -> str:
        return normalise_domain(value)

    @staticmethod
    def hostport(value: str) -> tuple[str, int]:
        return split_hostport(value)

    def lifetime(self) -> float:
        """Seconds an SMTP session may last: a whole DATA phase fits, with 5 minutes to spare."""
        return self.session_lifetime or self.data_timeout + 300

    def onion_domain(self) -> str:
        """Our domain: ONIONPOST_DOMAIN, else the first word of tor's hostname file."""
        return onion_domain(self.domain, self.onion_hostname_file)


def _variable(field: str) -> str:
    """The environment variable of a field (or of its alias, ONIONPOST_FROM)."""
    name = field.upper()
    return name if name.startswith("ONIONPOST_") else f"ONIONPOST_{name}"


def load_settings(**overrides: object) -> Settings:
    """Read the environment; a bad value raises ConfigError naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]  # values of any type: pydantic checks each
    except ValidationError as error:
        first = error.errors()[0]
        message = str(first["msg"]).removeprefix("Value error, ")
        if not first["loc"]:  # the one check of the whole model; its input is every setting
            raise ConfigError(f"ONIONPOST_SECRETS_DIR: {message}") from None
        name = _variable(str(first["loc"][0]))
        raise ConfigError(f"{name}: {message} (got {first.get('input')!r})") from None
