"""The gateway's users, as ONVIF's GetUsers/CreateUsers/DeleteUsers/SetUser manage them.

One :class:`UserAccounts` per gateway is the live name -> password mapping that the RTSP
server, the web app and every ONVIF device authenticate against, so a change applies to the
next request everywhere. The config's user is fixed: it can be neither deleted nor changed over
ONVIF, so the operator's config file always remains a way back in (and the gateway can never be
left without a user, which would switch RTSP and web authentication off). Users created over
ONVIF are saved to a file next to the config (mode 0600, replaced atomically) and loaded on top
of the config's user at startup; without a file (demo, tests) changes live in memory only.
Passwords are stored in clear because HTTP Digest and WS-Security digests need them.

Every change is all-or-nothing, as ONVIF Core asks: each request is checked in full before
anything changes, and memory changes only once the file is written.

What each user holds across the gateway (event pull points, push subscriptions) is counted
here too, in :class:`UserQuotas`, so one account cannot take every slot of every device.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bridge.errors import ActionFailed, InvalidArgVal, OperationProhibited
from bridge.files import write_yaml_atomically
from bridge.logs import register_secret

log = logging.getLogger(__name__)

MAX_USERS = 16
MAX_USERNAME_LENGTH = 32
MAX_PASSWORD_LENGTH = 64


class Holding(enum.StrEnum):
    """What a user can hold on the gateway's devices, each kind counted against its quota."""

    PULL_POINT = "pull point"
    SUBSCRIPTION = "push subscription"  # WS-BaseNotification Subscribe: Notify to a consumer


# At most this many of a kind per user across all the gateway's devices (each device caps its
# own share lower): room for a few VMS sharing one account on a large gateway, and a bound on
# what one account can make the gateway keep.
GATEWAY_QUOTAS: dict[Holding, int] = {Holding.PULL_POINT: 256, Holding.SUBSCRIPTION: 256}


class UserLevel(enum.StrEnum):
    """The ONVIF user levels the gateway stores (Anonymous and Extended are refused)."""

    ADMINISTRATOR = "Administrator"
    OPERATOR = "Operator"
    USER = "User"


@dataclass(frozen=True, slots=True)
class Account:
    """One user; the password is left empty where it is not to be shown."""

    username: str
    level: UserLevel
    password: str = ""


def user_level(value: str) -> UserLevel:
    """An ONVIF UserLevel as the gateway accepts it."""
    if value == "Anonymous":
        raise OperationProhibited(
            "User level Anonymous is not allowed", subcode="AnonymousNotAllowed"
        )
    try:
        return UserLevel(value)
    except ValueError:
        raise InvalidArgVal(f"Unsupported user level {value[:32]!r}") from None


class UserQuotas:
    """How many of each :class:`Holding` every user holds, each capped per user.

    Bounded by construction: only users holding something have an entry, and users are few.
    """

    def __init__(self, limits: Mapping[Holding, int] = GATEWAY_QUOTAS) -> None:
        self._limits = dict(limits)
        self._held: Counter[tuple[str, Holding]] = Counter()

    def take(self, user: str, kind: Holding) -> bool:
        """Count one more ``kind`` for ``user``; False (and nothing counted) past the cap."""
        if self._held[user, kind] >= self._limits[kind]:
            return False
        self._held[user, kind] += 1
        return True

    def give_back(self, user: str, kind: Holding) -> None:
        self._held[user, kind] -= 1
        if self._held[user, kind] <= 0:
            del self._held[user, kind]


