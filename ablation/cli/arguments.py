"""The ``ablation`` command's value types (attention codes, whole numbers, AXIS=VALUE, seeds, ports) and its
parser class, which adds a subcommand's arguments only when that subcommand is used."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import NoReturn

from ablation.errors import BadCodeError, InputError
from ablation.model.codes import AttentionCode

__all__ = ["Parser", "axis_value", "codes", "port", "positive", "seeds", "serving_address"]


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the problem (argparse already lists valid choices),
    and a subcommand's arguments are added when that subcommand is used (``defer``): some ask the results
    layer for their choices, which loads pandas, and ``plan`` or ``status`` should not wait for that."""

    _deferred: list[Callable[[argparse.ArgumentParser], None]]

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")

    def defer(self, *parts: Callable[[argparse.ArgumentParser], None]) -> None:
        self._deferred = [*getattr(self, "_deferred", []), *parts]

    def _complete(self) -> None:
        parts, self._deferred = getattr(self, "_deferred", []), []
        for part in parts:
            part(self)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        self._complete()
        return super().parse_known_args(args, namespace)


def codes(text: str) -> list[AttentionCode]:
    try:
        return [AttentionCode.parse(part.strip()) for part in text.split(",")]
    except BadCodeError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def axis_value(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"expected AXIS=VALUE such as kv_stride=2, got {text!r}")
    return name.strip(), value.strip()


def seeds(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seeds such as 0,1,2, got {text!r}") from None


def port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 1..65535, got {text!r}")
    return int(text)


_ADDRESSES = (
    "give an address of this machine: 127.0.0.1 (the default: this machine only), ::1, a host name of this "
    "machine, or 0.0.0.0 (every interface: reachable from other machines)"
)


def serving_address(address: str, port: int) -> str | None:
    """Check, before a server starts, that it can listen on ``address``:``port``: an empty address (which
    Streamlit takes as every interface), one that does not resolve or is not this machine's, or a port in
    use is an ``InputError``. Returns the line to show when the address reaches beyond this machine."""
    import ipaddress
    import socket

    if not address.strip():
        raise InputError(f"address {address!r} is empty; {_ADDRESSES}", argument="address")
    if all(part.isdigit() for part in address.split(".")):  # no name to look up: 999.1.1.1, 10.1
        try:
            ipaddress.IPv4Address(address)
        except ValueError as error:
            raise InputError(
                f"address {address!r} is not an IP address ({error}); {_ADDRESSES}", "address"
            ) from None
    try:
        found = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:  # socket.gaierror, or a name that IDNA cannot encode
        reason = getattr(error, "strerror", None) or error
        raise InputError(
            f"address {address!r} does not resolve ({reason}); {_ADDRESSES}", "address"
        ) from None
    family, kind, proto, _, where = found[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(where)
        except OSError as error:
            raise InputError(
                f"address {address!r}: cannot listen on {where[0]} port {port} ({error.strerror or error}); "
                f"{_ADDRESSES}, and a free --port",
                argument="address",
            ) from None
    hosts = {str(info[4][0]).partition("%")[0] for info in found}
    if all(ipaddress.ip_address(host).is_loopback for host in hosts):
        return None
    return (
        f"note: --address {address} is reachable from other machines on its networks: anyone who reaches it "
        "sees the store (--address 127.0.0.1 keeps it to this machine)"
    )
