"""The objects auth's routes need, as Annotated dependencies (all created once, at startup)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from .config import AuthSettings
from .keys import KeyStore
from .passwords import Passwords
from .revoker import Revoker
from .throttle import LoginThrottle


def _settings(request: Request) -> AuthSettings:
    settings: AuthSettings = request.app.state.settings
    return settings


def _keys(request: Request) -> KeyStore:
    keys: KeyStore = request.app.state.keys
    return keys


def _passwords(request: Request) -> Passwords:
    passwords: Passwords = request.app.state.passwords
    return passwords


def _revoker(request: Request) -> Revoker:
    revoker: Revoker = request.app.state.revoker
    return revoker


def _throttle(request: Request) -> LoginThrottle:
    throttle: LoginThrottle = request.app.state.throttle
    return throttle


Settings = Annotated[AuthSettings, Depends(_settings)]
Keys = Annotated[KeyStore, Depends(_keys)]
PasswordsDep = Annotated[Passwords, Depends(_passwords)]
RevokerDep = Annotated[Revoker, Depends(_revoker)]
Throttle = Annotated[LoginThrottle, Depends(_throttle)]