class UserAccounts(MutableMapping[str, str]):
    """The live user name -> password mapping, with levels, fixed users and persistence.

    ``passwords`` is the backing mapping and is changed in place; names it holds at
    construction are fixed Administrator users. Item assignment and deletion change memory
    only (no checks, no file): they exist so the mapping can stand where a plain one is
    expected; ONVIF changes go through :meth:`create_users`, :meth:`delete_users` and
    :meth:`change_users`.
    """

    def __init__(self, passwords: MutableMapping[str, str], *, path: Path | None = None) -> None:
        self._passwords = passwords
        self._fixed = frozenset(passwords)
        self._levels: dict[str, UserLevel] = {}
        self._path = path
        self._lock = asyncio.Lock()
        self.quotas = UserQuotas()

    # -- the mapping every authenticator reads -------------------------------------------

    def __getitem__(self, username: str) -> str:
        return self._passwords[username]

    def __setitem__(self, username: str, password: str) -> None:
        self._passwords[username] = password

    def __delitem__(self, username: str) -> None:
        del self._passwords[username]
        self._levels.pop(username, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._passwords)

    def __len__(self) -> int:
        return len(self._passwords)

    # -- what ONVIF sees and changes -----------------------------------------------------

    @staticmethod
    def of(users: MutableMapping[str, str]) -> UserAccounts:
        """``users`` itself when it is the gateway's accounts; a plain mapping (a test's)
        becomes accounts whose every user is a fixed Administrator."""
        return users if isinstance(users, UserAccounts) else UserAccounts(users)

    def level(self, username: str | None) -> UserLevel:
        """A user's level; fixed (config) users are Administrators, unknown names Users."""
        if username is None or username not in self._passwords:
            return UserLevel.USER
        if username in self._fixed:
            return UserLevel.ADMINISTRATOR
        return self._levels.get(username, UserLevel.USER)

    def accounts(self) -> list[Account]:
        """Every user and level, without passwords."""
        return [Account(name, self.level(name)) for name in self._passwords]

    def replace_fixed(self, username: str, password: str) -> None:
        """The config file's user changed (a reload): it replaces the old one, which is
        refused from the next request on (streams already playing play on). A user created
        over ONVIF under the new name gives way to it, as at startup."""
        register_secret(password)
        for old in self._fixed - {username}:
            self._passwords.pop(old, None)
        self._levels.pop(username, None)
        self._passwords[username] = password
        self._fixed = frozenset({username})

    def restore(self, saved: Iterable[Account]) -> None:
        """Add the users saved in the file at startup; a fixed name keeps the config's user."""
        for account in saved:
            if account.username in self._fixed:
                log.warning(
                    "users file: %s is the config's user; the config wins", account.username
                )
                continue
            register_secret(account.password)
            self._passwords[account.username] = account.password
            self._levels[account.username] = account.level

    async def create_users(self, accounts: Sequence[Account]) -> None:
        async with self._lock:  # checked and applied as one, against concurrent changes
            self._check_new(accounts)
            await self._commit(accounts, ())
        log.info("ONVIF users created: %s", ", ".join(a.username for a in accounts))

    async def delete_users(self, usernames: Sequence[str]) -> None:
        async with self._lock:
            for name in usernames:
                self._check_changeable(name)
            if set(self._passwords) <= set(usernames):  # none left would switch auth off
                raise InvalidArgVal("The last user cannot be deleted", subcode="FixedUser")
            await self._commit((), usernames)
        log.info("ONVIF users deleted: %s", ", ".join(usernames))

    async def change_users(self, accounts: Sequence[Account]) -> None:
        async with self._lock:
            for account in accounts:
                self._check_changeable(account.username)
                # Core: an omitted password means clearing it, which the gateway refuses.
                _check_password(account.password)
            await self._commit(accounts, ())
        log.info("ONVIF users changed: %s", ", ".join(a.username for a in accounts))

    def _check_new(self, accounts: Sequence[Account]) -> None:
        if len(self._passwords) + len(accounts) > MAX_USERS:
            raise ActionFailed(f"At most {MAX_USERS} users", subcode="TooManyUsers")
        names = [account.username for account in accounts]
        for account in accounts:
            _check_username(account.username)
            if account.username in self._passwords or names.count(account.username) > 1:
                raise OperationProhibited(
                    f"User {account.username!r} already exists", subcode="UsernameClash"
                )
            _check_password(account.password)

    def _check_changeable(self, username: str) -> None:
        if username not in self._passwords:
            raise InvalidArgVal(f"No user {username[:32]!r}", subcode="UsernameMissing")
        if username in self._fixed:
            raise InvalidArgVal(
                f"{username!r} is set in the gateway's config file", subcode="FixedUser"
            )

    async def _commit(self, changed: Sequence[Account], deleted: Sequence[str]) -> None:
        """Save, then apply: memory never holds what the file could not take."""
        passwords = {n: p for n, p in self._passwords.items() if n not in deleted}
        levels = {n: v for n, v in self._levels.items() if n not in deleted}
        for account in changed:
            register_secret(account.password)
            passwords[account.username] = account.password
            levels[account.username] = account.level
        if self._path is not None:
            saved = [
                {"username": name, "password": password, "level": str(levels.get(name, "User"))}
                for name, password in passwords.items()
                if name not in self._fixed
            ]
            try:
                await asyncio.to_thread(
                    write_yaml_atomically, self._path, _HEADER, {"users": saved}
                )
            except OSError as exc:
                log.error("cannot save the users file %s: %s", self._path, exc.strerror)
                raise ActionFailed("The users could not be saved") from exc
        for name in deleted:
            del self._passwords[name]
        self._passwords.update(passwords)
        self._levels = levels


def _check_username(username: str) -> None:
    if not username:
        raise OperationProhibited("Empty user name", subcode="UsernameTooShort")
    if len(username) > MAX_USERNAME_LENGTH:
        raise OperationProhibited("User name too long", subcode="UsernameTooLong")
    # Basic auth splits at the first colon; control characters break headers and the file.
    if ":" in username or not username.isprintable() or username != username.strip():
        raise InvalidArgVal("User name holds a character the gateway cannot accept")


def _check_password(password: str) -> None:
    if not password:
        raise OperationProhibited("An empty password is not accepted", subcode="PasswordTooWeak")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise OperationProhibited("Password too long", subcode="PasswordTooLong")
    if not password.isprintable():
        raise InvalidArgVal("Password holds a character the gateway cannot accept")


_HEADER = (
    "# Users created over ONVIF (CreateUsers/SetUser/DeleteUsers), written by bridge.\n"
    "# Loaded on top of the config's user at startup. Passwords are in clear: keep it 0600.\n"
)
