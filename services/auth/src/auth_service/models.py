"""Auth's tables and its few request/response schemas.

    users           who can sign in; ``id`` is the token's ``sub`` (a uuid4, never the username)
    clients         the service accounts of the client_credentials grant
    sessions        one per password sign-in; ``sid`` in every access token issued under it
    refresh_tokens  SHA-256 of each opaque refresh token; single use (``spent_at``)
    access_tokens   the jti/exp of access tokens issued per session, so that ending a session can
                    revoke its still-live access tokens too (RFC 9700 section 4.14.2)

Times are integer Unix seconds (BIGINT): portable between SQLite and PostgreSQL, and compared
with the ``exp``/``iat`` numbers of the tokens without any time zone question.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic import Field as PydanticField
from sqlalchemy import BigInteger, Column, ForeignKey, String
from sqlmodel import Field, SQLModel


def _time(nullable: bool = False) -> Column[int]:
    return Column(BigInteger, nullable=nullable)


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: str = Field(primary_key=True, max_length=36)
    username: str = Field(unique=True, index=True, max_length=128)
    password_hash: str
    roles: str = Field(max_length=256)  # comma separated, e.g. "customer"
    created_at: int = Field(sa_column=_time())

    @property
    def role_list(self) -> list[str]:
        return [role for role in self.roles.split(",") if role]


class Client(SQLModel, table=True):
    __tablename__ = "clients"

    client_id: str = Field(primary_key=True, max_length=64)
    secret_hash: str
    roles: str = Field(default="service", max_length=256)


class UserSession(SQLModel, table=True):
    __tablename__ = "sessions"

    sid: str = Field(primary_key=True, max_length=32)
    user_id: str = Field(sa_column=Column(String(36), ForeignKey("users.id"), index=True))
    scope: str = Field(max_length=256)
    created_at: int = Field(sa_column=_time())
    revoked_at: int | None = Field(default=None, sa_column=_time(nullable=True))


class RefreshToken(SQLModel, table=True):
    __tablename__ = "refresh_tokens"

    token_hash: str = Field(primary_key=True, max_length=64)  # hex SHA-256, never the token
    sid: str = Field(sa_column=Column(String(32), ForeignKey("sessions.sid"), index=True))
    created_at: int = Field(sa_column=_time())
    expires_at: int = Field(sa_column=_time())
    spent_at: int | None = Field(default=None, sa_column=_time(nullable=True))


class AccessTokenRecord(SQLModel, table=True):
    __tablename__ = "access_tokens"

    jti: str = Field(primary_key=True, max_length=32)
    sid: str = Field(sa_column=Column(String(32), ForeignKey("sessions.sid"), index=True))
    exp: int = Field(sa_column=_time())


# -- request and response bodies ----------------------------------------------------------


class TokenResponse(BaseModel):
    """RFC 6749 section 5.1 (the token endpoint's 200 answer)."""

    access_token: str
    issued_token_type: str | None = None  # RFC 8693 section 2.2.1, token exchange only
    token_type: str = "Bearer"
    expires_in: int
    refresh_token: str | None = None
    scope: str


class OAuthErrorBody(BaseModel):
    """RFC 6749 section 5.2."""

    error: str
    error_description: str


class UserInfo(BaseModel):
    sub: str
    preferred_username: str
    roles: list[str]


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: str = PydanticField(min_length=1, max_length=1024)
    # NIST SP 800-63B: at least 8 characters, allow long passphrases.
    new_password: str = PydanticField(min_length=8, max_length=1024)


class SigningKeys(BaseModel):
    current_kid: str
    published_kids: list[str]
